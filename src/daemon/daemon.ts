/**
 * `rkl daemon`: keeps the pods of a manifests directory running, the way a
 * kubelet keeps static pods. Its jobs, one file each:
 *
 * - scan.ts: the directory → desired pods (validated) and broken files;
 * - reconcile.ts: reconcile(), pure;
 * - sync.ts: each action applied by its pod's worker, with the same pod
 *   functions the CLI uses;
 * - probes.ts, restarts.ts: probes of running containers, restarts of
 *   exited ones, log rotation;
 * - loop.ts: the loop (inotify via Deno.watchFs, debounced, and a periodic
 *   relist); serve.ts: the CRI and CLI sockets it serves;
 * - status.ts: its status file and event log.
 *
 * The daemon holds no state of its own that matters: pods, their
 * containers and conmon outlive it, and a restarted daemon adopts them from
 * the store (same manifest hash → nothing to do).
 */
import { ConflictError } from "../errors.ts";
import { processAlive, takePidLock } from "../sys/pidlock.ts";
import type { Host } from "../workloads/host.ts";
import { type DaemonOptions, runDaemonLocked } from "./loop.ts";

export {
  DEFAULT_MANIFESTS,
  type LoadPodsFn,
  MAX_MANIFEST_BYTES,
  type Scan,
  type ScanCache,
  scanManifests,
} from "./scan.ts";
export { type DaemonEvent, daemonPaths, type DaemonStatus, readStatus } from "./status.ts";
export { actualPods, type Failures, type PodWorker, syncOnce } from "./sync.ts";
export { type ProbeStates, runProbes } from "./probes.ts";
export { restartExited, rotateLogs } from "./restarts.ts";
export type { DaemonOptions };

/**
 * One daemon per run root: a pid file made with O_EXCL, holding the pid and
 * its start time. A file left by a daemon that died is taken over.
 */
export function takeDaemonLock(host: Host): () => void {
  Deno.mkdirSync(host.paths.runRoot, { recursive: true, mode: 0o711 });
  return takePidLock(`${host.paths.runRoot}/daemon.pid`, (pid) =>
    new ConflictError(
      `Cannot start the daemon: pid ${pid} already runs one for ${host.paths.runRoot}`,
      { hint: "stop it first (systemctl stop rkl), or use another --run-root" },
    ));
}

export const daemonAlive = processAlive;

export async function runDaemon(host: Host, options: DaemonOptions): Promise<void> {
  Deno.mkdirSync(options.manifests, { recursive: true });
  const release = takeDaemonLock(host);
  try {
    await runDaemonLocked(host, options);
  } finally {
    release();
  }
}
