/**
 * `rkl cp`: files between the host and a container's file system, both
 * ways. A path in the container is resolved inside the container's root
 * with openat2(RESOLVE_IN_ROOT): `..` and symlinks (absolute ones too) stop
 * at the container's `/`, as they would for a process in it, and never
 * lead onto the host; magic links (/proc/PID/root, /proc/self/fd/N) are
 * refused. Below that point the tree is walked one name at a time from an
 * open directory (`/proc/self/fd/DIR/NAME`, openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a symlink the container swaps
 * in while rkl walks makes the walk fail instead of being followed.
 *
 * A running container is reached through /proc/PID/root (its mounts,
 * volumes included, as its processes see them); a stopped one through its
 * root file system view (its volumes are not there).
 */
import { RklError, SysError, UsageError } from "../errors.ts";
import {
  ELOOP,
  ENOENT,
  EXDEV,
  O_CLOEXEC,
  O_NONBLOCK,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  type Syscalls,
} from "../sys/syscalls.ts";
import { procStat } from "../sys/procstat.ts";
import { lstatOr } from "../sys/fsutil.ts";
import { type FsInfo, type HostFs, realFs } from "../sys/fs.ts";
import type { ContainerRecord } from "./container.ts";

/** openat2's RESOLVE_IN_ROOT: the dirfd is `/` for the whole lookup (Linux 5.6). */
export const RESOLVE_IN_ROOT = 0x10;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const STEP = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** `NAME:PATH` → its parts; a plain path (no colon before the first '/') is the host's. */
export function splitCpArg(arg: string): { container?: string; path: string } {
  const colon = arg.indexOf(":");
  const slash = arg.indexOf("/");
  if (colon > 0 && (slash < 0 || colon < slash)) {
    return { container: arg.slice(0, colon), path: arg.slice(colon + 1) || "/" };
  }
  return { path: arg };
}

/** A container path made absolute and normalized; `..` stops at `/` (as in the container). */
export function containerPath(p: string): string[] {
  if (p.includes("\0")) throw new UsageError(`path ${JSON.stringify(p)} contains NUL`);
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out;
}

const fdPath = (fd: number, name?: string) => `/proc/self/fd/${fd}${name ? `/${name}` : ""}`;

// Direct: /proc/self/fd/N names an fd this process opened with openat2; only the real fs has it.
const fdFs: HostFs = realFs;

/** Where the container's `/` is on the host: /proc/PID/root while it runs, else its rootfs view. */
export function containerRoot(rec: ContainerRecord): string {
  if (rec.status === "running" && rec.pid) {
    const st = procStat(rec.pid);
    if (st && (rec.pidStart === undefined || st.startTime === rec.pidStart)) {
      return `/proc/${rec.pid}/root`;
    }
  }
  return rec.dirs.rootfs;
}

function explain(e: unknown, where: string, name: string): never {
  if (e instanceof SysError) {
    if (e.errno === ELOOP) {
      throw new RklError(
        "ECOPY",
        `Cannot copy: ${JSON.stringify(where)} in container ${
          JSON.stringify(name)
        } leads through a magic link or was swapped for a symlink`,
        { cause: e },
      );
    }
    if (e.errno === EXDEV) {
      throw new RklError(
        "ECOPY",
        `Cannot copy: ${JSON.stringify(where)} leaves container ${JSON.stringify(name)}'s root`,
        { cause: e },
      );
    }
    if (e.errno === ENOENT) {
      throw new RklError(
        "ENOENT",
        `Cannot copy: ${JSON.stringify(where)} does not exist in container ${JSON.stringify(name)}`,
        { cause: e },
      );
    }
  }
  throw e;
}

interface Side {
  sys: Syscalls;
  rec: ContainerRecord;
  opened: number[];
}

function openIn(s: Side, dir: number, rel: string, flags: number, resolve: number, where: string) {
  try {
    const fd = s.sys.openat2(dir, rel, flags | O_CLOEXEC, resolve);
    s.opened.push(fd);
    return fd;
  } catch (e) {
    explain(e, where, s.rec.name);
  }
}

