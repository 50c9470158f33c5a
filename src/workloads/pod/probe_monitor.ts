/**
 * The probes of a pod made by `pod run` / `kube play` (not a static pod,
 * whose probes the daemon runs): one small monitor process per pod
 * (`rkl __pod-probes NAME`, started detached when the pod starts, as the
 * compose health monitor is), which runs its containers' startup, liveness
 * and readiness probes for as long as the pod lives, as the kubelet does:
 *
 * - a startup probe holds liveness and readiness back until it passes; one
 *   that fails `failureThreshold` times in a row, or a liveness probe that
 *   does, stops the container (its preStop hook and grace period, the
 *   probe's terminationGracePeriodSeconds first);
 * - an exited container (stopped so, or ended on its own) is restarted per
 *   the pod's restartPolicy (a sidecar: Always) after the kubelet's
 *   back-off, 10 s doubled with every restart up to 5 min; one stopped by
 *   `pod stop` is not, nor one of a Job's pod (its job monitor decides);
 * - each result goes to RUN_ROOT/probes/NAME.json, which `pod state` shows.
 *
 * The monitor ends when its pod record goes (the pod's teardown also
 * signals it), or when nothing of the pod runs and nothing is to restart.
 */
import { ConflictError } from "../../errors.ts";
import type { ProbeSpec } from "../../spec/schema.ts";
import { pidLockOwner, takePidLock } from "../../sys/pidlock.ts";
import {
  type ContainerRecord,
  quickRefresh,
  restartContainer,
  stopContainer,
} from "../container.ts";
import type { Host } from "../host.ts";
import {
  containerTarget,
  initialState,
  probeDue,
  type ProbeKind,
  recordResult,
  runProbe,
} from "../probes.ts";
import type { MemberProbes, MemberProbeState, PodRecord } from "./types.ts";

export type { MemberProbes, MemberProbeState } from "./types.ts";

export interface PodProbeState {
  pod: string;
  updatedAt: string;
  containers: Record<string, MemberProbeState>;
}

export function probeDir(host: Pick<Host, "paths">): string {
  return `${host.paths.runRoot}/probes`;
}

function files(host: Pick<Host, "paths">, pod: string) {
  const dir = probeDir(host);
  return { state: `${dir}/${pod}.json`, pid: `${dir}/${pod}.pid` };
}

/** The kubelet's back-off before restart number `n` (0 first): 10 s doubled, 5 min at most. */
export function restartBackoffMs(n: number): number {
  return Math.min(300_000, 10_000 * 2 ** Math.min(n, 30));
}

/** Whether an exited container is restarted, and when (ms), under `policy`; null: not. */
export function restartDue(
  c: Pick<ContainerRecord, "exitCode" | "restarts" | "finishedAt" | "stoppedByUser">,
  policy: PodRecord["restartPolicy"],
  now: number,
): number | null {
  if (c.stoppedByUser) return null;
  const failed = c.exitCode !== 0;
  if (!(policy === "Always" || (policy === "OnFailure" && failed))) return null;
  const at = Date.parse(c.finishedAt ?? "") || now;
  return at + restartBackoffMs(c.restarts ?? 0);
}

