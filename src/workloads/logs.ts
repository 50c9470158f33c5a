/**
 * Reading CRI log files (`<RFC3339Nano> <stream> <P|F> <content>`), as
 * written by conmon. `P` lines are partial and joined with what follows.
 */
import type { HostFs } from "../sys/fs.ts";

/** What a log reader needs of an open file (a Deno.FsFile has it). */
export interface LogFile {
  stat(): Promise<{ size: number }>;
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
  read(p: Uint8Array): Promise<number | null>;
  close(): void;
}

/** Opens a log for reading; Deno.errors.NotFound when there is none. */
export type OpenLog = (path: string) => Promise<LogFile>;

/**
 * The real opener. Direct by design: a follow reads on from an offset, and
 * the fs port has whole-file calls only.
 */
export const openRealLog: OpenLog = (path) => Deno.open(path, { read: true });

/** An opener over a HostFs (a FakeHost's tree): the file as it is when opened. */
export function fsLogOpener(fs: HostFs): OpenLog {
  return (path) => {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFile(path);
    } catch (e) {
      return Promise.reject(e);
    }
    let pos = 0;
    return Promise.resolve({
      stat: () => Promise.resolve({ size: bytes.length }),
      seek: (offset: number, whence: Deno.SeekMode) => {
        pos = whence === Deno.SeekMode.Start
          ? offset
          : whence === Deno.SeekMode.End
          ? bytes.length + offset
          : pos + offset;
        return Promise.resolve(pos);
      },
      read: (p: Uint8Array) => {
        if (pos >= bytes.length) return Promise.resolve(null);
        const n = Math.min(p.length, bytes.length - pos);
        p.set(bytes.subarray(pos, pos + n));
        pos += n;
        return Promise.resolve(n);
      },
      close: () => {},
    });
  };
}

export interface LogEntry {
  time: string;
  stream: "stdout" | "stderr";
  /** Full line content (partials joined), without the newline. */
  content: string;
  /** Output that ended without a newline (the file's last `P` lines, flushed at the end). */
  partial?: boolean;
}

// `[^\n]*`, not `.*`: a terminal's output (tty: true) ends its lines with \r.
const LINE = /^(\S+) (stdout|stderr) ([PF])(?: ([^\n]*))?$/;

/**
 * Parses complete CRI lines; a trailing partial without its `F` is held
 * back, or with `flush` (the end of what will be read) returned as a partial entry.
 */
export function parseCriLog(
  text: string,
  options: { flush?: boolean } = {},
): { entries: LogEntry[]; rest: string } {
  const entries: LogEntry[] = [];
  const lines = text.split("\n");
  const rest = lines.pop() ?? "";
  let pending: { time: string; stream: LogEntry["stream"]; parts: string[] } | undefined;
  let pendingRaw: string[] = [];
  for (const line of lines) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, time, stream, tag, content = ""] = m;
    if (!pending) {
      pending = { time, stream: stream as LogEntry["stream"], parts: [] };
      pendingRaw = [];
    }
    pending.parts.push(tag === "F" ? content.replace(/\r$/, "") : content);
    pendingRaw.push(line);
    if (tag === "F") {
      entries.push({ time: pending.time, stream: pending.stream, content: pending.parts.join("") });
      pending = undefined;
    }
  }
  if (pending && options.flush) {
    entries.push({
      time: pending.time,
      stream: pending.stream,
      content: pending.parts.join(""),
      partial: true,
    });
    return { entries, rest };
  }
  const held = pending ? pendingRaw.join("\n") + "\n" : "";
  return { entries, rest: held + rest };
}

export function formatEntry(
  e: LogEntry,
  options: { timestamps?: boolean; prefix?: string } = {},
): string {
  return `${options.prefix ?? ""}${options.timestamps ? `${e.time} ` : ""}${e.content}${
    e.partial ? "" : "\n"
  }`;
}

