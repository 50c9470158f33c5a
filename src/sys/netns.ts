/**
 * Pinned network namespaces, made the way `ip netns add` makes them but
 * without shelling out: unshare(CLONE_NEWNET) on this thread, bind-mount the
 * thread's namespace file onto a file under the run root, setns back.
 */
import { SysError } from "../errors.ts";
import {
  CLONE_NEWNET,
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
export function createNetns(sys: Syscalls, path: string): void {
  Deno.writeFileSync(path, new Uint8Array(), { createNew: true, mode: 0o444 });
  let pinned = false;
  try {
    const original = sys.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    try {
      sys.unshare(CLONE_NEWNET);
      try {
        const tid = sys.gettid();
        sys.mount({ source: `/proc/self/task/${tid}/ns/net`, target: path, flags: MS_BIND });
        pinned = true;
      } finally {
        // Back to the host namespace before anything else runs on this thread.
        sys.setns(original, CLONE_NEWNET);
      }
    } finally {
      sys.close(original);
    }
  } finally {
    if (!pinned) Deno.removeSync(path);
  }
}

/** Unpins and removes a namespace file. Idempotent: a missing one is fine. */
export function removeNetns(sys: Syscalls, path: string): void {
  try {
    sys.umount2(path, MNT_DETACH);
  } catch (e) {
    if (!(e instanceof SysError && (e.errno === EINVAL || e.errno === ENOENT))) throw e;
  }
  try {
    Deno.removeSync(path);
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
): void {
  const same = () => startTimeOf(o.pid) === o.startTime;
  if (!same()) {
    throw new SysError("pin", ESRCH, `process ${o.pid} is not the one rkl started`);
  }
  Deno.writeFileSync(o.path, new Uint8Array(), { createNew: true, mode: 0o444 });
  let ok = false;
  try {
    sys.mount({ source: `/proc/${o.pid}/ns/${o.type}`, target: o.path, flags: MS_BIND });
    if (!same()) {
      throw new SysError("pin", ESRCH, `process ${o.pid} exited while its ${o.type} was pinned`);
    }
    ok = true;
  } finally {
    if (!ok) removeNetns(sys, o.path);
  }
}