/** The probes to store on a pod record: members that have any; undefined when none has. */
export function memberProbes(
  pod: string,
  members: {
    name: string;
    probes?: { liveness?: ProbeSpec; readiness?: ProbeSpec; startup?: ProbeSpec };
    ports: { name?: string; containerPort: number }[];
    sidecar?: boolean;
  }[],
): Record<string, MemberProbes> | undefined {
  const out: Record<string, MemberProbes> = {};
  for (const m of members) {
    const p = m.probes;
    if (!p || !(p.liveness || p.readiness || p.startup)) continue;
    out[`${pod}_${m.name}`] = {
      ...p,
      ports: m.ports.map((x) => ({ name: x.name, containerPort: x.containerPort })),
      ...(m.sidecar ? { sidecar: true } : {}),
    };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Starts the pod's monitor unless one runs (or the pod has no probes, or is a static pod). */
export function ensureProbeMonitor(
  host: Pick<Host, "paths" | "fs" | "proc" | "selfArgv" | "warn">,
  rec: PodRecord,
): void {
  if (!rec.probes || rec.static) return;
  const argv = host.selfArgv;
  const spawn = host.proc.spawnDetached;
  if (!argv || !spawn) {
    host.warn(`pod ${JSON.stringify(rec.name)}: this host cannot start the probe monitor`);
    return;
  }
  host.fs.mkdir(probeDir(host), { recursive: true, mode: 0o700 });
  if (pidLockOwner(files(host, rec.name).pid) !== undefined) return;
  spawn([
    ...argv,
    "--root",
    host.paths.root,
    "--run-root",
    host.paths.runRoot,
    "__pod-probes",
    rec.name,
  ]);
}

/** The monitor's last state file for `pod`, if any (damaged: none). */
export function readProbeState(
  host: Pick<Host, "paths" | "fs">,
  pod: string,
): PodProbeState | undefined {
  try {
    const v = JSON.parse(host.fs.readTextFile(files(host, pod).state));
    if (v && v.pod === pod && v.containers && typeof v.containers === "object") return v;
  } catch { /* none yet */ }
  return undefined;
}

/**
 * Ends the pod's monitor (teardown): SIGTERM, up to 2 s for it to go, then
 * SIGKILL; its files removed after, so that nothing writes them again.
 */
export async function stopProbeMonitor(host: Host, pod: string): Promise<void> {
  const f = files(host, pod);
  let pid = pidLockOwner(f.pid);
  if (pid !== undefined && pid !== host.proc.self) {
    try {
      host.proc.kill(pid, "SIGTERM");
    } catch { /* gone */ }
    for (let i = 0; i < 20 && pidLockOwner(f.pid) !== undefined; i++) await host.sleep(100);
    pid = pidLockOwner(f.pid);
    if (pid !== undefined) {
      try {
        host.proc.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  for (const p of [f.state, f.pid]) {
    try {
      host.fs.remove(p);
    } catch { /* none */ }
  }
}

/** Whether the monitor should still watch `rec` (its record is there, made, from this boot). */
function watched(host: Host, rec: PodRecord | undefined): rec is PodRecord {
  return !!rec && rec.created && !rec.static && !!rec.probes &&
    (!host.epoch || !rec.epoch || rec.epoch === host.epoch);
}

/**
 * The monitor's loop (`rkl __pod-probes NAME`). Returns when the pod is gone
 * or done, or when `signal` aborts.
 */
export async function runProbeMonitor(
  host: Host,
  pod: string,
  options: { signal?: AbortSignal; tickMs?: number } = {},
): Promise<void> {
  host.fs.mkdir(probeDir(host), { recursive: true, mode: 0o700 });
  const f = files(host, pod);
  let release: () => void;
  try {
    release = takePidLock(f.pid, (pid) => new ConflictError(`probe monitor ${pid} runs already`));
  } catch (e) {
    if (e instanceof ConflictError) return;
    throw e;
  }
  const states: PodProbeState = { pod, updatedAt: "", containers: {} };
  const write = (rec: PodRecord) => {
    // Never after the pod is gone: its teardown removes the file once this process has ended.
    if (options.signal?.aborted || !host.store.get<PodRecord>("pods", rec.name)) return;
    states.updatedAt = host.now().toISOString();
    const tmp = `${f.state}.${host.proc.self}.tmp`;
    host.fs.writeTextFile(tmp, JSON.stringify(states), { mode: 0o600 });
    host.fs.rename(tmp, f.state);
  };
  try {
    while (!options.signal?.aborted) {
      let rec: PodRecord | undefined;
      try {
        rec = host.store.get<PodRecord>("pods", pod);
      } catch {
        // Damaged: its owner sees to it; look again later.
        await host.sleep(options.tickMs ?? 250);
        continue;
      }
      if (!watched(host, rec)) break;
      const busy = await tick(host, rec, states, options.signal, () => write(rec!));
      write(rec);
      if (!busy) break;
      await host.sleep(options.tickMs ?? 250);
    }
  } finally {
    release();
  }
}

/**
 * One pass over the pod's probed members: runs the due probes, stops a
 * container whose liveness or startup probe gave up, restarts an exited one
 * whose back-off has passed. Returns whether anything still runs or waits
 * for a restart.
 */
export async function tick(
  host: Host,
  rec: PodRecord,
  states: PodProbeState,
  signal?: AbortSignal,
  /** Called when a container is about to be stopped (its grace period may be long). */
  save?: () => void,
): Promise<boolean> {
  let busy = false;
  const now = host.now().getTime();
  // kube.ts's OWNER_ANNOTATION (not imported: this process needs nothing else of kube.ts).
  const jobPod = rec.annotations?.["kube.rkl.dev/owner"]?.startsWith("Job/") ?? false;
  for (const [member, probes] of Object.entries(rec.probes ?? {})) {
    if (signal?.aborted) return false;
    const c = host.store.get<ContainerRecord>("containers", member);
    if (!c) continue;
    const live = await quickRefresh(host, c);
    const name = member.slice(rec.name.length + 1);
    let st = states.containers[name] ?? {};
    if (live.status === "exited") {
      // A Job's pod is not restarted in place: its job monitor counts the failure and makes the
      // next pod (workloads/kube.ts).
      const at = jobPod
        ? null
        : restartDue(live, probes.sidecar ? "Always" : rec.restartPolicy, now);
      if (at === null) {
        delete st.restartAt;
        states.containers[name] = st;
        continue;
      }
      busy = true;
      st.restartAt = new Date(at).toISOString();
      states.containers[name] = st;
      if (at > now) continue;
      try {
        await restartContainer(host, member);
        delete st.restartAt;
      } catch (e) {
        host.warn(`pod ${rec.name}: restart of ${name}: ${(e as Error).message.split("\n")[0]}`);
      }
      continue;
    }
    if (live.status !== "running" || !live.startedAt || !live.pid) {
      busy ||= live.status === "created" || live.status === "creating";
      continue;
    }
    busy = true;
    if (st.pid !== live.pid) st = { pid: live.pid }; // a new process: its probes start afresh
    states.containers[name] = st;
    const startedAt = Date.parse(live.startedAt);
    const target = containerTarget(host, live, {
      ip: rec.network?.ip ?? "127.0.0.1",
      ports: probes.ports,
    });
    const step = async (kind: ProbeKind): Promise<{ ok: boolean; gaveUp: boolean }> => {
      const p = probes[kind]!;
      const s0 = st[kind] ??
        (kind === "startup" ? { ...initialState(kind), ok: false } : initialState(kind));
      st[kind] = s0;
      if (!probeDue(p, s0, startedAt, now)) return { ok: s0.ok, gaveUp: false };
      // A probe that cannot even run (the exec fails to start) has failed.
      const passed = await runProbe(p, target).catch(() => false);
      const { state, changed } = recordResult(p, s0, passed, host.now().getTime());
      st[kind] = state;
      const gaveUp = (kind === "liveness" && changed && !state.ok) ||
        (kind === "startup" && !state.ok && state.failures >= (p.failureThreshold ?? 3));
      return { ok: state.ok, gaveUp };
    };
    const kill = async (kind: ProbeKind) => {
      st.lastFailure = { probe: kind, at: host.now().toISOString() };
      save?.();
      const p = probes[kind]!;
      await stopContainer(
        host,
        member,
        p.terminationGracePeriodSeconds ?? rec.terminationGracePeriodSeconds,
      );
    };
    if (probes.startup) {
      const s = await step("startup");
      if (s.gaveUp) {
        await kill("startup");
        continue;
      }
      if (!s.ok) continue;
    }
    if (probes.liveness) {
      const l = await step("liveness");
      if (l.gaveUp) {
        await kill("liveness");
        continue;
      }
    }
    if (probes.readiness) await step("readiness");
  }
  return busy;
}

/** A member's readiness as the kubelet reports it: running, started, its readiness probe passing. */
export function memberReady(
  status: ContainerRecord["status"] | "missing" | "unknown",
  probes: MemberProbes | undefined,
  st: MemberProbeState | undefined,
  pid: number | null,
): boolean {
  if (status !== "running") return false;
  const fresh = st && st.pid === pid ? st : undefined;
  if (probes?.startup && !fresh?.startup?.ok) return false;
  if (probes?.readiness) return fresh?.readiness?.ok ?? false;
  return true;
}
