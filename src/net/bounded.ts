/**
 * A bounded read (sys/readfile.ts) through a HostFs: on the real file system
 * the same O_NONBLOCK open and fstat as `readTextBounded` (a FIFO or a device
 * in a conf dir is never waited on); on any other tree (a FakeHost's) a stat,
 * the same refusals as FileReadError, then the read.
 */
import { type HostFs, realFs } from "../sys/fs.ts";
import {
  FileReadError,
  type ReadBoundedOptions,
  readTextBounded,
  sizeText,
} from "../sys/readfile.ts";

const ERRNO: Record<string, [string, string]> = {
  NotFound: ["ENOENT", "no such file"],
  NotADirectory: ["ENOTDIR", "no such file"],
  PermissionDenied: ["EACCES", "permission denied"],
};

export function readTextBoundedOn(fs: HostFs, path: string, options: ReadBoundedOptions): string {
  if (fs === realFs) return readTextBounded(path, options);
  let info;
  try {
    info = options.follow === false ? fs.lstat(path) : fs.stat(path);
  } catch (e) {
    const [errno, reason] = ERRNO[(e as Error).name] ??
      [(e as { code?: string }).code, (e as Error).message];
    throw new FileReadError(path, reason, errno, { cause: e });
  }
  if (info.isSymlink) {
    throw new FileReadError(path, "a symlink (not followed here)", "ELOOP");
  }
  if (!info.isFile) throw new FileReadError(path, "not a regular file");
  if (info.size > options.max) {
    throw new FileReadError(path, `larger than ${sizeText(options.max)}`);
  }
  const text = fs.readTextFile(path);
  if (new TextEncoder().encode(text).length > options.max) {
    throw new FileReadError(path, `larger than ${sizeText(options.max)}`);
  }
  return text;
}
