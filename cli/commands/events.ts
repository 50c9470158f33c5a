/** `rkl events`: what happened (the daemon's log and the records), then what happens. */
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
} from "../../src/workloads/events.ts";
import { daemonPaths } from "../../src/daemon/daemon.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

/** How often a streaming `rkl events` looks at the log and the records. */
export const POLL_MS = 250;

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

/** The daemon log's bytes from `offset` on (the whole file when it shrank: rotated). */
function readLogFrom(path: string, offset: number): { text: string; size: number } {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch {
    return { text: "", size: 0 };
  }
  try {
    const size = f.statSync().size;
    const from = size < offset ? 0 : offset;
    // Only whole lines: a line being appended is read at the next look.
    const buf = new Uint8Array(Math.min(size - from, 16 << 20));
    f.seekSync(from, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const n = f.readSync(buf.subarray(got));
      if (n === null || n === 0) break;
      got += n;
    }
    const last = buf.subarray(0, got).lastIndexOf(10);
    const text = new TextDecoder().decode(buf.subarray(0, last + 1));
    return { text, size: from + last + 1 };
  } finally {
    f.close();
  }
}

export function registerEvents(program: Command, ctx: Context): void {
  program.command("events").description(
    "what happened to containers, pods and the daemon, then what happens (until ^C or --until)",
  )
    .option("--since <time>", "show events since: RFC 3339, Unix seconds or a duration (10m)")
    .option("--until <time>", "stop at this time (same forms); in the past: print and exit")
    .option(
      "--filter <key=value>",
      "type=container|pod|daemon, container=NAME, pod=NAME, event=ACTION (repeatable)",
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
      const logPath = daemonPaths(host).events;
      let { text, size } = readLogFrom(logPath, 0);
      let before = await snapshot(host);
      // The past is printed only when asked for (--since), as docker does.
      if (since !== undefined) {
        print(byTime([
          ...parseDaemonLog(text),
          ...[...before.values()].flatMap(recordEvents),
        ]));
      }
      const stop = new AbortController();
      const onInt = () => stop.abort();
      Deno.addSignalListener("SIGINT", onInt);
      try {
        while (!stop.signal.aborted && (until === undefined || host.now().getTime() <= until)) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, POLL_MS);
            stop.signal.addEventListener("abort", () => {
              clearTimeout(t);
              resolve();
            }, { once: true });
          });
          ({ text, size } = readLogFrom(logPath, size));
          const after = await snapshot(host);
          print(byTime([
            ...parseDaemonLog(text),
            ...diffRecords(before, after, host.now().toISOString()),
          ]));
          before = after;
        }
      } finally {
        Deno.removeSignalListener("SIGINT", onInt);
      }
    });
}
