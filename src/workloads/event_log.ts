/**
 * The event log: ROOT/daemon/events.jsonl, one JSON line per event, read by
 * `rkl events` (src/workloads/events.ts parses it). The daemon appends its
 * own events (start, stop, static pods, restarts, probes, errors); every
 * command appends, daemon or not, what the records cannot tell: removals
 * (`die` at the exit's time, then `destroy`), renames, signals (`kill`,
 * `stop`, `restart`), `pause` and `unpause`, and what happens to images
 * (`pull`, `import`, `tag`, `untag`, `delete`), and a user's exec
 * (`exec_create`, `exec_start`, `exec_die`).
 */
import type { ProbeKind } from "./probes.ts";
import type { Host } from "./host.ts";

export interface DaemonEvent {
  time: string;
  action:
    // the daemon's static-pod actions (src/daemon/reconcile.ts Action)
    | "create"
    | "recreate"
    | "delete"
    | "error"
    | "start"
    | "stop"
    | "restart"
    | "probe"
    | "rename"
    | "destroy"
    // containers, docker's: kill (with its signal), pause, unpause; a removed one's die
    | "die"
    | "kill"
    | "pause"
    | "unpause"
    // images (with `ref`), docker's: pull, import, tag, untag, delete
    | "pull"
    | "import"
    | "tag"
    | "untag"
    | "delete"
    // a user's exec (`exec`, `compose exec`), docker's: with its id, the command and, at its end, the code
    | "exec_create"
    | "exec_start"
    | "exec_die";
  probe?: ProbeKind;
  /** A kill's signal, as its number (docker's `signal` attribute). */
  signal?: string;
  /**
   * An image event's actor: the reference pulled, or the image id (docker's
   * Actor.ID), with `name` the tag it concerns.
   */
  ref?: string;
  name?: string;
  /** A container's labels: attributes of its events, as docker's (`compose events` picks by them). */
  labels?: Record<string, string>;
  container?: string;
  /** An exec's id (docker's `execID` attribute) and, at its create and start, its command. */
  execId?: string;
  command?: string;
  /** A rename's old name (`rkl rename` appends it; docker's `oldName` attribute). */
  oldName?: string;
  image?: string;
  exitCode?: number;
  pod?: string;
  file?: string;
  hash?: string;
  error?: string;
}

/**
 * What a container event names of it: its name, image, pod and labels
 * (docker's attributes; `--filter pod=` takes a pod's containers by it).
 */
export function about(
  rec: { name: string; image?: string; pod?: string; labels?: Record<string, string> },
): Pick<DaemonEvent, "container" | "image" | "pod" | "labels"> {
  const labels = rec.labels ?? {};
  return {
    container: rec.name,
    image: rec.image,
    ...(rec.pod ? { pod: rec.pod } : {}),
    ...(Object.keys(labels).length ? { labels } : {}),
  };
}

/** The event log of a state root. */
export function eventLogPath(paths: { root: string }): string {
  return `${paths.root}/daemon/events.jsonl`;
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
 * log once it has reached `maxBytes`. Two writers (the daemon, a command)
 * may reach the limit together: each renames only the file it appended to
 * (the inode it saw after its write is still the one at the path), so a
 * second rotation does not replace the first one's `.1` with a file of one line.
 */
export function appendEvent(
  host: Pick<Host, "paths" | "now" | "fs">,
  e: Omit<DaemonEvent, "time">,
  maxBytes = EVENTS_MAX_BYTES,
  at: Date = host.now(),
): void {
  const p = eventLogPath(host.paths);
  const line = JSON.stringify({ time: at.toISOString(), ...e }) + "\n";
  const write = () => host.fs.writeTextFile(p, line, { append: true, create: true, mode: 0o600 });
  try {
    write();
  } catch (err) {
    // The first event of a state root: its directory is made then, not at every append.
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    host.fs.mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    write();
  }
  const st = host.fs.stat(p);
  if (st.size < maxBytes) return;
  try {
    const now = host.fs.lstat(p);
    if (now.ino !== st.ino || now.dev !== st.dev) return; // rotated by another writer
    host.fs.rename(p, `${p}.1`);
  } catch {
    // gone: another writer rotated it meanwhile
  }
}

/**
 * appendEvent for a command whose work is done: an event log that cannot be
 * written (a full disk) is reported, and the command still succeeds. `at`:
 * when it happened, if before now (a signal's time is when it was sent, not
 * when the runtime returned, by which time the container may have died).
 */
export function noteEvent(
  host: Pick<Host, "paths" | "now" | "fs" | "warn">,
  e: Omit<DaemonEvent, "time">,
  at?: Date,
): void {
  try {
    appendEvent(host, e, EVENTS_MAX_BYTES, at);
  } catch (err) {
    host.warn(
      `cannot append to the event log ${eventLogPath(host.paths)}: ${(err as Error).message}`,
    );
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
    const old = readLines(`${path}.1`, 0);
    // Rotated between the two reads: the file read as the log is the .1 now,
    // and the next look reads its rest and the new file (the older .1 is skipped).
    if (old && cur && old.ino === cur.ino) {
      return { text: cur.text, cursor: { ino: cur.ino, offset: cur.end } };
    }
    text = old?.text ?? "";
  } else if (cursor.ino !== null && cur?.ino !== cursor.ino) {
    // Rotated since the last look: the old file's rest, then the new one whole.
    const old = readLines(`${path}.1`, cursor.offset);
    if (old && old.ino === cursor.ino) text = old.text;
    if (cur && cursor.offset > 0) cur = readLines(path, 0);
  }
  if (!cur) return { text, cursor: { ino: null, offset: 0 } };
  return { text: text + cur.text, cursor: { ino: cur.ino, offset: cur.end } };
}
