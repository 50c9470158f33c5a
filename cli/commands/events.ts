/** `rkl events`: what happened (the event log and the records), then what happens. */
import type { Command } from "commander";
import { UsageError } from "../../src/errors.ts";
import { listContainers } from "../../src/workloads/container.ts";
import type { PodRecord } from "../../src/workloads/pod.ts";
import type { Host } from "../../src/workloads/host.ts";
import {
  byTime,
  diffRecords,
  eventJson,
  formatEvent,
  matches,
  parseDaemonLog,
  parseFilters,
  parseTimeArg,
  recordEvents,
  type RecordView,
  type RklEvent,
  StreamDedup,
} from "../../src/workloads/events.ts";
import { eventLogPath, readEvents } from "../../src/workloads/event_log.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

/** How often a streaming `rkl events` looks at the log and the records, whatever happens. */
export const POLL_MS = 250;
/** How long after a change it looks: one step's writes (a record's rename, a log line) settle. */
const SETTLE_MS = 10;

/**
 * Wakes a stream when a record, an exit file or the event log changes
 * (inotify on those directories), so a container that lives a few ms is
 * still seen made and started; and every POLL_MS whatever happens.
 */
export class Waker {
  #watchers: Deno.FsWatcher[] = [];
  #changed = false;
  #wake?: () => void;

  constructor(dirs: string[], private readonly pollMs = POLL_MS) {
    const watched = new Set(dirs.filter((d) => this.#watch(d, true)));
    this.#missing = dirs.filter((d) => !watched.has(d));
    // A directory not made yet (a new state root has no records until its first container):
    // its parent is watched (unless it is watched already), and the directory from when it
    // appears.
    for (const parent of new Set(this.#missing.map((d) => d.slice(0, d.lastIndexOf("/"))))) {
      if (!watched.has(parent)) this.#watch(parent, false);
    }
  }

  #missing: string[];

  /** Watches `dir`; false when it cannot (not there). */
  #watch(dir: string, recursive: boolean): boolean {
    let w: Deno.FsWatcher;
    try {
      w = Deno.watchFs(dir, { recursive });
    } catch {
      return false;
    }
    this.#watchers.push(w);
    (async () => {
      try {
        for await (const _ of w) {
          if (this.#missing.length) {
            this.#missing = this.#missing.filter((d) => !this.#watch(d, true));
          }
          this.#changed = true;
          this.#wake?.();
        }
      } catch { /* closed */ }
    })();
    return true;
  }

  /** Until something changed (and SETTLE_MS more), POLL_MS, or the abort; which of them. */
  async next(signal: AbortSignal): Promise<"changed" | "poll" | "abort"> {
    let why: "changed" | "poll" | "abort" = "changed";
    if (!this.#changed && !signal.aborted) {
      why = await new Promise<"changed" | "poll" | "abort">((resolve) => {
        const done = (w: "changed" | "poll" | "abort") => {
          clearTimeout(t);
          signal.removeEventListener("abort", onAbort);
          this.#wake = undefined;
          resolve(w);
        };
        const onAbort = () => done("abort");
        const t = setTimeout(() => done("poll"), this.pollMs);
        this.#wake = () => done("changed");
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } else if (signal.aborted) why = "abort";
    if (this.#changed) await new Promise((r) => setTimeout(r, SETTLE_MS));
    this.#changed = false;
    return why;
  }

  close(): void {
    for (const w of this.#watchers) {
      try {
        w.close();
      } catch { /* closed */ }
    }
  }
}

async function snapshot(host: Host): Promise<Map<string, RecordView>> {
  const out = new Map<string, RecordView>();
  for (const c of await listContainers(host)) {
    out.set(`container/${c.name}`, {
      kind: "container",
      name: c.name,
      id: c.id,
      image: c.image,
      pod: c.pod,
      status: c.status,
      createdAt: c.createdAt,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      exitCode: c.exitCode,
      labels: c.labels,
    });
  }
  for (const p of host.store.list<PodRecord>("pods")) {
    out.set(`pod/${p.name}`, {
      kind: "pod",
      name: p.name,
      status: "running",
      createdAt: p.createdAt,
      startedAt: p.startedAt,
    });
  }
  return out;
}

export function registerEvents(program: Command, ctx: Context): void {
  program.command("events").description(
    "what happened to containers, pods, images and the daemon, then what happens (until ^C or --until)",
  )
    .option("--since <time>", "show events since: RFC 3339, Unix seconds or a duration (10m)")
    .option("--until <time>", "stop at this time (same forms); in the past: print and exit")
    .option(
      "--filter <key=value>",
      "type=container|pod|daemon|image, container=NAME, pod=NAME, image=REF, label=KEY[=VALUE], event=ACTION (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--format <format>", "json: one JSON object per line (docker's shape)")
    .action(async (o: { since?: string; until?: string; filter?: string[]; format?: string }) => {
      if (o.format !== undefined && o.format !== "json") {
        throw new UsageError(`--format ${JSON.stringify(o.format)}: only json is understood`);
      }
      const filter = parseFilters(o.filter ?? []);
      const host = ctx.host();
      const now = host.now().getTime();
      const since = o.since === undefined ? undefined : parseTimeArg("--since", o.since, now);
      const until = o.until === undefined ? undefined : parseTimeArg("--until", o.until, now);
      const print = (events: RklEvent[]) => {
        for (const e of events) {
          const t = Date.parse(e.time);
          if (since !== undefined && t < since) continue;
          if (until !== undefined && t > until) continue;
          if (!matches(filter, e)) continue;
          write(o.format === "json" ? JSON.stringify(eventJson(e)) + "\n" : formatEvent(e) + "\n");
        }
      };
      await followEvents(host, { since, until, print });
    });
}

/**
 * What happened (with `since`: the log and the records from then) and then
 * what happens, until ^C or `until`, each batch given to `print` (which
 * filters: a batch may hold events before `since` or after `until`).
 */
export async function followEvents(
  host: Host,
  o: { since?: number; until?: number; print: (events: RklEvent[]) => void },
): Promise<void> {
  const { since, until, print } = o;
  const logPath = eventLogPath(host.paths);
  // Watching from before the first look: a change during it wakes the next one.
  const waker = new Waker([
    `${host.paths.root}/records`,
    `${host.paths.root}/exits`,
    logPath.slice(0, logPath.lastIndexOf("/")),
  ]);
  let { text, cursor } = readEvents(logPath);
  let before = await snapshot(host);
  const past = [...before.values()].flatMap(recordEvents);
  const dedup = new StreamDedup();
  dedup.told(past);
  // The past is printed only when asked for (--since), as docker does.
  if (since !== undefined) print(byTime([...parseDaemonLog(text), ...past]));
  const stop = new AbortController();
  const onInt = () => stop.abort();
  Deno.addSignalListener("SIGINT", onInt);
  try {
    while (!stop.signal.aborted && (until === undefined || host.now().getTime() <= until)) {
      await waker.next(stop.signal);
      ({ text, cursor } = readEvents(logPath, cursor));
      const after = await snapshot(host);
      // A removal's `destroy` and an exit's `die` are in the log and the records: printed once.
      const now = host.now();
      print(
        dedup.look(
          parseDaemonLog(text),
          diffRecords(before, after, now.toISOString()),
          now.getTime(),
        ),
      );
      before = after;
    }
    print(dedup.flush());
  } finally {
    waker.close();
    Deno.removeSignalListener("SIGINT", onInt);
  }
}