/** The last `n` entries (all when n is undefined or negative). */
export function tail<T>(entries: T[], n: number | undefined): T[] {
  if (n === undefined || n < 0) return entries;
  return n === 0 ? [] : entries.slice(-n);
}

/**
 * Writes the log to `out`; with `follow`, keeps reading new lines until
 * `done()` says the writer is finished and the file has been drained.
 */
export async function streamLog(
  path: string,
  out: (e: LogEntry) => void,
  options: {
    tail?: number;
    follow?: boolean;
    done?: () => boolean | Promise<boolean>;
    pollMs?: number;
    signal?: AbortSignal;
    /** How the log is opened (default: the real file system). */
    open?: OpenLog;
  },
): Promise<void> {
  const open = options.open ?? openRealLog;
  let offset = 0;
  let carry = "";
  const dec = new TextDecoder();
  const readNew = async (first: boolean, final: boolean): Promise<void> => {
    let f: LogFile;
    try {
      f = await open(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    try {
      const size = (await f.stat()).size;
      if (size < offset) offset = 0; // rotated or truncated
      if (first && options.tail !== undefined && options.tail >= 0) {
        // --tail reads back from the end, never the whole file.
        offset = await tailOffset(f, size, options.tail);
      }
      if (size === offset) {
        if (final && carry) {
          for (const e of parseCriLog(carry, { flush: true }).entries) out(e);
          carry = "";
        }
        return;
      }
      await f.seek(offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - offset);
      let got = 0;
      while (got < buf.length) {
        const n = await f.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      offset += got;
      const { entries, rest } = parseCriLog(carry + dec.decode(buf.subarray(0, got)), {
        flush: final,
      });
      carry = rest;
      for (const e of first ? tail(entries, options.tail) : entries) out(e);
    } finally {
      f.close();
    }
  };
  await readNew(true, !options.follow);
  if (!options.follow) return;
  const poll = options.pollMs ?? 100;
  while (!options.signal?.aborted) {
    const finished = options.done ? await options.done() : false;
    await readNew(false, finished);
    if (finished) return;
    await new Promise((r) => setTimeout(r, poll));
  }
}

/**
 * Where the last `n` log entries of an open CRI log of `size` bytes begin,
 * found by reading 64 KiB blocks backwards from the end. An entry ends with
 * an `F` line (after any `P` lines), so the offset is always just after an
 * `F` line, never inside an entry.
 */
export async function tailOffset(f: LogFile, size: number, n: number): Promise<number> {
  if (n === 0) return size;
  const block = 64 * 1024;
  let pos = size;
  let data = new Uint8Array(0);
  while (pos > 0) {
    const start = Math.max(0, pos - block);
    const chunk = new Uint8Array(pos - start);
    await f.seek(start, Deno.SeekMode.Start);
    let got = 0;
    while (got < chunk.length) {
      const r = await f.read(chunk.subarray(got));
      if (r === null) break;
      got += r;
    }
    const joined = new Uint8Array(chunk.length + data.length);
    joined.set(chunk);
    joined.set(data, chunk.length);
    data = joined;
    pos = start;
    // Ends of complete lines, last first; a line counts once it is whole.
    let ends = 0;
    for (let i = data.length - 1; i >= 0; i--) {
      if (data[i] !== 10 || i === data.length - 1) continue;
      // The line ending at i: is it a full entry's last line?
      let j = i - 1;
      while (j >= 0 && data[j] !== 10) j--;
      if (j < 0 && pos > 0) break; // its start is in a block not read yet
      if (isFullLine(data.subarray(j + 1, i)) && ++ends === n) return pos + i + 1;
    }
  }
  return 0;
}

/** True for a CRI log line tagged F (`TIME STREAM F content`). */
function isFullLine(line: Uint8Array): boolean {
  let spaces = 0;
  for (let k = 0; k < line.length; k++) {
    if (line[k] !== 32) continue;
    if (++spaces === 2) return line[k + 1] === 70; // 'F'
  }
  return false;
}
