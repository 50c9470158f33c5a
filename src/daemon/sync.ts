/**
 * The daemon's sync: one pass of scan → reconcile() → each action handed
 * to its pod's worker, which applies it with the pod functions the CLI
 * uses. A failed pod waits a back-off before its next try.
 */
import { type PodRecord, removePod, runPod, stopPod } from "../workloads/pod.ts";
import type { Host } from "../workloads/host.ts";
import { withAbort } from "../cancel.ts";
import { type Backoff, failed, type Failures, KUBELET_BACKOFF } from "./restart.ts";
import { type Action, type ActualPod, reconcile } from "./reconcile.ts";
import { type LoadPodsFn, type Scan, type ScanCache, scanManifests } from "./scan.ts";
import { appendEvent, type DaemonStatus, writeStatus } from "./status.ts";

export type { Failures };

/**
 * Actual static pods, from the store. A pod whose worker is busy counts as
 * what that worker is making. A static pod left half made (its create was
 * interrupted) or made before the run root was wiped (a reboot) counts as
 * stale, hash "", so reconcile recreates it.
 */
export function actualPods(
  host: Host,
  workers: ReadonlyMap<string, PodWorker> = new Map(),
): ActualPod[] {
  return host.store.list<PodRecord>("pods").map((p) => {
    const w = workers.get(p.name);
    const stale = p.static && (!p.created || (host.epoch && p.epoch !== host.epoch));
    return {
      name: p.name,
      file: p.static?.file,
      hash: w ? w.hash : stale ? "" : p.static?.hash,
    };
  });
}

/** One pod's work in progress: its own task, so a slow pod holds up no other. */
export interface PodWorker {
  /** The manifest hash it is making ("" for a delete). */
  hash: string;
  what: string;
  abort: AbortController;
  done: Promise<void>;
}

/**
 * One pass: scan, reconcile, and hand each action to its pod's worker.
 * Returns what it started and when a back-off expires. Without `workers`
 * (tests, one-shot use) each action is awaited before the next.
 */
export async function syncOnce(
  host: Host,
  options: {
    manifests: string;
    network: string | null;
    loadPods: LoadPodsFn;
    status: DaemonStatus;
    cache?: ScanCache;
    workers?: Map<string, PodWorker>;
    failures?: Failures;
    backoff?: Backoff;
    /** Called when a worker finishes, to look again at once. */
    wake?: () => void;
  },
): Promise<{ actions: Action[]; scan: Scan; due?: number }> {
  const scan = await scanManifests(options.manifests, options.loadPods, options.cache);
  const workers = options.workers ?? new Map<string, PodWorker>();
  const failures = options.failures ?? new Map();
  const backoff = options.backoff ?? KUBELET_BACKOFF;
  const actions = reconcile(
    scan.desired,
    actualPods(host, workers),
    new Set(scan.errors.keys()),
  );
  const st = options.status;
  for (const [file, error] of scan.errors) {
    if (st.errors[file] !== error) appendEvent(host, { action: "error", file, error });
  }
  st.errors = Object.fromEntries(scan.errors);
  const started: Action[] = [];
  let due: number | undefined;
  const now = host.now().getTime();
  for (const a of actions) {
    const busy = workers.get(a.name);
    if (busy) {
      // Wanted something else meanwhile (an edit, a removal): stop that work;
      // its end wakes the loop, and the next pass decides again.
      if (!busy.abort.signal.aborted) busy.abort.abort("the manifest changed");
      continue;
    }
    const f = failures.get(a.name);
    if (f && a.kind !== "delete" && now < f.retryAt && f.hash === ("hash" in a ? a.hash : "")) {
      due = Math.min(due ?? f.retryAt, f.retryAt);
      continue;
    }
    const want = scan.desired.find((d) => d.name === a.name);
    const abort = new AbortController();
    const hash = "hash" in a ? a.hash : "";
    const work = async () => {
      if (a.kind === "delete" || a.kind === "recreate") {
        // As the kubelet does: SIGTERM, the pod's grace period, then SIGKILL.
        if (host.store.get("pods", a.name)) await stopPod(host, a.name).catch(() => {});
        await removePod(host, a.name, { force: true });
      }
      if (a.kind === "create" || a.kind === "recreate") {
        await runPod(host, want!.pod, {
          network: options.network,
          static: { file: a.file, hash: a.hash },
        });
      }
    };
    st.pods[a.name] = { ...(st.pods[a.name] ?? { file: a.file, hash }), working: a.kind };
    const done = withAbort(abort.signal, work).then(
      () => {
        failures.delete(a.name);
        appendEvent(host, { action: a.kind, pod: a.name, file: a.file, hash: hash || undefined });
        if (a.kind === "delete") delete st.pods[a.name];
        else st.pods[a.name] = { file: a.file, hash };
      },
      (e) => {
        const error = (e as Error).message.split("\n")[0];
        const retryAt = failed(failures, a.name, host.now().getTime(), backoff);
        failures.get(a.name)!.hash = hash;
        appendEvent(host, { action: "error", pod: a.name, file: a.file, error });
        st.pods[a.name] = {
          file: a.file,
          hash,
          lastError: `${error} (next try ${new Date(retryAt).toISOString()})`,
        };
      },
    ).finally(() => {
      workers.delete(a.name);
      writeStatus(host, st);
      options.wake?.();
    });
    workers.set(a.name, { hash, what: a.kind, abort, done });
    started.push(a);
    if (!options.workers) await done;
  }
  for (const p of actualPods(host, workers)) {
    if (p.file && !st.pods[p.name]) st.pods[p.name] = { file: p.file, hash: p.hash ?? "" };
  }
  st.lastSync = host.now().toISOString();
  writeStatus(host, st);
  return { actions: started, scan, due };
}
