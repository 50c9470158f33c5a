/**
 * Inherited file descriptors, made close-on-exec at start.
 *
 * Deno opens its own fds with O_CLOEXEC, but fds the caller left open (a lock
 * taken by `flock FILE rkl …`, a pipe of a script waiting for EOF) are inherited
 * without it, and every child Deno spawns takes them along: conmon, the health
 * monitor, the daemon and its children would hold the caller's lock for the
 * life of a container. rkl marks every fd from 3 up close-on-exec before it
 * spawns anything (cli/main.ts). The one fd rkl hands on on purpose, conmon's
 * sync pipe, is opened later without the flag (oci/conmon.ts), so it stays.
 *
 * close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) does it in one call on Linux 5.11+
 * with glibc 2.34+; elsewhere each fd listed in /proc/self/fd gets
 * fcntl(F_SETFD, FD_CLOEXEC) (FD_CLOEXEC is the only fd flag, so setting it
 * alone loses nothing).
 */
import { libcFds } from "./libc.ts";

export const CLOSE_RANGE_CLOEXEC = 1 << 2;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;

/** The libc calls this needs (a fake in unit tests). */
export interface FdCalls {
  /** close_range(2), or undefined when libc lacks it. */
  closeRange?: (first: number, last: number, flags: number) => number;
  fcntl(fd: number, cmd: number, arg: number): number;
  /** The open fds (/proc/self/fd). */
  listFds(): number[];
}

/** How the fds were marked: one close_range call, or fcntl on each (with the count). */
export type CloexecResult = { via: "close_range" } | { via: "fcntl"; marked: number };

/** Marks every fd >= 3 close-on-exec. Never throws: a failure leaves the fds as they were. */
export function markInheritedFdsCloexec(calls: FdCalls): CloexecResult {
  if (calls.closeRange && calls.closeRange(3, 0xffffffff, CLOSE_RANGE_CLOEXEC) === 0) {
    return { via: "close_range" };
  }
  let marked = 0;
  for (const fd of calls.listFds()) {
    // The listing's own directory fd is gone by now (EBADF): skipped.
    if (fd >= 3 && calls.fcntl(fd, F_SETFD, FD_CLOEXEC) === 0) marked++;
  }
  return { via: "fcntl", marked };
}

/** The fds /proc/self/fd lists, read before any is changed. */
export function procSelfFds(): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    const n = Number(e.name);
    if (Number.isInteger(n)) out.push(n);
  }
  return out;
}

let done = false;

/**
 * Marks this process's inherited fds close-on-exec, once (later calls do
 * nothing). Needs `--allow-ffi` and `--allow-read` of /proc/self/fd.
 */
export function cloexecInheritedFds(): void {
  if (done) return;
  done = true;
  const l = libcFds();
  const closeRange = l.close_range;
  markInheritedFdsCloexec({
    closeRange: closeRange ? (a, b, f) => closeRange(a, b, f) : undefined,
    fcntl: (fd, cmd, arg) => l.fcntl(fd, cmd, arg),
    listFds: procSelfFds,
  });
}
