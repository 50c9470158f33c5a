/**
 * Reading CRI log files (`<RFC3339Nano> <stream> <P|F> <content>`), as
 * written by conmon. `P` lines are partial and joined with what follows.
 */

export interface LogEntry {
  time: string;
  stream: "stdout" | "stderr";
  /** Full line content (partials joined), without the newline. */
  content: string;
}

const LINE = /^(\S+) (stdout|stderr) ([PF])(?: (.*))?$/;

/** Parses complete CRI lines; a trailing partial without its `F` is held back. */
export function parseCriLog(text: string): { entries: LogEntry[]; rest: string } {
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
    pending.parts.push(content);
    pendingRaw.push(line);
    if (tag === "F") {
      entries.push({ time: pending.time, stream: pending.stream, content: pending.parts.join("") });
      pending = undefined;
    }
  }
  const held = pending ? pendingRaw.join("\n") + "\n" : "";
  return { entries, rest: held + rest };
}

export function formatEntry(
  e: LogEntry,
  options: { timestamps?: boolean; prefix?: string } = {},
): string {
  return `${options.prefix ?? ""}${options.timestamps ? `${e.time} ` : ""}${e.content}\n`;
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
  },
): Promise<void> {
  let offset = 0;
  let carry = "";
  const dec = new TextDecoder();
  const readNew = async (first: boolean): Promise<void> => {
    let f: Deno.FsFile;
    try {
      f = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    try {
      const size = (await f.stat()).size;
      if (size < offset) offset = 0; // rotated or truncated
      if (size === offset) return;
      await f.seek(offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - offset);
      let got = 0;
      while (got < buf.length) {
        const n = await f.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      offset += got;
      const { entries, rest } = parseCriLog(carry + dec.decode(buf.subarray(0, got)));
      carry = rest;
      for (const e of first ? tail(entries, options.tail) : entries) out(e);
    } finally {
      f.close();
    }
  };
  await readNew(true);
  if (!options.follow) return;
  const poll = options.pollMs ?? 100;
  while (!options.signal?.aborted) {
    const finished = options.done ? await options.done() : false;
    await readNew(false);
    if (finished) return;
    await new Promise((r) => setTimeout(r, poll));
  }
}
