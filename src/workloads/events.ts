/**
 * `rkl events`: what happened, from two sources.
 *
 * - The event log (ROOT/daemon/events.jsonl, src/workloads/event_log.ts):
 *   the daemon's start and stop, static pods created, recreated and
 *   deleted, containers it restarted, probe results, errors; and, daemon or
 *   not, what commands append: renames, the `destroy` of every container
 *   and pod removed (a record's times tell its create, start and die, but
 *   not its removal once it is gone), `kill` (with the signal), `stop`,
 *   `restart`, `pause`, `unpause`, a user's exec (`exec_create: CMD`,
 *   `exec_start: CMD`, `exec_die`, each with its `execID`), and the images'
 *   `pull`, `import`, `tag`, `untag` and `delete`.
 * - The records in the store, for what happened without a daemon: each
 *   container's create, start and die (createdAt, startedAt, finishedAt
 *   and exit code), each pod's create and start. A record keeps only its
 *   latest start and exit, so older ones are not in this history; while
 *   streaming, changes are seen as they happen (a record that appears,
 *   changes status or goes away: destroy, printed from here rather than
 *   from the log).
 *
 * Pure parts (parsing, mapping, filtering, time arguments) are here; the CLI
 * polls. Events are docker-shaped: Type, Action, Actor (ID and attributes),
 * time.
 */
import { UsageError } from "../errors.ts";
import { formatReference, parseReference, tagName } from "../image/reference.ts";

export interface RklEvent {
  /** ISO 8601 time. */
  time: string;
  type: "container" | "pod" | "daemon" | "image";
  action: string;
  /** The container's or pod's name ("rkl" for the daemon). */
  actor: string;
  attributes: Record<string, string>;
}

/** A line of the event log (src/workloads/event_log.ts DaemonEvent). */
interface LoggedEvent {
  time?: unknown;
  action?: unknown;
  probe?: unknown;
  container?: unknown;
  exitCode?: unknown;
  pod?: unknown;
  file?: unknown;
  hash?: unknown;
  error?: unknown;
  oldName?: unknown;
  image?: unknown;
  signal?: unknown;
  ref?: unknown;
  name?: unknown;
  labels?: unknown;
  execId?: unknown;
  command?: unknown;
}

const str = (v: unknown) => typeof v === "string" ? v : undefined;

/**
 * The events of the daemon log's text; lines that are not JSON objects with
 * a time and an action (a torn last line, another writer) are skipped.
 */
export function parseDaemonLog(text: string): RklEvent[] {
  const out: RklEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let e: LoggedEvent;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof e !== "object" || e === null) continue;
    const time = str(e.time), action = str(e.action);
    if (!time || !action || Number.isNaN(Date.parse(time))) continue;
    const attributes: Record<string, string> = {};
    // A container's labels first, as docker's attributes; rkl's own fields win over a label.
    if (typeof e.labels === "object" && e.labels !== null && !Array.isArray(e.labels)) {
      for (const [k, v] of Object.entries(e.labels)) if (typeof v === "string") attributes[k] = v;
    }
    for (
      const k of ["file", "hash", "error", "probe", "oldName", "image", "signal", "name"] as const
    ) {
      const v = str(e[k]);
      if (v !== undefined) attributes[k] = v;
    }
    if (typeof e.exitCode === "number") attributes.exitCode = String(e.exitCode);
    const execId = str(e.execId);
    if (execId !== undefined) attributes.execID = execId;
    const container = str(e.container), pod = str(e.pod), ref = str(e.ref);
    if (ref !== undefined) {
      out.push({ time, type: "image", action, actor: ref, attributes });
    } else if (container !== undefined) {
      // A pod's member: its pod an attribute, as the records give it.
      if (pod !== undefined) attributes.pod = pod;
      // A probe result is docker's health_status; a restart is its restart;
      // an exec's create and start name its command, as docker's do.
      const command = str(e.command);
      const act = action === "probe"
        ? `health_status: ${attributes.error ? "unhealthy" : "healthy"}`
        : command !== undefined && (action === "exec_create" || action === "exec_start")
        ? `${action}: ${command}`
        : action;
      out.push({ time, type: "container", action: act, actor: container, attributes });
    } else if (pod !== undefined) {
      out.push({ time, type: "pod", action, actor: pod, attributes });
    } else {
      out.push({ time, type: "daemon", action, actor: "rkl", attributes });
    }
  }
  return out;
}

