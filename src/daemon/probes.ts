/**
 * The daemon's probes: runs the due probes of the static pods' running
 * containers. The probe logic itself lives in the core
 * (workloads/probes.ts, re-exported here), where lifecycle hooks share it.
 */
import type { PodRecord } from "../workloads/pod.ts";
import { type ContainerRecord, quickRefresh, stopContainer } from "../workloads/container.ts";
import {
  containerTarget,
  initialState,
  probeDue,
  type ProbeKind,
  type ProbeState,
  recordResult,
  runProbe,
} from "../workloads/probes.ts";
import type { Host } from "../workloads/host.ts";
import type { Scan } from "./scan.ts";
import { appendEvent, type DaemonStatus, writeStatus } from "./status.ts";

export * from "../workloads/probes.ts";

/** Probe state per container process (`name@pid`): a restarted container starts afresh. */
export type ProbeStates = Map<string, Partial<Record<ProbeKind, ProbeState>>>;

/**
 * Runs the probes that are due for the static pods' running containers. A
 * failed startup or liveness probe stops the container; restartExited() then
 * restarts it per the pod's policy, with back-off, as the kubelet does.
 * Returns when the next probe is due.
 */
export async function runProbes(
  host: Host,
  scan: Scan,
  states: ProbeStates,
  status: DaemonStatus,
): Promise<number | undefined> {
  const now = host.now().getTime();
  let next: number | undefined;
  const seen = new Set<string>();
  for (const want of scan.desired) {
    const pod = host.store.get<PodRecord>("pods", want.name);
    if (!pod?.created || pod.static?.hash !== want.hash) continue;
    let ready = true;
    for (const c of want.pod.spec.containers) {
      const probes = c.spec.probes;
      if (!probes) continue;
      const rec = host.store.get<ContainerRecord>("containers", `${pod.name}_${c.spec.name}`);
      if (!rec) continue;
      const live = await quickRefresh(host, rec);
      if (live.status !== "running" || !live.startedAt) {
        if (probes.readiness) ready = false;
        continue;
      }
      const key = `${live.name}@${live.pid}`;
      seen.add(key);
      const st = states.get(key) ?? {};
      states.set(key, st);
      const startedAt = Date.parse(live.startedAt);
      const target = containerTarget(host, live, {
        ip: pod.network?.ip ?? "127.0.0.1",
        ports: c.spec.ports,
      });
      const step = async (kind: ProbeKind): Promise<boolean> => {
        const p = probes[kind]!;
        const s0 = st[kind] ??
          (kind === "startup" ? { ...initialState(kind), ok: false } : initialState(kind));
        st[kind] = s0;
        if (!probeDue(p, s0, startedAt, now)) {
          const due = Math.max(
            startedAt + (p.initialDelaySeconds ?? 0) * 1000,
            s0.lastAt + (p.periodSeconds ?? 10) * 1000,
          );
          next = Math.min(next ?? due, due);
          return s0.ok;
        }
        const passed = await runProbe(p, target);
        const { state, changed } = recordResult(p, s0, passed, now);
        st[kind] = state;
        next = Math.min(next ?? Infinity, now + (p.periodSeconds ?? 10) * 1000);
        const gaveUp = (kind === "liveness" && changed && !state.ok) ||
          (kind === "startup" && !state.ok && state.failures >= (p.failureThreshold ?? 3));
        if (changed || gaveUp) {
          appendEvent(host, {
            action: "probe",
            container: live.name,
            probe: kind,
            error: state.ok ? undefined : "failed",
          });
        }
        if (gaveUp) {
          await stopContainer(
            host,
            live.name,
            p.terminationGracePeriodSeconds ?? pod.terminationGracePeriodSeconds,
          );
        }
        return state.ok;
      };
      if (probes.startup && !(await step("startup"))) {
        if (probes.readiness) ready = false;
        continue;
      }
      if (probes.liveness) await step("liveness");
      if (probes.readiness && !(await step("readiness"))) ready = false;
    }
    if (status.pods[pod.name]) status.pods[pod.name].ready = ready;
  }
  for (const k of states.keys()) if (!seen.has(k)) states.delete(k);
  writeStatus(host, status);
  return next;
}
