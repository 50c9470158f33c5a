/**
 * The user's terminal for `rkl run -it`, `rkl attach` and `rkl exec -it`:
 * raw mode while a session lasts (restored however it ends), the window
 * size sent at start and again on every SIGWINCH, and docker's detach keys
 * (ctrl-p ctrl-q) watched for in what the user types.
 *
 * A container's main process is reached through its conmon attach socket
 * (SOCK_SEQPACKET: each packet from conmon is one byte naming the stream,
 * 2 stdout or 3 stderr, then the data; what rkl writes goes to the
 * process's stdin) and its size through conmon's `ctl` FIFO ("1 ROWS COLS").
 * An exec'd process goes through the core's exec path (src/workloads/exec.ts),
 * which takes a {@linkcode ProcessIO} built here.
 */
import { SeqPacketSocket } from "../src/sys/seqpacket.ts";
import type { Syscalls } from "../src/sys/syscalls.ts";
import { ctlResizer, sendCtl, sizeMessage } from "../src/oci/conmon_ctl.ts";
import { ChunkQueue } from "../src/cri/streaming/bytes.ts";
import type { ProcessIO, TermSize } from "../src/cri/streaming/server.ts";

/** docker's default detach sequence: ctrl-p ctrl-q. */
export const DETACH_KEYS = [0x10, 0x11];

/** All of `b` to `file` (stdout/stderr writes may be short). */
function writeAll(file: typeof Deno.stdout, b: Uint8Array): void {
  for (let off = 0; off < b.length;) off += file.writeSync(b.subarray(off));
}

const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;

/**
 * Finds the detach sequence in typed bytes, as docker does: bytes that may
 * start it are held back; when the sequence breaks off they are passed on.
 */
export class DetachScanner {
  #held: number[] = [];
  constructor(readonly keys: number[] = DETACH_KEYS) {}

