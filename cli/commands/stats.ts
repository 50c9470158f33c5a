/** `rkl stats`: a live table of what containers use, as `docker stats` shows it. */
import type { Command } from "commander";
import { NotFoundError, UsageError } from "../../src/errors.ts";
import type { ContainerRecord } from "../../src/workloads/container/types.ts";
import { listContainers, quickRefresh } from "../../src/workloads/container/status.ts";
import type { Host } from "../../src/workloads/host.ts";
import {
  CACHE_MIN_AGE_MS,
  checkTemplate,
  type ContainerSample,
  layoutOf,
  parseCache,
  readTextOrUndefined,
  sampleContainers,
  type StatsCache,
  toCache,
} from "../../src/workloads/stats.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";
import { statsFrames, type Taken } from "./stats_frames.ts";
import { trace } from "../../src/trace.ts";
import { served } from "../io.ts";

export { NO_STREAM_WINDOW_MS, REFRESH_MS, renderFrame } from "./stats_frames.ts";

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
  | { readings: Taken[]; asked: number; timer: number }
  | undefined;

/** The daemon's readings of every container, oldest first (starting the sampler if idle). */
function daemonReadings(host: Host, layout: ReturnType<typeof layoutOf>): Taken[] {
  const now = Date.now();
  const take = (): Taken => {
    const recs = host.store.list<ContainerRecord>("containers");
    return { ...sampleContainers(recs, { layout }), at: Date.now() };
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
  return s.readings;
}

/**
 * A reading a served request took itself (the sampler had no pair far enough
 * apart, as in its first 250 ms): kept with the sampler's, so the next
 * request finds one at once instead of reading every cgroup again.
 */
function keepInSampler(t: Taken): void {
  if (sampler) sampler.readings = withReading(sampler.readings, t);
}

/** `readings` (oldest first, at most 8) with `t` after them; unchanged when `t` is older than the newest. */
export function withReading(readings: Taken[], t: Taken): Taken[] {
  return (readings.at(-1)?.at ?? 0) <= t.at ? [...readings.slice(-7), t] : readings;
}

/** The readings as a kept cache: the newest, with the earlier ones. */
function asKept(readings: Taken[]): StatsCache | undefined {
  const caches = readings.map((r) => toCache(r.samples, r.at)).reverse();
  return caches.length === 0 ? undefined : { ...caches[0], earlier: caches.slice(1) };
}

/**
 * The sampler's newest reading of `recs` when it is at most one period old
 * and an earlier one is old enough to compare with (docker's daemon, too,
 * answers from its collector's readings); undefined: read them now.
 */
export function fromSampler(readings: Taken[], recs: ContainerRecord[]): Taken | undefined {
  const latest = readings.at(-1);
  if (!latest || Date.now() - latest.at > SAMPLE_EVERY_MS) return undefined;
  if (!(readings[0].at <= latest.at - CACHE_MIN_AGE_MS)) return undefined;
  const byId = new Map(latest.samples.map((s) => [s.id, s]));
  const samples = recs.map((r) => byId.get(r.id));
  if (!samples.every((x, i) => x !== undefined && x.pidStart === recs[i].pidStart)) {
    return undefined;
  }
  return { samples: samples as ContainerSample[], hostMemory: latest.hostMemory, at: latest.at };
}

export interface StatsFlags {
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
    // Code-point order, as the short path (docker/light.ts) sorts: no ICU collator to load.
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
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
    .action((names: string[], o: StatsFlags) => showStats(ctx.host, names, o));
}

/**
 * `rkl stats` with its flags parsed: what the command runs, and what a
 * daemon runs for a plain served `stats --no-stream` without the CLI
 * framework (cli/serve.ts).
 */
export async function showStats(
  hostOf: () => Host,
  names: string[],
  o: StatsFlags,
): Promise<void> {
  trace("stats: parsed");
  if (o.format !== undefined && o.format !== "table" && o.format !== "json") {
    try {
      checkTemplate(o.format.startsWith("table ") ? o.format.slice(6) : o.format);
    } catch (e) {
      throw new UsageError(`--format: ${(e as Error).message}`);
    }
  }
  const host = hostOf();
  const layout = layoutOf(host.cgroups);
  const readings = served() ? daemonReadings(host, layout) : undefined;
  let first = true;
  const take = async (): Promise<Taken> => {
    const recs = await chosen(host, names, !!o.all);
    const kept = first && readings ? fromSampler(readings, recs) : undefined;
    first = false;
    trace(kept ? "stats: the sampler's reading" : "stats: chosen");
    if (kept) return kept;
    const taken = { ...sampleContainers(recs, { layout }), at: Date.now() };
    // Every running container, as the sampler reads them: the sampler keeps it too.
    if (readings && names.length === 0 && !o.all) keepInSampler(taken);
    return taken;
  };
  const cachePath = `${host.paths.runRoot}/stats.json`;
  await statsFrames({
    take,
    kept: readings ? asKept(readings) : parseCache(readTextOrUndefined(cachePath)),
    // Served, the sampler keeps the readings: no file written before the answer.
    cachePath: readings ? undefined : cachePath,
    format: o.format,
    stream: o.stream,
    sleep: host.sleep,
    write,
  });
  trace("stats: printed");
}
