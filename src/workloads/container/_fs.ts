/** Small file helpers over the Host's file-system port, private to this folder. */
import type { HostFs } from "../../sys/fs.ts";

/** The file's text, or "" when it cannot be read. */
export function readOr(fs: HostFs, path: string): string {
  try {
    return fs.readTextFile(path);
  } catch {
    return "";
  }
}

/** rm -rf; a path already gone is fine. */
export function removeAll(fs: HostFs, path: string): void {
  try {
    fs.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** True when `path` is a directory (following links). */
export function dirExists(fs: HostFs, path: string): boolean {
  try {
    return fs.stat(path).isDirectory;
  } catch {
    return false;
  }
}