/** The parent directory of `parts` resolved in the root (an O_PATH fd), and the last name. */
function resolveParent(
  s: Side,
  parts: string[],
  where: string,
): { root: number; dir: number; name?: string } {
  const rootFd = s.sys.open(containerRoot(s.rec), O_PATH | O_DIRECTORY | O_CLOEXEC);
  s.opened.push(rootFd);
  if (parts.length === 0) return { root: rootFd, dir: rootFd };
  const parent = parts.slice(0, -1).join("/") || ".";
  const dir = openIn(
    s,
    rootFd,
    parent,
    O_PATH | O_DIRECTORY,
    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    where,
  );
  return { root: rootFd, dir, name: parts[parts.length - 1] };
}

function closeAll(s: Side): void {
  for (const fd of s.opened.reverse()) {
    try {
      s.sys.close(fd);
    } catch { /* closed */ }
  }
}

export interface CopyResult {
  files: number;
  bytes: number;
  skipped: string[];
}

function copyStream(from: string, to: string, mode: number, r: CopyResult): void {
  // Direct: one side is an openat2 fd's path, and a file goes in 64 KiB pieces, not whole.
  const src = Deno.openSync(from, { read: true });
  try {
    const dst = Deno.openSync(to, { write: true, createNew: true, mode });
    try {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = src.readSync(buf);
        if (n === null) break;
        for (let off = 0; off < n;) off += dst.writeSync(buf.subarray(off, n));
        r.bytes += n;
      }
    } finally {
      dst.close();
    }
  } finally {
    src.close();
  }
  r.files++;
}

/** Copies `path` of the container to `dest` on the host (docker's rules for an existing dir). */
export function copyFromContainer(
  sys: Syscalls,
  rec: ContainerRecord,
  options: { path: string; dest: string; followLink?: boolean },
  fs: HostFs,
): CopyResult {
  const s: Side = { sys, rec, opened: [] };
  const r: CopyResult = { files: 0, bytes: 0, skipped: [] };
  const parts = containerPath(options.path);
  const where = `/${parts.join("/")}`;
  try {
    const { root, dir, name } = resolveParent(s, parts, where);
    let top: { dir: number; name?: string } = { dir, name };
    if (name !== undefined && options.followLink) {
      // The whole path from the root: a relative link is resolved where it lies.
      const fd = openIn(
        s,
        root,
        parts.join("/"),
        O_PATH,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        where,
      );
      top = { dir: fd };
    }
    const topInfo = top.name === undefined
      ? fdFs.stat(fdPath(top.dir))
      : lstatOr(fdPath(top.dir, top.name), fdFs);
    if (!topInfo) explain(new SysError("openat2", ENOENT, where), where, rec.name);
    let dest = options.dest;
    const d = lstatOr(dest, fs);
    if (d && fs.stat(dest).isDirectory) dest = `${dest}/${parts[parts.length - 1] ?? "."}`;
    else if (!d && !options.dest.endsWith("/")) { /* made as dest */ }
    else if (!d) {
      throw new UsageError(`Cannot copy: directory ${JSON.stringify(dest)} does not exist`);
    } else if (topInfo.isDirectory) {
      throw new UsageError(`Cannot copy a directory onto file ${JSON.stringify(dest)}`);
    }
    const one = (dir: number, name: string | undefined, info: FsInfo, to: string) => {
      const shown = name ?? ".";
      if (info.isSymlink) {
        try {
          fs.remove(to);
        } catch { /* none */ }
        fs.symlink(fdFs.readLink(fdPath(dir, name)), to);
        return;
      }
      if (info.isDirectory) {
        const sub = name === undefined
          ? dir
          : openIn(s, dir, name, O_PATH | O_DIRECTORY, STEP, shown);
        try {
          fs.mkdir(to, { mode: (info.mode ?? 0o755) & 0o7777 });
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        }
        for (
          const e of fdFs.readDir(fdPath(sub)).sort((a, b) => a.name < b.name ? -1 : 1)
        ) {
          const ci = lstatOr(fdPath(sub, e.name), fdFs);
          if (ci) one(sub, e.name, ci, `${to}/${e.name}`);
        }
        return;
      }
      if (!info.isFile) {
        r.skipped.push(to);
        return;
      }
      // O_NONBLOCK: a FIFO swapped in after the look does not hang the open.
      const fd = name === undefined
        ? dir
        : openIn(s, dir, name, O_NONBLOCK | O_NOFOLLOW, STEP, shown);
      if (!fdFs.stat(fdPath(fd)).isFile) {
        r.skipped.push(to);
        return;
      }
      try {
        fs.remove(to);
      } catch { /* none */ }
      copyStream(fdPath(fd), to, (info.mode ?? 0o644) & 0o777, r);
    };
    one(top.dir, top.name, topInfo, dest);
    return r;
  } finally {
    closeAll(s);
  }
}

