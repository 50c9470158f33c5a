/** What a pod is now: its phase, its members' states, and lookups of its members. */
import { NotFoundError, UsageError } from "../../errors.ts";
import { DamagedRecordError } from "../../store/store.ts";
import {
  type ContainerRecord,
  exitReason,
  getContainer,
  quickRefresh,
  refresh,
} from "../container.ts";
import type { Host } from "../host.ts";
import { recordSource } from "../record_source.ts";
import { memberReady, readProbeState } from "./probe_monitor.ts";
import {
  getPod,
  memberName,
  type PodContainerView,
  type PodPhase,
  type PodRecord,
  type PodView,
} from "./types.ts";

/** Record names of a pod's members, from records (usable or not) and container dirs. */
export function podMembersOnHost(host: Host, pod: string): string[] {
  const names = new Set<string>();
  for (const r of host.store.list("containers")) names.add(r.name);
  for (const d of host.store.damaged("containers")) names.add(d.name);
  try {
    for (const e of host.fs.readDir(`${host.paths.root}/containers`)) names.add(e.name);
  } catch { /* none */ }
  return [...names].filter((n) => n.startsWith(`${pod}_`)).sort();
}

/** The pod's phase, from its containers as Kubernetes defines it. */
export function podPhase(created: boolean, app: PodContainerView["status"][]): PodPhase {
  if (!created) return "Creating";
  if (app.some((s) => s === "running")) return "Running";
  if (app.every((s) => s === "created")) return "Pending";
  if (app.every((s) => s === "exited")) return "Succeeded";
  return "Unknown";
}

/** The pod's source as listings show it: which front end, and its name for the pod. */
function sourceView(rec: PodRecord): PodView["source"] {
  const s = recordSource(rec);
  return s ? { kind: s.kind, name: s.name ?? "" } : null;
}

export async function podView(
  host: Host,
  rec: PodRecord,
  options: { exact?: boolean } = {},
): Promise<PodView> {
  const probeState = rec.probes ? readProbeState(host, rec.name) : undefined;
  const look = async (m: string, init: boolean): Promise<PodContainerView> => {
    const name = m.slice(rec.name.length + 1);
    let c: ContainerRecord | undefined;
    try {
      c = host.store.get<ContainerRecord>("containers", m);
    } catch (e) {
      if (!(e instanceof DamagedRecordError)) throw e;
      return {
        name,
        init,
        status: "unknown",
        pid: null,
        exitCode: null,
        reason: null,
        restarts: 0,
        limits: {},
        ready: false,
        probes: null,
      };
    }
    if (!c) {
      return {
        name,
        init,
        status: "missing",
        pid: null,
        exitCode: null,
        reason: null,
        restarts: 0,
        limits: {},
        ready: false,
        probes: null,
      };
    }
    const r = options.exact ? await refresh(host, c) : await quickRefresh(host, c);
    return {
      name,
      init,
      status: r.status,
      pid: r.pid ?? null,
      exitCode: r.exitCode ?? null,
      reason: exitReason(host, r) ?? null,
      restarts: r.restarts ?? 0,
      limits: r.limits,
      ready: memberReady(r.status, rec.probes?.[m], probeState?.containers[name], r.pid ?? null),
      probes: probeState?.containers[name] ?? null,
    };
  };
  const inits = await Promise.all(rec.initContainers.map((m) => look(m, true)));
  const apps = await Promise.all(rec.containers.map((m) => look(m, false)));
  let phase = podPhase(rec.created, apps.map((a) => a.status));
  if (phase === "Succeeded" && apps.some((a) => a.exitCode !== 0)) phase = "Failed";
  if (phase === "Unknown" && apps.every((a) => a.status === "exited" || a.status === "missing")) {
    phase = "Failed";
  }
  let pause: ContainerRecord | undefined;
  try {
    pause = rec.pause ? host.store.get<ContainerRecord>("containers", rec.pause) : undefined;
  } catch { /* damaged: no pid to show */ }
  return {
    name: rec.name,
    namespace: rec.namespace,
    phase,
    ip: rec.network?.ip ?? null,
    hostNetwork: rec.hostNetwork,
    ports: rec.network?.portMappings ?? [],
    pausePid: pause?.pid ?? null,
    cgroup: rec.cgroupPath,
    limits: rec.limits,
    created: rec.createdAt,
    started: rec.startedAt ?? null,
    specFile: rec.specFile,
    runtime: rec.runtime.name,
    labels: rec.labels,
    static: rec.static ?? null,
    source: sourceView(rec),
    containers: [...inits, ...apps],
  };
}

export function listPods(host: Host): Promise<PodView[]> {
  return Promise.all(
    host.store.list<PodRecord>("pods").filter((r) => !r.removing).map((r) => podView(host, r)),
  );
}

/** The record name of a pod's container; with one app container the name may be left out. */
export function podMember(host: Host, pod: string, container: string | undefined): ContainerRecord {
  const rec = getPod(host, pod);
  const names = [...rec.initContainers, ...rec.containers].map((m) => m.slice(pod.length + 1));
  if (container === undefined) {
    if (rec.containers.length === 1) return getContainer(host, rec.containers[0]);
    throw new UsageError(
      `pod ${JSON.stringify(pod)} has several containers: name one of ${names.join(", ")}`,
    );
  }
  if (!names.includes(container)) {
    throw new NotFoundError(
      `Cannot find container ${JSON.stringify(container)} in pod ${JSON.stringify(pod)}`,
      {
        hint: `its containers: ${names.join(", ")}`,
      },
    );
  }
  return getContainer(host, memberName(pod, container));
}
