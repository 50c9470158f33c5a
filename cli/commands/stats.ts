/** `rkl stats`: a live table of what containers use, as `docker stats` shows it. */
import type { Command } from "commander";
import { NotFoundError, UsageError } from "../../src/errors.ts";
import type { ContainerRecord } from "../../src/workloads/container/types.ts";
import { listContainers, quickRefresh } from "../../src/workloads/container/status.ts";
import type { Host } from "../../src/workloads/host.ts";
import {
  applyTemplate,
  CACHE_MIN_AGE_MS,
  checkTemplate,
  layoutOf,
  parseCache,
  previousFromCache,
  readTextOrUndefined,
  rowFields,
  sampleContainers,
  type StatsCache,
  statsRow,
  TABLE_COLUMNS,
  toCache,
} from "../../src/workloads/stats.ts";
import type { Context } from "../app.ts";
import { table, write } from "../format.ts";
import { served } from "../io.ts";

/**
 * How far apart the first two readings are when no recent one was kept
 * (CPU % needs a delta; /proc/stat counts in 10 ms ticks per CPU).
 */
export const NO_STREAM_WINDOW_MS = 100;
/** How often the live table is redrawn. */
export const REFRESH_MS = 1000;

/** Keeps this reading for the next `rkl stats` (best effort: a read-only run root just waits). */
function saveCache(path: string, cache: StatsCache): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, JSON.stringify(cache), { mode: 0o600 });
    Deno.renameSync(tmp, path);
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* never made */ }
  }
}

/**
 * In `rkl daemon`, serving thin clients: readings of every container taken
 * every 250 ms for as long as someone asked for stats in the last 10 s, as
 * docker's daemon samples every second while a stats client is
 * subscribed. A served `--no-stream` then finds one 100 ms old or more and
 * needs no wait. Nothing runs while nobody asks.
 */
const SAMPLE_EVERY_MS = 250;
const SAMPLE_FOR_MS = 10_000;
let sampler:
  | { readings: StatsCache[]; asked: number; timer: number }
  | undefined;

/** The newest daemon reading at least CACHE_MIN_AGE_MS old (starting the sampler if idle). */
function daemonReading(host: Host, layout: ReturnType<typeof layoutOf>): StatsCache | undefined {
  const now = Date.now();
  const take = () => {
    const recs = host.store.list<ContainerRecord>("containers");
    return toCache(sampleContainers(recs, { layout }).samples, Date.now());
  };
  let s = sampler;
  if (!s) {
    const timer = setInterval(() => {
      const cur = sampler;
      if (!cur) return;
      if (Date.now() - cur.asked > SAMPLE_FOR_MS) {
        clearInterval(cur.timer);
        sampler = undefined;
        return;
      }
      try {
        cur.readings = [...cur.readings.slice(-7), take()];
      } catch { /* a record removed meanwhile: the next tick */ }
    }, SAMPLE_EVERY_MS) as unknown as number;
    // The daemon's own life decides when it ends, never this timer.
    Deno.unrefTimer(timer);
    s = sampler = { readings: [take()], asked: now, timer };
  }
  s.asked = now;
  const old = s.readings.filter((r) => now - r.at >= CACHE_MIN_AGE_MS);
  return old.at(-1) ?? s.readings.at(-1);
}

interface StatsFlags {
  stream: boolean;
  format?: string;
  all?: boolean;
}