/** Copies host path `src` into the container at `path` (into it when it is a directory). */
export function copyToContainer(
  sys: Syscalls,
  rec: ContainerRecord,
  options: { src: string; path: string },
  fs: HostFs,
): CopyResult {
  const s: Side = { sys, rec, opened: [] };
  const r: CopyResult = { files: 0, bytes: 0, skipped: [] };
  const srcInfo = lstatOr(options.src, fs);
  if (!srcInfo) throw new UsageError(`Cannot copy: ${JSON.stringify(options.src)} does not exist`);
  const parts = containerPath(options.path);
  const where = `/${parts.join("/")}`;
  const base = options.src.replace(/\/+$/, "").split("/").pop() || "root";
  try {
    const parent = resolveParent(s, parts, where);
    let { dir, name } = parent;
    // An existing directory (a symlink to one resolved in the root): copy into it.
    const target = name === undefined ? dir : (() => {
      try {
        const fd = sys.openat2(
          parent.root,
          parts.join("/"),
          O_PATH | O_DIRECTORY | O_CLOEXEC,
          RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        );
        s.opened.push(fd);
        return fd;
      } catch (e) {
        if (e instanceof SysError && (e.errno === ENOENT || e.errno === 20)) return undefined;
        explain(e, where, rec.name);
      }
    })();
    if (target !== undefined) {
      dir = target;
      name = base;
    } else if (options.path.endsWith("/")) {
      throw new UsageError(
        `Cannot copy: directory ${JSON.stringify(where)} does not exist in container ${
          JSON.stringify(rec.name)
        }`,
      );
    }
    const one = (from: string, info: FsInfo, dir: number, name: string) => {
      const to = fdPath(dir, name);
      const there = lstatOr(to, fdFs);
      if (info.isDirectory) {
        if (there && !there.isDirectory) fdFs.remove(to);
        if (!there || !there.isDirectory) {
          fdFs.mkdir(to, { mode: (info.mode ?? 0o755) & 0o7777 });
        }
        const sub = openIn(s, dir, name, O_PATH | O_DIRECTORY, STEP, name);
        for (const e of fs.readDir(from)) {
          const ci = lstatOr(`${from}/${e.name}`, fs);
          if (ci) one(`${from}/${e.name}`, ci, sub, e.name);
        }
        return;
      }
      // A file or link there is replaced (unlink never follows a link); a
      // directory is not.
      if (there?.isDirectory) {
        throw new UsageError(
          `Cannot copy file ${JSON.stringify(from)} onto directory ${name} in container ${
            JSON.stringify(rec.name)
          }`,
        );
      }
      if (there) fdFs.remove(to);
      if (info.isSymlink) {
        fdFs.symlink(fs.readLink(from), to);
        return;
      }
      if (!info.isFile) {
        r.skipped.push(from);
        return;
      }
      // createNew (O_CREAT|O_EXCL) never follows a link swapped in meanwhile.
      copyStream(from, to, (info.mode ?? 0o644) & 0o777, r);
    };
    if (name === undefined) {
      throw new UsageError("Cannot copy onto the container's root itself: name a directory in it");
    }
    one(options.src, srcInfo, dir, name);
    return r;
  } finally {
    closeAll(s);
  }
}
