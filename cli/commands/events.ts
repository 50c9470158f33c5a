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
  StreamDestroys,
} from "../../src/workloads/events.ts";
import { eventLogPath, readEvents } from "../../src/workloads/event_log.ts";
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

export function registerEvents(program: Command, ctx: Context): void {
  program.command("events").description(
    "what happened to containers, pods, images and the daemon, then what happens (until ^C or --until)",
  )
    .option("--since <time>", "show events since: RFC 3339, Unix seconds or a duration (10m)")
    .option("--until <time>", "stop at this time (same forms); in the past: print and exit")
    .option(
      "--filter <key=value>",
      "type=container|pod|daemon|image, container=NAME, pod=NAME, image=REF, event=ACTION (repeatable)",
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
      const logPath = eventLogPath(host.paths);
      let { text, cursor } = readEvents(logPath);
      let before = await snapshot(host);
      // The past is printed only when asked for (--since), as docker does.
      if (since !== undefined) {
        print(byTime([
          ...parseDaemonLog(text),
          ...[...before.values()].flatMap(recordEvents),
        ]));
      }
      const destroys = new StreamDestroys();
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
          ({ text, cursor } = readEvents(logPath, cursor));
          const after = await snapshot(host);
          // A removal's `destroy` is in the log and in the records' diff: printed once.
          print(destroys.look(
            parseDaemonLog(text),
            diffRecords(before, after, host.now().toISOString()),
          ));
          before = after;
        }
      } finally {
        Deno.removeSignalListener("SIGINT", onInt);
      }
    });
}
