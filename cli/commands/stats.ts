/** `rkl stats`: a live table of what containers use, as `docker stats` shows it. */
import type { Command } from "commander";
import { NotFoundError, UsageError } from "../../src/errors.ts";
import type { ContainerRecord } from "../../src/workloads/container/types.ts";
import { listContainers, quickRefresh } from "../../src/workloads/container/status.ts";
import type { Host } from "../../src/workloads/host.ts";
import {
  CACHE_MIN_AGE_MS,
  checkTemplate,
  layoutOf,
  parseCache,
  readTextOrUndefined,
  sampleContainers,
  type StatsCache,
  toCache,
} from "../../src/workloads/stats.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";
import { statsFrames } from "./stats_frames.ts";
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
      const cachePath = `${host.paths.runRoot}/stats.json`;
      await statsFrames({
        take,
        kept: served() ? daemonReading(host, layout) : parseCache(readTextOrUndefined(cachePath)),
        cachePath,
        format: o.format,
        stream: o.stream,
        sleep: host.sleep,
        write,
      });
    });
}
