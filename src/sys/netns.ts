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

/** Unpins and removes the namespace file. Idempotent: a missing one is fine. */
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
