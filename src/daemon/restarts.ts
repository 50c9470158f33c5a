/**
 * The daemon's restarts: exited containers restarted per their policy once
 * their back-off has passed (the pure rule is in restart.ts), and the log
 * rotation of running containers.
 */
import type { PodRecord } from "../workloads/pod.ts";
import {
  type ContainerRecord,
  fromEarlierBoot,
  quickRefresh,
  restartContainer,
} from "../workloads/container.ts";
import { rotateIfLarge } from "../workloads/logrotate.ts";
import { containerDirs, type Host } from "../workloads/host.ts";
import { RESTART_LABEL } from "../spec/names.ts";
import {
  type Backoff,
  failed,
  type Failures,
  parseRestartLabel,
  restartAt,
  type RestartPolicy,
} from "./restart.ts";
import type { PodWorker } from "./sync.ts";
import { appendEvent, type DaemonStatus } from "./status.ts";

/**
 * Restarts the exited containers whose policy says so and whose back-off
 * has passed: app containers of static pods (the pod's restartPolicy) and
 * containers with a compose restart policy. Returns when to look again.
 */
export async function restartExited(
  host: Host,
  backoff: Backoff,
  options: {
    failures?: Failures;
    workers?: ReadonlyMap<string, PodWorker>;
    status?: DaemonStatus;
  } = {},
): Promise<number | undefined> {
  const failures = options.failures ?? new Map();
  const candidates: { name: string; policy: RestartPolicy; maxRetries?: number }[] = [];
  for (const p of host.store.list<PodRecord>("pods")) {
    if (options.workers?.has(p.name)) continue; // its worker is making or removing it
    if (host.epoch && p.epoch !== host.epoch) continue; // from before a reboot: recreated instead
    if (p.static && p.created) {
      for (const m of p.containers) candidates.push({ name: m, policy: p.restartPolicy });
      for (const m of p.sidecars ?? []) candidates.push({ name: m, policy: "Always" });
    }
  }
  for (const c of host.store.list<ContainerRecord>("containers")) {
    // Not restarted in place after a reboot: its netns and pins are gone (recreate it).
    if (fromEarlierBoot(host, c)) continue;
    const label = c.labels[RESTART_LABEL];
    const parsed = label === undefined ? undefined : parseRestartLabel(label);
    if (parsed && parsed.policy !== "no") candidates.push({ name: c.name, ...parsed });
  }
  let next: number | undefined;
  for (const { name, policy, maxRetries } of candidates) {
    const rec = host.store.get<ContainerRecord>("containers", name);
    if (!rec) continue;
    const live = await quickRefresh(host, rec);
    if (live.status !== "exited") continue;
    const at = restartAt({
      policy,
      exitCode: live.exitCode,
      restarts: live.restarts ?? 0,
      finishedAt: Date.parse(live.finishedAt ?? host.now().toISOString()),
      stoppedByUser: live.stoppedByUser ?? false,
      maxRetries,
    }, backoff);
    if (at === null) continue;
    const retry = failures.get(name)?.retryAt ?? 0;
    const when = Math.max(at, retry);
    if (when > host.now().getTime()) {
      next = Math.min(next ?? when, when);
      continue;
    }
    try {
      await restartContainer(host, name);
      failures.delete(name);
      appendEvent(host, { action: "restart", container: name, exitCode: live.exitCode });
    } catch (e) {
      // A restart that fails waits its own back-off, not the next relist.
      const error = (e as Error).message.split("\n")[0];
      const retryAt = failed(failures, name, host.now().getTime(), backoff);
      next = Math.min(next ?? retryAt, retryAt);
      appendEvent(host, { action: "error", container: name, error });
      const pod = live.pod && options.status?.pods[live.pod];
      if (pod) pod.lastError = `restart of ${name}: ${error}`;
    }
  }
  return next;
}

/** Rotates the logs of every container whose conmon runs and whose log reached the limit. */
export function rotateLogs(host: Host): number {
  if (!host.logRotation) return 0;
  let n = 0;
  for (const c of host.store.list<ContainerRecord>("containers")) {
    if (c.status !== "running" && c.status !== "created") continue;
    // A log a front end placed is rotated by it (the kubelet: ReopenContainerLog).
    if (c.dirs.log !== containerDirs(host.paths, c.id).log) continue;
    try {
      if (
        rotateIfLarge(host.sys, { log: c.dirs.log, ctl: `${c.dirs.bundle}/ctl` }, host.logRotation)
      ) {
        n++;
      }
    } catch (e) {
      appendEvent(host, {
        action: "error",
        container: c.name,
        error: `log rotation: ${(e as Error).message}`,
      });
    }
  }
  return n;
}
