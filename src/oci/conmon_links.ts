/**
 * conmon's entries in its socket dir. conmon names the entry for a container
 * (or an exec session) by its id, cut short when SOCKET_DIR/ID/attach would
 * not fit in a socket address; the shortened name is a link to the bundle.
 */
import type { HostFs } from "../sys/fs.ts";

/**
 * Removes the entry named `id` and any shortened link for it: a link of at
 * least 32 characters that `id` starts with and that points at `bundle`, so
 * another container's link is never taken. Returns how many it removed.
 */
export function removeConmonLinks(
  fs: HostFs,
  socketDir: string,
  id: string,
  bundle: string,
): number {
  let names: { name: string; isSymlink: boolean }[];
  try {
    names = fs.readDir(socketDir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const e of names) {
    const path = `${socketDir}/${e.name}`;
    if (
      e.name !== id &&
      !(e.isSymlink && e.name.length >= 32 && id.startsWith(e.name) && linkOf(fs, path) === bundle)
    ) continue;
    try {
      fs.remove(path, { recursive: true });
      removed++;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return removed;
}

function linkOf(fs: HostFs, path: string): string | undefined {
  try {
    return fs.readLink(path);
  } catch {
    return undefined;
  }
}
