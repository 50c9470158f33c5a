/**
 * Compose healthchecks, tracked for as long as a container runs, as docker
 * does. One monitor process per run root (`rkl __health-monitor`, started
 * on demand by `compose up/start/restart`) runs every container's check on
 * its schedule and writes the result to RUN_ROOT/health/NAME.json; `ps`
 * and `up`'s `service_healthy` waits read those files. The monitor exits on
 * its own once no container with a healthcheck runs.
 *
 * Schedule (docker's): during start_period a check runs every
 * start_interval and failures do not count; after it, every interval, and
 * `retries` failures in a row make the container unhealthy. The first check
 * runs right after start, so `up` need not wait a whole interval.
 */
import { execSync } from "./exec.ts";
import { ConflictError } from "../errors.ts";
import { takePidLock } from "../sys/pidlock.ts";
import { ensureHealthMonitor, healthDir, healthFile } from "./health_spawn.ts";
import { type ContainerRecord, quickRefresh } from "./container.ts";
import type { Host } from "./host.ts";

export { ensureHealthMonitor, healthDir };

export type HealthStatus = "starting" | "healthy" | "unhealthy";

export interface HealthState {
  status: HealthStatus;
  failingStreak: number;
  /** The container process the state is about: a restart starts afresh. */
  pidStart?: number;
  lastAt?: string;
  /** The last checks, newest last (at most 5, as docker keeps). */
  log: { start: string; exitCode: number; output: string }[];
}

const stateFile = healthFile;

/** The recorded health of `rec`'s current process; "starting" when none is recorded yet. */
export function readHealth(
  host: Pick<Host, "paths" | "fs">,
  rec: Pick<ContainerRecord, "name" | "pidStart">,
): HealthState {
  try {
    const v = JSON.parse(host.fs.readTextFile(stateFile(host, rec.name)));
    const ok = v && ["starting", "healthy", "unhealthy"].includes(v.status) &&
      Number.isInteger(v.failingStreak) && Array.isArray(v.log);
    if (ok && v.pidStart === rec.pidStart) return v as HealthState;
  } catch { /* none yet, or damaged: start over */ }
  return { status: "starting", failingStreak: 0, pidStart: rec.pidStart, log: [] };
}

function writeHealth(host: Host, name: string, st: HealthState): void {
  const path = stateFile(host, name);
  const tmp = `${path}.${host.proc.self}.tmp`;
  host.fs.writeTextFile(tmp, JSON.stringify(st), { mode: 0o600 });
  host.fs.rename(tmp, path);
}

export function removeHealth(host: Pick<Host, "paths" | "fs">, name: string): void {
  try {
    host.fs.remove(stateFile(host, name));
  } catch { /* none */ }
}

/** Folds one check's result into the state (pure). */
export function foldCheck(
  st: HealthState,
  h: NonNullable<ContainerRecord["healthcheck"]>,
  result: { exitCode: number; output: string; start: Date },
  sinceStartMs: number,
): HealthState {
  const log = [...st.log, {
    start: result.start.toISOString(),
    exitCode: result.exitCode,
    output: result.output.slice(0, 4096),
  }].slice(-5);
  const next = { ...st, log, lastAt: result.start.toISOString() };
  if (result.exitCode === 0) return { ...next, status: "healthy", failingStreak: 0 };
  if (sinceStartMs < h.startPeriodMs && st.status === "starting") return next; // not counted
  const failingStreak = st.failingStreak + 1;
  return {
    ...next,
    failingStreak,
    status: failingStreak >= Math.max(1, h.retries) ? "unhealthy" : st.status,
  };
}

/** When the next check is due after one at `lastMs`. */
export function nextCheckAt(
  st: HealthState,
  h: NonNullable<ContainerRecord["healthcheck"]>,
  lastMs: number,
  startedMs: number,
): number {
  const inStart = st.status === "starting" && lastMs - startedMs < h.startPeriodMs;
  return lastMs + Math.max(100, inStart ? Math.min(h.startIntervalMs, h.intervalMs) : h.intervalMs);
}

async function checkOnce(host: Host, rec: ContainerRecord): Promise<void> {
  const h = rec.healthcheck!;
  const start = new Date();
  let exitCode = 1;
  let output = "";
  try {
    const res = await execSync(host, { container: rec, argv: h.test, timeoutMs: h.timeoutMs });
    exitCode = res.code;
    output = res.output;
  } catch (e) {
    output = (e as Error).message.split("\n")[0];
  }
  // The container may have gone meanwhile: then its file must not come back.
  const live = await quickRefresh(host, rec);
  if (live.status !== "running" || live.pidStart !== rec.pidStart) return;
  const st = readHealth(host, rec);
  const started = Date.parse(rec.startedAt ?? "") || start.getTime();
  writeHealth(
    host,
    rec.name,
    foldCheck(st, h, { exitCode, output, start }, start.getTime() - started),
  );
}

/**
 * The monitor's loop. Returns when no running container has had a
 * healthcheck for `idleExitMs`, or when `signal` aborts.
 */
export async function runHealthMonitor(
  host: Host,
  options: { signal?: AbortSignal; idleExitMs?: number; tickMs?: number } = {},
): Promise<void> {
  host.fs.mkdir(healthDir(host), { recursive: true, mode: 0o700 });
  let release: () => void;
  try {
    release = takePidLock(
      `${healthDir(host)}/monitor.pid`,
      (pid) => new ConflictError(`health monitor ${pid} runs already`),
    );
  } catch (e) {
    if (e instanceof ConflictError) return; // another one does the work
    throw e;
  }
  const due = new Map<string, number>();
  const running = new Map<string, Promise<void>>();
  let idleSince = Date.now();
  try {
    while (!options.signal?.aborted) {
      const now = Date.now();
      let recs: ContainerRecord[] = [];
      try {
        recs = host.store.list<ContainerRecord>("containers").filter((r) =>
          r.healthcheck && r.status === "running"
        );
      } catch { /* a record being written: next tick */ }
      const live = (await Promise.all(recs.map((r) => quickRefresh(host, r).catch(() => r))))
        .filter((r) => r.status === "running" && r.pid);
      if (live.length > 0 || running.size > 0) idleSince = now;
      else if (now - idleSince >= (options.idleExitMs ?? 3_000)) break;
      const seen = new Set<string>();
      for (const r of live) {
        const key = `${r.name}@${r.pidStart}`;
        seen.add(key);
        if (running.has(key) || (due.get(key) ?? 0) > now) continue;
        const p = checkOnce(host, r).catch(() => {}).finally(() => {
          running.delete(key);
          const st = readHealth(host, r);
          const started = Date.parse(r.startedAt ?? "") || now;
          due.set(key, nextCheckAt(st, r.healthcheck!, Date.now(), started));
        });
        running.set(key, p);
      }
      for (const k of due.keys()) if (!seen.has(k) && !running.has(k)) due.delete(k);
      await host.sleep(options.tickMs ?? 200);
    }
    await Promise.all(running.values());
  } finally {
    release();
  }
}

/** Waits until the monitor has judged `rec` healthy or unhealthy (or it stopped running). */
export async function waitForHealth(host: Host, rec: ContainerRecord): Promise<HealthStatus> {
  for (;;) {
    const live = await quickRefresh(host, rec);
    if (live.status !== "running") return "unhealthy";
    const st = readHealth(host, live);
    if (st.status !== "starting") return st.status;
    ensureHealthMonitor(host); // it may have exited before this container started
    await host.sleep(100);
  }
}
