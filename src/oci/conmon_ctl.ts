/**
 * conmon's control FIFO: `ctl` in a container's bundle, and one per exec
 * session. A message is one line, "TYPE A B\n": type 1 sets the terminal's
 * size (rows, columns), type 2 asks conmon to reopen its log file. conmon
 * reads the FIFO for as long as it runs and keeps a write end of its own
 * open, so a writer can open and close it for each message.
 *
 * A writer opens it with O_NONBLOCK. With no conmon reading (the process
 * has exited and its conmon with it), open(2) then fails at once with
 * ENXIO; a blocking open would wait for a reader that never comes. Deno's
 * own open has no O_NONBLOCK, which is why this goes through libc. Before
 * this, `rkl run --rm -it busybox stty size` hung for good whenever the
 * process ended before the attach session sent its first size. A message
 * that finds the FIFO full (EAGAIN) is dropped, as conmon would read it
 * too late to matter.
 */
import { O_CLOEXEC, O_NONBLOCK, O_WRONLY, type Syscalls } from "../sys/syscalls.ts";

/** A terminal's size in characters (the CRI's streaming server uses this one too). */
export interface TermSize {
  width: number;
  height: number;
}

/** Terminal sizes above this are clamped (conmon and the kernel take u16; no screen is larger). */
const MAX_DIM = 1000;

/** The FIFO's write end, or undefined when no conmon reads it (ENXIO) or it is missing. */
export function openCtl(sys: Syscalls, ctl: string): number | undefined {
  try {
    return sys.open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  } catch {
    return undefined;
  }
}

/** Sends one message on an open write end; false when it could not be written. */
export function writeCtl(sys: Syscalls, fd: number, message: string): boolean {
  try {
    sys.write(fd, new TextEncoder().encode(message));
    return true;
  } catch {
    return false;
  }
}

/** Opens the FIFO, sends one message, closes it: false when no conmon took it. */
export function sendCtl(sys: Syscalls, ctl: string, message: string): boolean {
  const fd = openCtl(sys, ctl);
  if (fd === undefined) return false;
  try {
    return writeCtl(sys, fd, message);
  } finally {
    sys.close(fd);
  }
}

/** A client's dimension as conmon reads it: a whole number in 0..MAX_DIM. */
const dim = (n: number): number =>
  Number.isFinite(n) ? Math.max(0, Math.min(Math.trunc(n), MAX_DIM)) : 0;

/** The message that sets the terminal's size. */
export function sizeMessage(s: TermSize): string {
  return `1 ${dim(s.height)} ${dim(s.width)}\n`;
}

/** The message that asks conmon to reopen its log. */
export const REOPEN_LOG = "2 0 0\n";

/**
 * A function that sends each size to conmon at `ctl`. Never blocks: a size
 * sent once conmon is gone is dropped.
 */
export function ctlResizer(sys: Syscalls, ctl: string): (s: TermSize) => void {
  return (s) => {
    sendCtl(sys, ctl, sizeMessage(s));
  };
}