/** The containers to show: the named ones (each must exist), else the running ones (-a: all). */
async function chosen(host: Host, names: string[], all: boolean): Promise<ContainerRecord[]> {
  if (names.length > 0) {
    return await Promise.all(names.map((n) => {
      const r = host.store.get<ContainerRecord>("containers", n);
      if (!r) {
        throw new NotFoundError(`Cannot show stats: no container ${JSON.stringify(n)}`, {
          hint: "`rkl container ls -a` lists them",
        });
      }
      return quickRefresh(host, r);
    }));
  }
  const recs = await listContainers(host);
  return recs.filter((r) => all || r.status === "running")
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The text of one frame in the chosen format. */
export function renderFrame(
  rows: Record<string, string>[],
  format: string | undefined,
): string {
  if (format === undefined || format === "table") {
    return table(
      TABLE_COLUMNS.map(([, h]) => h),
      rows.map((r) => TABLE_COLUMNS.map(([k]) => r[k])),
    );
  }
  if (format === "json") return rows.map((r) => JSON.stringify(r) + "\n").join("");
  const tmpl = format.startsWith("table ") ? format.slice(6) : format;
  const lines = rows.map((r) => applyTemplate(tmpl, r) + "\n").join("");
  if (!format.startsWith("table ")) return lines;
  // `table {{.Name}}\t{{.CPUPerc}}`: a header of the column names, as docker prints it.
  const header = applyTemplate(
    tmpl,
    Object.fromEntries(
      TABLE_COLUMNS.map(([k, h]) => [k, h]).concat([["Container", "CONTAINER"]]),
    ),
  );
  return header + "\n" + lines;
}

export function registerStats(program: Command, ctx: Context): void {
  program.command("stats").argument("[names...]", "containers (default: every running one)")
    .description(
      "a live table of CPU %, memory, network and block I/O and pids per container, as docker stats",
    )
    .option("--no-stream", "print one table and exit")
    .option(
      "--format <format>",
      "table, json (a JSON object per line), or a template such as '{{.Name}} {{.CPUPerc}}'",
    )
    .option("-a, --all", "also containers that are not running")
    .action(async (names: string[], o: StatsFlags) => {
      if (o.format !== undefined && o.format !== "table" && o.format !== "json") {
        try {
          checkTemplate(o.format.startsWith("table ") ? o.format.slice(6) : o.format);
        } catch (e) {
          throw new UsageError(`--format: ${(e as Error).message}`);
        }
      }
      const host = ctx.host();
      const layout = layoutOf(host.cgroups);
      const take = async () => {
        const recs = await chosen(host, names, !!o.all);
        return { recs, ...sampleContainers(recs, { layout }), at: Date.now() };
      };
      // CPU % needs an earlier reading: the one the last `rkl stats` kept, when it is
      // recent and covers these containers, else a second one after a short wait.
      const cachePath = `${host.paths.runRoot}/stats.json`;
      const kept = served()
        ? daemonReading(host, layout)
        : parseCache(readTextOrUndefined(cachePath));
      let first: Awaited<ReturnType<typeof take>> | undefined = await take();
      const young = kept ? CACHE_MIN_AGE_MS - (first.at - kept.at) : 0;
      if (young > 0 && young <= CACHE_MIN_AGE_MS) {
        // Kept a moment ago: wait only until it is old enough to compare with.
        await host.sleep(young);
        first = await take();
      }
      const cached = previousFromCache(kept, first.samples, first.at);
      let prev = cached ?? new Map(first.samples.map((s) => [s.name, s]));
      if (!cached) {
        first = undefined;
        await host.sleep(NO_STREAM_WINDOW_MS);
      }
      const interactive = o.stream && Deno.stdout.isTerminal();
      const stop = new AbortController();
      const onInt = () => stop.abort();
      if (o.stream) Deno.addSignalListener("SIGINT", onInt);
      try {
        while (true) {
          const now = first ?? await take();
          first = undefined;
          saveCache(cachePath, toCache(now.samples, now.at));
          const rows = now.samples.map((s) =>
            rowFields(statsRow(prev.get(s.name), s, now.hostMemory))
          );
          const frame = renderFrame(rows, o.format);
          // A terminal gets the screen redrawn in place; a pipe gets frame after frame.
          write(interactive ? `\x1b[2J\x1b[H${frame}` : frame);
          if (!o.stream || stop.signal.aborted) return;
          prev = new Map(now.samples.map((s) => [s.name, s]));
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, REFRESH_MS);
            stop.signal.addEventListener("abort", () => {
              clearTimeout(t);
              resolve();
            }, { once: true });
          });
          if (stop.signal.aborted) return;
        }
      } finally {
        if (o.stream) Deno.removeSignalListener("SIGINT", onInt);
      }
    });
}
