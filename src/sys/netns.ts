/**
 * Pinned network namespaces, made the way `ip netns add` makes them but
 * without shelling out: unshare(CLONE_NEWNET) on this thread, bind-mount the
 * thread's namespace file onto a file under the run root, setns back.
 */
import { SysError } from "../errors.ts";
import { type HostFs, realFs } from "./fs.ts";
import {
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWUTS,
  EINVAL,
  ENOENT,
  ESRCH,
  MNT_DETACH,
  MS_BIND,
  O_CLOEXEC,
  O_RDONLY,
  type Syscalls,
} from "./syscalls.ts";

/** Creates a new network namespace pinned at `path` (the file must not exist). */
export function createNetns(sys: Syscalls, path: string, fs: HostFs = realFs): void {
  createNamespaces(sys, { net: path }, undefined, fs);
}

const FLAGS = { net: CLONE_NEWNET, ipc: CLONE_NEWIPC, uts: CLONE_NEWUTS } as const;
export type PinnableType = keyof typeof FLAGS;

/**
 * New namespaces of the given types, each pinned at its path (files that
 * must not exist), with no process to hold them: what CRI-O's pinns does for
 * a pod that shares no PID namespace. One unshare on this thread, the
 * hostname set in the new UTS namespace, `lo` up in the new network one, a bind mount of each of the
 * thread's namespace files, then setns back to every original. On any
 * failure nothing stays: pinned files are unmounted and removed.
 */
export function createNamespaces(
  sys: Syscalls,
  pins: Partial<Record<PinnableType, string>>,
  hostname?: string,
  fs: HostFs = realFs,
): void {
  const types = (Object.keys(pins) as PinnableType[]).filter((t) => pins[t] !== undefined);
  if (types.length === 0) return;
  if (hostname !== undefined && !types.includes("uts")) {
    throw new SysError("sethostname", EINVAL, "a hostname needs a new UTS namespace");
  }
  const made: string[] = [];
  const pinned: string[] = [];
  const originals: [PinnableType, number][] = [];
  try {
    for (const t of types) {
      fs.writeFile(pins[t]!, new Uint8Array(), { createNew: true, mode: 0o444 });
      made.push(pins[t]!);
    }
    for (const t of types) {
      originals.push([t, sys.open(`/proc/thread-self/ns/${t}`, O_RDONLY | O_CLOEXEC)]);
    }
    sys.unshare(types.reduce((f, t) => f | FLAGS[t], 0));
    try {
      if (hostname !== undefined) sys.sethostname(hostname);
      // A new network namespace has `lo` down: up it here, one ioctl, where
      // the loopback CNI plugin would cost a process at ADD and at DEL.
      if (types.includes("net")) sys.loopbackUp();
      const tid = sys.gettid();
      for (const t of types) {
        sys.mount({ source: `/proc/self/task/${tid}/ns/${t}`, target: pins[t]!, flags: MS_BIND });
        pinned.push(pins[t]!);
      }
    } finally {
      // Back to the host's namespaces before anything else runs on this thread.
      for (const [t, fd] of originals) sys.setns(fd, FLAGS[t]);
    }
  } catch (e) {
    for (const p of pinned) {
      try {
        sys.umount2(p, MNT_DETACH);
      } catch { /* best effort: the file is removed below either way */ }
    }
    for (const p of made) {
      try {
        fs.remove(p);
      } catch { /* gone */ }
    }
    throw e;
  } finally {
    for (const [, fd] of originals) sys.close(fd);
  }
}

/** Unpins and removes a namespace file. Idempotent: a missing one is fine. */
export function removeNetns(sys: Syscalls, path: string, fs: HostFs = realFs): void {
  try {
    sys.umount2(path, MNT_DETACH);
  } catch (e) {
    if (!(e instanceof SysError && (e.errno === EINVAL || e.errno === ENOENT))) throw e;
  }
  try {
    fs.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Pins namespace `type` (ipc, uts, pid, ...) of process `pid` at `path`, the
 * way CRI-O's pinns keeps a pod's namespaces: a bind mount of
 * /proc/PID/ns/TYPE. `startTime` is the process's start time as recorded when
 * it was made; it is checked before and after the mount, so a pid that was
 * reused by another process in between is never pinned (the mount is undone).
 */
export function pinNamespace(
  sys: Syscalls,
  o: { pid: number; startTime: number; type: string; path: string },
  startTimeOf: (pid: number) => number | undefined,
  fs: HostFs = realFs,
): void {
  const same = () => startTimeOf(o.pid) === o.startTime;
  if (!same()) {
    throw new SysError("pin", ESRCH, `process ${o.pid} is not the one rkl started`);
  }
  fs.writeFile(o.path, new Uint8Array(), { createNew: true, mode: 0o444 });
  let ok = false;
  try {
    sys.mount({ source: `/proc/${o.pid}/ns/${o.type}`, target: o.path, flags: MS_BIND });
    if (!same()) {
      throw new SysError("pin", ESRCH, `process ${o.pid} exited while its ${o.type} was pinned`);
    }
    ok = true;
  } finally {
    if (!ok) removeNetns(sys, o.path, fs);
  }
}
