/**
 * Volume `subPath`s, resolved so that nothing a container wrote into a
 * volume can redirect them: each component is opened with openat2(2)
 * relative to the one before it, with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS, so a symlink anywhere below the volume root (one a
 * container planted earlier, or swaps in while rkl walks) makes the walk
 * fail instead of leading out of the volume. Missing directories are made
 * with mkdirat(2) on the already-open parent, as the kubelet makes them.
 *
 * The opened O_PATH descriptor is then bind-mounted, through its
 * /proc/self/fd/N magic link, onto a staging path that only root can reach;
 * the runtime bind-mounts the staging path. What is mounted is the very
 * inode that was checked, never a path looked up again later.
 */
import { RklError, SysError } from "../errors.ts";
import { removeNetns } from "./netns.ts";
import { type HostFs, realFs } from "./fs.ts";
import {
  EEXIST,
  ELOOP,
  ENOENT,
  EXDEV,
  MS_BIND,
  O_CLOEXEC,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  type Syscalls,
} from "./syscalls.ts";

const RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** Components of a subPath; refuses absolute paths and '..'. */
export function subPathParts(subPath: string): string[] {
  if (subPath.startsWith("/") || subPath.includes("\0")) {
    throw new RklError("ESUBPATH", `${JSON.stringify(subPath)} must be a relative path`);
  }
  const parts = subPath.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new RklError("ESUBPATH", `${JSON.stringify(subPath)} must not contain '..'`);
  }
  return parts;
}

/**
 * Opens `subPath` below the directory `root` (O_PATH), creating missing
 * directories; returns the fd. Throws an RklError naming the component when
 * a symlink or an escape is met.
 */
export function openBeneath(
  sys: Syscalls,
  root: string,
  subPath: string,
  options: { create: boolean },
): number {
  const parts = subPathParts(subPath);
  let fd = sys.open(root, O_PATH | O_CLOEXEC);
  try {
    for (const [i, part] of parts.entries()) {
      const where = parts.slice(0, i + 1).join("/");
      let next: number;
      try {
        next = sys.openat2(fd, part, O_PATH | O_CLOEXEC, RESOLVE);
      } catch (e) {
        if (!(e instanceof SysError)) throw e;
        if (e.errno === ENOENT && options.create) {
          try {
            sys.mkdirat(fd, part, 0o755);
          } catch (e2) {
            if (!(e2 instanceof SysError && e2.errno === EEXIST)) throw e2;
          }
          next = sys.openat2(fd, part, O_PATH | O_CLOEXEC, RESOLVE);
        } else if (e.errno === ELOOP) {
          throw new RklError(
            "ESUBPATH",
            `${
              JSON.stringify(where)
            } inside ${root} is a symbolic link (rkl follows no links in a subPath)`,
          );
        } else if (e.errno === EXDEV) {
          throw new RklError(
            "ESUBPATH",
            `${JSON.stringify(where)} inside ${root} leaves the volume`,
          );
        } else throw e;
      }
      sys.close(fd);
      fd = next;
    }
    const out = fd;
    fd = -1;
    return out;
  } finally {
    if (fd >= 0) sys.close(fd);
  }
}

/**
 * Resolves `subPath` below `root` and bind-mounts it on `target` (made as
 * an empty file or directory to match). A target left from an earlier
 * staging (a restart) is unmounted first.
 */
export function stageSubPath(
  sys: Syscalls,
  o: { root: string; subPath: string; target: string },
  fs: HostFs = realFs,
): void {
  const fd = openBeneath(sys, o.root, o.subPath, { create: true });
  try {
    const isDir = fs.stat(`/proc/self/fd/${fd}`).isDirectory;
    removeNetns(sys, o.target, fs); // unmount + remove a stale target; fine when absent
    if (isDir) fs.mkdir(o.target, { mode: 0o700 });
    else fs.writeFile(o.target, new Uint8Array(), { createNew: true, mode: 0o600 });
    sys.mount({ source: `/proc/self/fd/${fd}`, target: o.target, flags: MS_BIND });
  } finally {
    sys.close(fd);
  }
}

/** Unmounts and removes a staged subPath; idempotent. */
export function unstageSubPath(sys: Syscalls, target: string, fs: HostFs = realFs): void {
  removeNetns(sys, target, fs);
}