/** What a record says about itself. */
export interface RecordView {
  kind: "container" | "pod";
  name: string;
  id?: string;
  image?: string;
  pod?: string;
  status: string;
  createdAt?: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  labels?: Record<string, string>;
}

/** The attributes of a record's events, as docker's: its labels, then its image and pod. */
function attributesOf(r: RecordView): Record<string, string> {
  const attributes: Record<string, string> = { ...r.labels };
  if (r.image) attributes.image = r.image;
  if (r.pod) attributes.pod = r.pod;
  return attributes;
}

/** The events a record's times tell: create, start, die. */
export function recordEvents(r: RecordView): RklEvent[] {
  const attributes = attributesOf(r);
  const ev = (time: string | undefined, action: string, extra: Record<string, string> = {}) =>
    time && !Number.isNaN(Date.parse(time))
      ? [{ time, type: r.kind, action, actor: r.name, attributes: { ...attributes, ...extra } }]
      : [];
  return [
    ...ev(r.createdAt, "create"),
    ...ev(r.startedAt, "start"),
    // A die only once the start is told: a process can exit before the command that started it
    // has written its start (a stream's look between the two would otherwise tell die, then
    // start); and never before the start (file times lag a kernel tick, see exitTime).
    ...(r.status === "exited" && r.startedAt
      ? ev(
        laterOf(r.finishedAt, r.startedAt),
        "die",
        r.exitCode === undefined ? {} : { exitCode: String(r.exitCode) },
      )
      : []),
  ];
}