  /** The bytes to pass on, and whether the whole sequence has been typed. */
  feed(b: Uint8Array): { data: Uint8Array; detached: boolean } {
    const out: number[] = [];
    for (const c of b) {
      if (c === this.keys[this.#held.length]) {
        this.#held.push(c);
        if (this.#held.length === this.keys.length) {
          this.#held = [];
          return { data: new Uint8Array(out), detached: true };
        }
        continue;
      }
      out.push(...this.#held);
      this.#held = [];
      if (c === this.keys[0]) this.#held.push(c);
      else out.push(c);
    }
    return { data: new Uint8Array(out), detached: false };
  }
}

/** The terminal's size, or undefined when stdout is no terminal. */
export function terminalSize(): TermSize | undefined {
  try {
    const { columns, rows } = Deno.consoleSize();
    return { width: columns, height: rows };
  } catch {
    return undefined;
  }
}

/** Raw mode on stdin when it is a terminal; the function that restores it. */
export function rawMode(on: boolean): () => void {
  if (!on || !Deno.stdin.isTerminal()) return () => {};
  Deno.stdin.setRaw(true, { cbreak: false });
  return () => {
    try {
      Deno.stdin.setRaw(false);
    } catch { /* stdin gone */ }
  };
}

/** Calls `fn` with the size now and after each SIGWINCH; the function that stops it. */
export function watchSize(fn: (s: TermSize) => void): () => void {
  const send = () => {
    const s = terminalSize();
    if (s) fn(s);
  };
  send();
  try {
    Deno.addSignalListener("SIGWINCH", send);
  } catch {
    return () => {};
  }
  return () => Deno.removeSignalListener("SIGWINCH", send);
}

/**
 * Reads this process's stdin into `push` until EOF (`end`) or detach keys
 * (when `detachKeys`): resolves to "detached" or "eof". The read in flight
 * at the end is left behind (the command exits soon after).
 */
export async function pumpStdin(
  push: (b: Uint8Array) => Promise<unknown> | unknown,
  options: { detachKeys: boolean; stop: Promise<unknown> },
): Promise<"detached" | "eof" | "stopped"> {
  const scanner = options.detachKeys ? new DetachScanner() : undefined;
  const buf = new Uint8Array(8192);
  let stopped = false;
  void options.stop.then(() => stopped = true);
  const stop = options.stop.then(() => null);
  for (;;) {
    const n = await Promise.race([Deno.stdin.read(buf).catch(() => null), stop]);
    if (stopped) return "stopped";
    if (n === null) return "eof";
    const chunk = buf.slice(0, n);
    if (!scanner) {
      await push(chunk);
      continue;
    }
    const { data, detached } = scanner.feed(chunk);
    if (data.length > 0) await push(data);
    if (detached) return "detached";
  }
}

export interface AttachOptions {
  /** The container's attach socket and ctl FIFO (in its bundle). */
  socket: string;
  ctl: string;
  /** Opens the ctl FIFO without blocking (a conmon gone is no reader: ENXIO, not a hang). */
  sys: Syscalls;
  tty: boolean;
  /** Send what the user types to the process (`-i`, or a container with stdin open). */
  stdin: boolean;
  /** Watch for ctrl-p ctrl-q (a terminal attach; docker watches only with a tty). */
  detachKeys: boolean;
}

/** An open attach socket; `session()` joins it to this process's stdio. */
export class Attachment {
  private constructor(private sock: SeqPacketSocket, private o: AttachOptions) {}

  /**
   * Connects to the attach socket. With a terminal, the size goes to conmon at once: for a
   * created container (`run -it`, `start -a`) its PTY then has the size before the process
   * starts, where it would start at 0x0 until session() sent it (`stty size` failed).
   */
  static open(o: AttachOptions): Attachment {
    const att = new Attachment(SeqPacketSocket.connect(o.socket), o);
    if (o.tty) {
      const size = terminalSize();
      if (size) sendCtl(o.sys, o.ctl, sizeMessage(size));
    }
    return att;
  }

  /**
   * The output until the process's streams end ("exited") or the user types
   * the detach keys ("detached"). stdin EOF ends only the input direction.
   */
  async session(): Promise<"exited" | "detached"> {
    const { sock, o } = this;
    const restore = rawMode(o.tty && o.stdin);
    const stopSize = o.tty ? watchSize(ctlResizer(o.sys, o.ctl)) : () => {};
    const outputDone = Promise.withResolvers<void>();
    const output = (async () => {
      try {
        for (;;) {
          const pkt = await sock.read();
          if (pkt === null) return;
          if (pkt.length < 2) continue;
          const data = pkt.subarray(1);
          if (pkt[0] === STDOUT_PIPE) writeAll(Deno.stdout, data);
          else if (pkt[0] === STDERR_PIPE) writeAll(Deno.stderr, data);
        }
      } finally {
        outputDone.resolve();
      }
    })();
    try {
      const input = o.stdin
        ? pumpStdin((b) => sock.write(b), {
          detachKeys: o.detachKeys,
          stop: outputDone.promise,
        })
        : outputDone.promise.then(() => "stopped" as const);
      const how = await input;
      if (how === "detached") return "detached";
      if (how === "eof") sock.shutdownWrite();
      await output;
      return "exited";
    } finally {
      stopSize();
      restore();
      sock.close();
      await output.catch(() => {});
    }
  }

  close(): void {
    this.sock.close();
  }
}

/**
 * A {@linkcode ProcessIO} on this process's terminal, for the exec backend:
 * raw mode, sizes on SIGWINCH, detach keys ending the session (`gone`).
 * `done()` restores the terminal.
 */
export function terminalIO(o: { tty: boolean; stdin: boolean }): {
  io: ProcessIO;
  detached: () => boolean;
  done: () => void;
} {
  const gone = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  let detached = false;
  const restore = rawMode(o.tty && o.stdin);
  let stopSize = () => {};
  const stdin = o.stdin ? new ChunkQueue() : undefined;
  if (stdin) {
    void pumpStdin((b) => stdin.push(b), { detachKeys: o.tty, stop: finished.promise }).then(
      (how) => {
        if (how === "detached") {
          detached = true;
          gone.resolve();
        }
        stdin.end();
      },
    );
  }
  const io: ProcessIO = {
    stdin,
    stdout: (b) => Promise.resolve(writeAll(Deno.stdout, b)),
    stderr: (b) => Promise.resolve(writeAll(Deno.stderr, b)),
    tty: o.tty,
    onResize: (fn) => {
      if (o.tty) stopSize = watchSize(fn);
    },
    gone: gone.promise,
  };
  return {
    io,
    detached: () => detached,
    done: () => {
      finished.resolve();
      stopSize();
      restore();
    },
  };
}
