/** Overlay root filesystems and mount-table queries. */
import { SysError } from "../errors.ts";
import { EINVAL, ENOENT, MNT_DETACH, MS_RDONLY, type Syscalls } from "./syscalls.ts";
import { type HostFs, realFs } from "./fs.ts";

export interface OverlayDirs {
  /** Lower dirs, topmost first: a bundle's rootfs, or an image's layers. */
  lower: string[];
  upper: string;
  work: string;
  merged: string;
}

/** overlayfs splits its options at ',' and its lower dirs at ':'. */
function checkOverlayPaths(paths: string[]): void {
  for (const p of paths) {
    if (/[,:]/.test(p)) {
      throw new SysError(
        "mount",
        EINVAL,
        `overlay paths must not contain ',' or ':' (${JSON.stringify(p)})`,
      );
    }
  }
}

/** Mounts an overlay over read-only lower dirs (left untouched) with the container's own upper dir. */
export function mountOverlay(sys: Syscalls, d: OverlayDirs): void {
  if (d.lower.length === 0) throw new SysError("mount", EINVAL, "overlay needs a lower dir");
  checkOverlayPaths([d.upper, d.work, d.merged, ...d.lower]);
  sys.mount({
    source: "overlay",
    target: d.merged,
    fstype: "overlay",
    flags: 0,
    data: `lowerdir=${d.lower.join(":")},upperdir=${d.upper},workdir=${d.work}`,
  });
}

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;

/**
 * Mounts an image's layers at `target` read-only, noexec, nosuid and nodev:
 * an overlay of lower dirs only (topmost first), which overlayfs takes
 * read-only. It needs two lowers without an upper dir: `empty` (an empty
 * dir) goes below a single layer.
 */
export function mountImageLayers(
  sys: Syscalls,
  d: { lower: string[]; empty: string; target: string },
): void {
  if (d.lower.length === 0) throw new SysError("mount", EINVAL, "an image volume needs a layer");
  const lower = d.lower.length === 1 ? [...d.lower, d.empty] : d.lower;
  checkOverlayPaths([d.target, ...lower]);
  sys.mount({
    source: "overlay",
    target: d.target,
    fstype: "overlay",
    flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
    data: `lowerdir=${lower.join(":")}`,
  });
}

/** Lazily unmounts `target`; a path that is not mounted is fine. */
export function unmount(sys: Syscalls, target: string): void {
  try {
    sys.umount2(target, MNT_DETACH);
  } catch (e) {
    if (!(e instanceof SysError && (e.errno === EINVAL || e.errno === ENOENT))) throw e;
  }
}

/** Mount points listed in a mountinfo text (fifth field, octal escapes decoded). */
export function mountPoints(mountinfo: string): string[] {
  return mountinfo.split("\n").filter(Boolean).map((line) =>
    line.split(" ")[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  );
}

export function isMounted(target: string, mountinfo?: string, fs: HostFs = realFs): boolean {
  const text = mountinfo ?? fs.readTextFile("/proc/self/mountinfo");
  return mountPoints(text).includes(target);
}