/** The later of two ISO times (`a` when `b` is missing or not a time). */
function laterOf(a: string | undefined, b: string): string | undefined {
  if (a === undefined) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/**
 * Where an action falls in a life, for events of one container or pod in one
 * millisecond: the log's lines (kill, stop, destroy) and the records'
 * (create, start, die) are merged, and a kill, its die and the stop can all
 * fall in one. Other actions keep their place among those.
 */
const LIFE_ORDER: Record<string, number> = { create: 0, start: 1, die: 3, stop: 4, destroy: 5 };

/**
 * Sorted by time (stable); where one actor has several events in one
 * millisecond, those take its life's order (docker's) in the places they hold.
 */
export function byTime(events: RklEvent[]): RklEvent[] {
  const sorted = events.map((e, i) => ({ e, i, t: Date.parse(e.time) }))
    .sort((a, b) => a.t - b.t || a.i - b.i).map((x) => x.e);
  const rank = (e: RklEvent) => LIFE_ORDER[e.action] ?? 2;
  for (let a = 0; a < sorted.length;) {
    let b = a + 1;
    const t = Date.parse(sorted[a].time);
    while (b < sorted.length && Date.parse(sorted[b].time) === t) b++;
    if (b - a > 1) {
      const slots = new Map<string, number[]>();
      for (let k = a; k < b; k++) {
        const id = `${sorted[k].type}/${sorted[k].actor}`;
        slots.set(id, [...(slots.get(id) ?? []), k]);
      }
      for (const ks of slots.values()) {
        if (ks.length < 2) continue;
        const mine = ks.map((k) => sorted[k]);
        const ordered = mine.map((e, n) => ({ e, n })).sort((x, y) =>
          rank(x.e) - rank(y.e) || x.n - y.n
        );
        ks.forEach((k, n) => sorted[k] = ordered[n].e);
      }
    }
    a = b;
  }
  return sorted;
}

/** A record's identity across a rename: its kind, id and creation time (its key is its name). */
function identity(r: RecordView): string | undefined {
  return r.id === undefined ? undefined : `${r.kind}/${r.id}@${r.createdAt ?? ""}`;
}

/**
 * The events that differ between two snapshots (name → view): new, changed,
 * gone, matched by id and creation time where the view has an id: a record
 * found under another name was renamed, not destroyed and made again (the
 * log has its rename event; its create and start are not told twice), and a
 * name taken by another container means the first one is gone.
 */
export function diffRecords(
  before: Map<string, RecordView>,
  after: Map<string, RecordView>,
  now: string,
): RklEvent[] {
  const out: RklEvent[] = [];
  const beforeById = new Map<string, RecordView>();
  for (const r of before.values()) {
    const id = identity(r);
    if (id !== undefined) beforeById.set(id, r);
  }
  const afterIds = new Set<string>();
  for (const [key, r] of after) {
    const id = identity(r);
    if (id !== undefined) afterIds.add(id);
    // Its own earlier view, under this name or (renamed) another; by name alone without an id.
    const old = id === undefined ? before.get(key) : beforeById.get(id);
    const seen = new Set((old ? recordEvents(old) : []).map((e) => `${e.action}@${e.time}`));
    for (const e of recordEvents(r)) if (!seen.has(`${e.action}@${e.time}`)) out.push(e);
  }
  for (const [key, r] of before) {
    const id = identity(r);
    // Still there (perhaps renamed); a name now another container's: this one is gone.
    if (id === undefined ? after.has(key) : afterIds.has(id)) continue;
    out.push({
      time: now,
      type: r.kind,
      action: "destroy",
      actor: r.name,
      attributes: attributesOf(r),
    });
  }
  return byTime(out);
}

/**
 * What a stream prints once though two sources tell it. A removal: the
 * records tell it when a record seen at one look is gone at the next, and
 * the event log has its `destroy`, written after the record goes and after
 * the container's `die` (with the exit's own time): the log's lines come at
 * the same look as the records' destroy or at a later one. So the records'
 * destroy is held until the log's comes (that one is printed, after its die),
 * or for HOLD_MS (a removal whose log line could not be written). An exit:
 * the records tell `die` when they see the container exited; a die the
 * records told, or that a record showed when the stream began, is not
 * printed again from the log. A container made and removed between two
 * looks was never seen in the records: its die and destroy are the log's.
 */
export class StreamDedup {
  /** The records' destroys waiting for the log's copy, by container or pod. */
  #held = new Map<string, RklEvent>();
  /** Each container's last exit the records told: a removal logs that one (a restart's go by). */
  #dies = new Map<string, number>();

  /** Events of the records before the stream's first look (printed or not: they are past). */
  told(events: RklEvent[]): void {
    for (const e of events) if (e.action === "die") this.#dies.set(key(e), Date.parse(e.time));
  }

  /**
   * One look's events: the log's lines read since the last look, and the
   * records' diff (its destroys timed `now`, the look's time).
   */
  look(logged: RklEvent[], diff: RklEvent[], now = Date.now()): RklEvent[] {
    const out: RklEvent[] = [];
    for (const e of diff) {
      if (e.action === "destroy") this.#held.set(key(e), e);
      else out.push(e);
    }
    this.told(diff);
    for (const e of logged) {
      if (e.type === "container" || e.type === "pod") {
        if (e.action === "die" && this.#dies.get(key(e)) === Date.parse(e.time)) {
          this.#dies.delete(key(e));
          continue;
        }
        if (e.action === "destroy") this.#held.delete(key(e));
      }
      out.push(e);
    }
    for (const [k, e] of this.#held) {
      if (now - Date.parse(e.time) >= HOLD_MS) {
        this.#held.delete(k);
        out.push(e);
      }
    }
    return byTime(out);
  }

  /** The destroys still held, when the stream ends. */
  flush(): RklEvent[] {
    const out = [...this.#held.values()];
    this.#held.clear();
    return byTime(out);
  }
}

/** How long a stream holds the records' destroy for the log's copy. */
export const HOLD_MS = 1000;

const key = (e: RklEvent) => `${e.type}/${e.actor}`;

export interface EventFilter {
  type: Set<string>;
  actor: Set<string>;
  event: Set<string>;
  /** `image=REF`: images by reference or id, containers by the image they run. */
  image: Set<string>;
  /** `label=KEY` or `label=KEY=VALUE`: [key, value or undefined]; all must match. */
  label: [string, string | undefined][];
}

const TYPES = ["container", "pod", "daemon", "image"];

/**
 * `--filter key=value` (repeatable): type=container|pod|daemon|image,
 * container=NAME, pod=NAME, image=REF, label=KEY[=VALUE], event=ACTION. Values
 * of one key are alternatives (OR), but every label must match; different keys
 * must all match (AND), as docker's filters.
 */
export function parseFilters(args: string[]): EventFilter {
  const f: EventFilter = {
    type: new Set(),
    actor: new Set(),
    event: new Set(),
    image: new Set(),
    label: [],
  };
  for (const a of args) {
    const eq = a.indexOf("=");
    const k = eq < 0 ? a : a.slice(0, eq);
    const v = eq < 0 ? "" : a.slice(eq + 1);
    if (!v) throw new UsageError(`--filter ${JSON.stringify(a)}: give KEY=VALUE`);
    if (k === "type") {
      if (!TYPES.includes(v)) {
        throw new UsageError(`--filter type=${v}: the types are container, pod, daemon and image`);
      }
      f.type.add(v);
    } else if (k === "container" || k === "pod") {
      f.actor.add(`${k}/${v}`);
    } else if (k === "event") f.event.add(v);
    else if (k === "image") f.image.add(imageKey(v));
    else if (k === "label") {
      const eq2 = v.indexOf("=");
      f.label.push(eq2 < 0 ? [v, undefined] : [v.slice(0, eq2), v.slice(eq2 + 1)]);
    } else {
      throw new UsageError(
        `--filter ${JSON.stringify(a)}: the keys are type, container, pod, image, label and event`,
      );
    }
  }
  return f;
}

export function matches(f: EventFilter, e: RklEvent): boolean {
  if (f.type.size && !f.type.has(e.type)) return false;
  if (f.event.size && !f.event.has(e.action) && !f.event.has(e.action.split(":")[0])) return false;
  // Labels as docker's: every one given must be there (with that value, when given).
  for (const [k, v] of f.label) {
    if (!Object.hasOwn(e.attributes, k) || (v !== undefined && e.attributes[k] !== v)) return false;
  }
  if (f.image.size) {
    const refs = e.type === "image" ? [e.actor, e.attributes.name] : [e.attributes.image];
    if (!refs.some((r) => r !== undefined && f.image.has(imageKey(r)))) return false;
  }
  if (f.actor.size) {
    const own = f.actor.has(`${e.type}/${e.actor}`);
    // A pod filter also takes its containers' events.
    const inPod = e.attributes.pod !== undefined && f.actor.has(`pod/${e.attributes.pod}`);
    if (!own && !inPod) return false;
  }
  return true;
}

/**
 * A reference as the filter compares it: `busybox`, `busybox:latest` and
 * `docker.io/library/busybox:latest` are one; an id with or without
 * `sha256:` is the id; anything else as written.
 */
function imageKey(ref: string): string {
  if (/^(sha256:)?[a-f0-9]{64}$/.test(ref)) return ref.replace(/^sha256:/, "");
  try {
    const r = parseReference(ref);
    return tagName(r) ?? formatReference(r);
  } catch {
    return ref;
  }
}

/**
 * A time argument as docker takes it: RFC 3339 / ISO 8601, Unix seconds
 * (fractions allowed), or a duration before `now` (`10m`, `1h30m`, `45s`).
 * Returns ms since the epoch.
 */
export function parseTimeArg(flag: string, v: string, now: number): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const dur = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/
    .exec(v);
  if (dur && v !== "") {
    const [, h, m, s, ms] = dur;
    return now - Math.round(
      Number(h ?? 0) * 3600e3 + Number(m ?? 0) * 60e3 + Number(s ?? 0) * 1e3 + Number(ms ?? 0),
    );
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) {
    throw new UsageError(
      `${flag} ${
        JSON.stringify(v)
      }: give a time (2024-05-01T10:00:00Z), Unix seconds, or a duration such as 10m`,
    );
  }
  return t;
}

/** docker's text line: `TIME TYPE ACTION ACTOR (k=v, ...)`. */
export function formatEvent(e: RklEvent): string {
  const attrs = Object.entries(e.attributes).sort(([a], [b]) => a.localeCompare(b));
  // A label's key or value, or an exec's command in its action, with a control character (a
  // newline) is quoted: one event, one line.
  // deno-lint-ignore no-control-regex
  const safe = (t: string) => /[\x00-\x1f\x7f]/.test(t) ? JSON.stringify(t) : t;
  const tail = attrs.length
    ? ` (${attrs.map(([k, v]) => `${safe(k)}=${safe(v)}`).join(", ")})`
    : "";
  return `${e.time} ${e.type} ${safe(e.action)} ${safe(e.actor)}${tail}`;
}

/** docker's JSON shape: Type, Action, Actor {ID, Attributes}, time (s), timeNano. */
export function eventJson(e: RklEvent): Record<string, unknown> {
  const ms = Date.parse(e.time);
  return {
    Type: e.type,
    Action: e.action,
    Actor: { ID: e.actor, Attributes: e.attributes },
    time: Math.floor(ms / 1000),
    timeNano: ms * 1e6,
  };
}
