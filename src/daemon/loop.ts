/**
 * The daemon's loop: sync on start, on every (debounced) change of the
 * manifests directory or the exit directory, and every relist; then
 * restarts, log rotation and probes; and the sockets it serves meanwhile.
 */
import { gc } from "../workloads/gc.ts";
import { procStat } from "../workloads/container.ts";
import type { Host } from "../workloads/host.ts";
import { type Backoff, type Failures, KUBELET_BACKOFF } from "./restart.ts";
import { isManifestName } from "./reconcile.ts";
import { IdleCollector } from "./memory.ts";
import type { LoadPodsFn, Scan, ScanCache } from "./scan.ts";
import { appendEvent, type DaemonStatus } from "./status.ts";
import { type PodWorker, syncOnce } from "./sync.ts";
import { type ProbeStates, runProbes } from "./probes.ts";
import { restartExited, rotateLogs } from "./restarts.ts";
import { type ServeOptions, serveSockets } from "./serve.ts";

/** Runs until `signal` aborts: sync on start, on every (debounced) change, and every `relistMs`. */
export interface DaemonOptions extends ServeOptions {
  manifests: string;
  loadPods: LoadPodsFn;
  relistMs?: number;
  debounceMs?: number;
  backoff?: Backoff;
  signal: AbortSignal;
}

export async function runDaemonLocked(host: Host, options: DaemonOptions): Promise<void> {
  // What a crash or a reboot left: no record owns it, or a create died half-way.
  try {
    const r = await gc(host);
    for (const d of r.done) options.log(`gc: ${d}`);
  } catch (e) {
    options.log(`gc failed: ${(e as Error).message}`);
  }
  const status: DaemonStatus = {
    pid: Deno.pid,
    pidStart: procStat(Deno.pid)?.startTime,
    startedAt: host.now().toISOString(),
    manifests: options.manifests,
    lastSync: "",
    errors: {},
    pods: {},
  };
  appendEvent(host, { action: "start" });
  const watcher = Deno.watchFs(options.manifests, { recursive: false });
  let wake: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Set by a poke that came while no wait was pending: the next wait returns at once. */
  let poked = false;
  const poke = (delay: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (wake) wake();
      else poked = true;
    }, delay);
  };
  const pump = (async () => {
    try {
      for await (const ev of watcher) {
        if (ev.paths.some((p) => isManifestName(p.slice(p.lastIndexOf("/") + 1)))) {
          poke(options.debounceMs ?? 100);
        }
      }
    } catch { /* closed */ }
  })();
  // conmon writes a container's exit code here when it ends: react at once
  // (restart policies, back-off timers) instead of at the next relist.
  const exitDir = `${host.paths.root}/exits`;
  Deno.mkdirSync(exitDir, { recursive: true });
  const exits = Deno.watchFs(exitDir, { recursive: false });
  const exitPump = (async () => {
    try {
      for await (const ev of exits) if (ev.kind !== "access") poke(10);
    } catch { /* closed */ }
  })();
  options.signal.addEventListener("abort", () => {
    watcher.close();
    exits.close();
    wake?.();
  });
  const sockets = await serveSockets(host, options);
  /** RKL_MEMORY_LOG=1: the process's memory at every relist, for studying the daemon's size. */
  const memoryLog = Deno.env.get("RKL_MEMORY_LOG") === "1";
  const probeStates: ProbeStates = new Map();
  const cache: ScanCache = new Map();
  const workers = new Map<string, PodWorker>();
  const failures: Failures = new Map();
  const wakeNow = () => poke(0);
  const collector = new IdleCollector();
  let quiet = false;
  while (!options.signal.aborted) {
    // Woken by the relist timer (nothing happened for a while), or no pod is
    // being made or removed: a relist woken early (a watcher's event, a
    // back-off coming due) is quiet enough then too.
    if ((quiet || workers.size === 0) && collector.maybeCollect() && memoryLog) {
      options.log(`memory: collected (${collector.collections} so far)`);
    }
    quiet = false;
    let scan: Scan | undefined;
    let due: number | undefined;
    try {
      const done = await syncOnce(host, {
        ...options,
        status,
        cache,
        workers,
        failures,
        wake: wakeNow,
      });
      scan = done.scan;
      due = done.due;
      for (const a of done.actions) options.log(`${a.kind} ${a.name} (${a.file})`);
      for (const error of Object.values(status.errors)) options.log(`error: ${error}`);
    } catch (e) {
      options.log(`sync failed: ${(e as Error).message}`);
    }
    try {
      const restartDue = await restartExited(host, options.backoff ?? KUBELET_BACKOFF, {
        failures,
        workers,
        status,
      });
      if (restartDue !== undefined) due = Math.min(due ?? restartDue, restartDue);
      rotateLogs(host);
      if (memoryLog) {
        const m = Deno.memoryUsage();
        const mb = (n: number) => (n / 1048576).toFixed(1);
        options.log(
          `memory: rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} MB, external ${
            mb(m.external)
          } MB`,
        );
      }
      if (scan) {
        const probeDueAt = await runProbes(host, scan, probeStates, status);
        if (probeDueAt !== undefined) due = Math.min(due ?? probeDueAt, probeDueAt);
      }
    } catch (e) {
      options.log(`restart/probe check failed: ${(e as Error).message}`);
    }
    if (options.signal.aborted) break;
    const relist = options.relistMs ?? 5_000;
    const wait = due === undefined
      ? relist
      : Math.max(10, Math.min(relist, due - host.now().getTime()));
    if (poked) poked = false;
    else {
      await new Promise<void>((resolve) => {
        const relistTimer = setTimeout(() => {
          quiet = true;
          resolve();
        }, wait);
        wake = () => {
          clearTimeout(relistTimer);
          resolve();
        };
      });
      wake = undefined;
    }
  }
  // Stopping the daemon stops no pod: work in progress is rolled back, the rest runs on.
  for (const w of workers.values()) w.abort.abort("the daemon is stopping");
  await Promise.all([...workers.values()].map((w) => w.done));
  await Promise.all([pump, exitPump]);
  await sockets.close();
  appendEvent(host, { action: "stop" });
}
