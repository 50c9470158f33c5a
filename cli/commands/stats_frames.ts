/**
 * `rkl stats`'s frames: the earlier reading, the rows, the format, the live
 * loop. No Host and no CLI framework, so the short path of
 * cli/commands/docker/light.ts prints `--no-stream` with the same code.
 */
import {
  applyTemplate,
  CACHE_MIN_AGE_MS,
  type ContainerSample,
  keptReadings,
  previousFromCache,
  rowFields,
  type StatsCache,
  statsRow,
  TABLE_COLUMNS,
  toCache,
  withEarlier,
} from "../../src/workloads/stats.ts";
import { table } from "../table.ts";

/**
 * How far apart the first two readings are when no recent one was kept
 * (CPU % needs a delta; /proc/stat counts in 10 ms ticks per CPU).
 */
export const NO_STREAM_WINDOW_MS = 100;
/** How often the live table is redrawn. */
export const REFRESH_MS = 1000;

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

/** Keeps this reading for the next `rkl stats` (best effort: a read-only run root just waits). */
export function saveCache(path: string, cache: StatsCache): void {
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

/** One reading of the chosen containers. */
export interface Taken {
  samples: ContainerSample[];
  hostMemory: number;
  at: number;
}

/**
 * Prints frames: one with `stream: false`, else until ^C. CPU % needs an
 * earlier reading: `kept` (the one the last `rkl stats` kept, or the
 * daemon's) when it is recent and covers these containers, else a second
 * one after a short wait.
 */
export async function statsFrames(o: {
  take: () => Promise<Taken>;
  kept: StatsCache | undefined;
  /** Where each reading is kept for the next `rkl stats`; none in the daemon (its sampler keeps them). */
  cachePath: string | undefined;
  format?: string;
  stream: boolean;
  sleep: (ms: number) => Promise<void>;
  write: (text: string) => void;
}): Promise<void> {
  const readings = keptReadings(o.kept);
  const earlierFor = (t: Taken) => {
    for (const r of readings) {
      const p = previousFromCache(r, t.samples, t.at);
      if (p) return p;
    }
    return undefined;
  };
  let first: Taken | undefined = await o.take();
  let cached = earlierFor(first);
  const young = o.kept ? CACHE_MIN_AGE_MS - (first.at - o.kept.at) : 0;
  if (!cached && young > 0 && young <= CACHE_MIN_AGE_MS) {
    // Kept a moment ago: wait only until it is old enough to compare with.
    await o.sleep(young);
    first = await o.take();
    cached = earlierFor(first);
  }
  let prev = cached ?? new Map(first.samples.map((s) => [s.name, s]));
  if (!cached) {
    first = undefined;
    await o.sleep(NO_STREAM_WINDOW_MS);
  }
  const interactive = o.stream && Deno.stdout.isTerminal();
  const stop = new AbortController();
  const onInt = () => stop.abort();
  if (o.stream) Deno.addSignalListener("SIGINT", onInt);
  try {
    while (true) {
      const now = first ?? await o.take();
      first = undefined;
      if (o.cachePath) saveCache(o.cachePath, withEarlier(toCache(now.samples, now.at), o.kept));
      const rows = now.samples.map((s) => rowFields(statsRow(prev.get(s.name), s, now.hostMemory)));
      const frame = renderFrame(rows, o.format);
      // A terminal gets the screen redrawn in place; a pipe gets frame after frame.
      o.write(interactive ? `\x1b[2J\x1b[H${frame}` : frame);
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
}
