/**
 * What the daemon tells: its status file (the run root; read by `rkl daemon
 * status`) and its event log (the state root, one JSON line per event).
 */
import type { Action } from "./reconcile.ts";
import type { ProbeKind } from "../workloads/probes.ts";
import type { Host } from "../workloads/host.ts";

export interface DaemonEvent {
  time: string;
  action: Action["kind"] | "error" | "start" | "stop" | "restart" | "probe" | "rename";
  probe?: ProbeKind;
  container?: string;
  /** A rename's old name (`rkl rename` appends it; docker's `oldName` attribute). */
  oldName?: string;
  image?: string;
  exitCode?: number;
  pod?: string;
  file?: string;
  hash?: string;
  error?: string;
}

export interface DaemonStatus {
  pid: number;
  /** Start time of `pid` (/proc/PID/stat), to tell a live daemon from a reused pid. */
  pidStart?: number;
  startedAt: string;
  manifests: string;
  lastSync: string;
  errors: Record<string, string>;
  pods: Record<
    string,
    { file: string; hash: string; lastError?: string; ready?: boolean; working?: string }
  >;
}

export function daemonPaths(host: Host) {
  return {
    status: `${host.paths.runRoot}/daemon/status.json`,
    events: `${host.paths.root}/daemon/events.jsonl`,
  };
}

/**
 * The size at which the event log is rotated: podman's default for its own
 * file event log (events_logfile_max_size), 1 MB. The log is ROOT/daemon/
 * events.jsonl and one older file, events.jsonl.1: at most about 2 MB on a
 * node that runs for years, however often its containers restart.
 */
export const EVENTS_MAX_BYTES = 1_000_000;

/**
 * Appends one event (one JSON line, one write with O_APPEND) and rotates the
 * log once it has reached `maxBytes`. Two writers (the daemon, `rkl rename`)
 * may reach the limit together: each renames only the file it appended to
 * (same inode at the path), so a second rotation never replaces the first
 * one's `.1` with a file of one line.
 */
export function appendEvent(
  host: Host,
  e: Omit<DaemonEvent, "time">,
  maxBytes = EVENTS_MAX_BYTES,
): void {
  const p = daemonPaths(host).events;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  const line = new TextEncoder().encode(
    JSON.stringify({ time: host.now().toISOString(), ...e }) + "\n",
  );
  const f = Deno.openSync(p, { append: true, create: true, mode: 0o600 });
  try {
    for (let off = 0; off < line.length;) off += f.writeSync(line.subarray(off));
    const st = f.statSync();
    if (st.size >= maxBytes) rotateIfSame(p, st);
  } finally {
    f.close();
  }
}

function rotateIfSame(path: string, appended: Deno.FileInfo): void {
  try {
    const now = Deno.lstatSync(path);
    if (now.ino !== appended.ino || now.dev !== appended.dev) return; // rotated by another writer
    Deno.renameSync(path, `${path}.1`);
  } catch {
    // gone: another writer rotated it between the two calls
  }
}

/** Where a reader of the event log is: the file (inode) and how far into it. */
export interface LogCursor {
  ino: number | null;
  offset: number;
}

/** Whole lines of `path` from `offset` (at most 16 MiB), the inode, and the offset after them. */
function readLines(
  path: string,
  offset: number,
): { text: string; ino: number | null; end: number } | undefined {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    const st = f.statSync();
    const from = st.size < offset ? 0 : offset; // shorter than we read: a new file
    const buf = new Uint8Array(Math.min(st.size - from, 16 << 20));
    f.seekSync(from, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const n = f.readSync(buf.subarray(got));
      if (n === null || n === 0) break;
      got += n;
    }
    // Only whole lines: a line being appended is read at the next look.
    const last = buf.subarray(0, got).lastIndexOf(10);
    return {
      text: new TextDecoder().decode(buf.subarray(0, last + 1)),
      ino: st.ino,
      end: from + last + 1,
    };
  } finally {
    f.close();
  }
}

/**
 * The event log's lines after `cursor`, and the cursor after them. Without a
 * cursor: the whole history, the rotated file's lines first. With one, when
 * the log was rotated since (another inode at the path), the rest of the
 * rotated file comes first, then the new file from its start: no line is
 * lost or read twice across a rotation (unless two rotations passed between
 * two looks, when the lines of the file in between are skipped).
 */
export function readEvents(path: string, cursor?: LogCursor): { text: string; cursor: LogCursor } {
  let text = "";
  let cur = readLines(path, cursor?.offset ?? 0);
  if (cursor === undefined) {
    text = readLines(`${path}.1`, 0)?.text ?? "";
  } else if (cursor.ino !== null && cur?.ino !== cursor.ino) {
    // Rotated since the last look: the old file's rest, then the new one whole.
    const old = readLines(`${path}.1`, cursor.offset);
    if (old && old.ino === cursor.ino) text = old.text;
    if (cur && cursor.offset > 0) cur = readLines(path, 0);
  }
  if (!cur) return { text, cursor: { ino: null, offset: 0 } };
  return { text: text + cur.text, cursor: { ino: cur.ino, offset: cur.end } };
}

export function writeStatus(host: Host, st: DaemonStatus): void {
  const p = daemonPaths(host).status;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  const tmp = `${p}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, p);
}

export function readStatus(host: Host): DaemonStatus | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(daemonPaths(host).status));
  } catch {
    return undefined;
  }
}
