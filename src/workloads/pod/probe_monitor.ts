/**
 * The probes of pods made by `pod run` / `kube play` (not static pods,
 * whose probes the daemon runs): one monitor process per run root
 * (`rkl __pod-probes`, started detached by the first pod with probes, as the
 * compose health monitor is), with one worker per pod, which runs its
 * containers' startup, liveness and readiness probes for as long as the pod
 * lives, as the kubelet does:
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
 * Files in RUN_ROOT/probes: `monitor.pid` (the monitor's lock), `NAME.pid`
 * (held by the worker of pod NAME while it runs), `NAME.wake` (the pod has
 * started: watch it), `NAME.stop` (a teardown's request that the worker
 * end; no worker starts for the pod while the file is there). A pod's worker
 * ends when its record goes or is asked to stop, and rests when nothing of
 * the pod runs and nothing is to restart, until the pod starts again; the
 * monitor ends once every pod it watches rests. SIGUSR1 makes it look now
 * rather than at its next pass. One process for all pods, not one per pod:
 * each deno process costs about 60 MiB.
 */
import { ConflictError } from "../../errors.ts";
import type { ProbeSpec } from "../../spec/schema.ts";
import { pidLockOwner, takePidLock } from "../../sys/pidlock.ts";
import { pathExists } from "../../sys/fsutil.ts";
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

const monitorPid = (host: Pick<Host, "paths">) => `${probeDir(host)}/monitor.pid`;

function files(host: Pick<Host, "paths">, pod: string) {
  const dir = probeDir(host);
  return {
    state: `${dir}/${pod}.json`,
    pid: `${dir}/${pod}.pid`,
    stop: `${dir}/${pod}.stop`,
    wake: `${dir}/${pod}.wake`,
  };
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

/**
 * Has the run root's monitor watch `rec` (a pod just started): a wake file,
 * then a signal to the monitor that runs, or a new one. A monitor that lets
 * its lock go after the check here still sees the wake file before it ends.
 * A stop request left by an earlier pod of the name is dropped first.
 */
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
  const f = files(host, rec.name);
  try {
    host.fs.remove(f.stop);
  } catch { /* none */ }
  host.fs.writeTextFile(f.wake, "", { mode: 0o600 });
  const running = pidLockOwner(monitorPid(host));
  if (running !== undefined) {
    try {
      // It looks at the pods again now, not at its next pass.
      host.proc.kill(running, "SIGUSR1");
      return;
    } catch { /* gone meanwhile: start one */ }
  }
  spawn([...argv, "--root", host.paths.root, "--run-root", host.paths.runRoot, "__pod-probes"]);
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
 * Ends the pod's worker (teardown), so that it restarts nothing that is being
 * removed: a stop request, the monitor woken (SIGUSR1), up to 2 s for the
 * worker to let its pid file go (and for the monitor to end, when this was
 * the last pod with probes). A monitor that does not answer in time is
 * killed (and a new one started for the other pods). A monitor of an older
 * rkl, one process for this pod alone, gets SIGTERM, then SIGKILL. The pod's
 * files go after, so that nothing writes them again; the stop request stays
 * until the pod's record has gone (dropProbeStop).
 */
export async function stopProbeMonitor(host: Host, pod: string): Promise<void> {
  const f = files(host, pod);
  // From here on no worker starts for the pod, also in a monitor that has not seen it yet.
  host.fs.mkdir(probeDir(host), { recursive: true, mode: 0o700 });
  host.fs.writeTextFile(f.stop, "", { mode: 0o600 });
  const monitor = pidLockOwner(monitorPid(host));
  const owner = pidLockOwner(f.pid);
  const signal = (pid: number, sig: Deno.Signal) => {
    try {
      host.proc.kill(pid, sig);
    } catch { /* gone */ }
  };
  if (monitor !== undefined && monitor !== host.proc.self) signal(monitor, "SIGUSR1");
  if (owner !== undefined && owner !== host.proc.self) {
    const shared = monitor === owner;
    if (!shared) signal(owner, "SIGTERM");
    for (let i = 0; i < 40 && pidLockOwner(f.pid) !== undefined; i++) await host.sleep(50);
    if (pidLockOwner(f.pid) !== undefined) {
      signal(owner, "SIGKILL");
      for (let i = 0; i < 20 && pidLockOwner(f.pid) !== undefined; i++) await host.sleep(50);
      const argv = host.selfArgv;
      if (shared && argv && host.proc.spawnDetached) {
        host.proc.spawnDetached([
          ...argv,
          ...["--root", host.paths.root, "--run-root", host.paths.runRoot, "__pod-probes"],
        ]);
      }
    }
  }
  if (monitor !== undefined && monitor !== host.proc.self && !othersProbed(host, pod)) {
    // The last pod it watched: it ends now (woken above), and rm returns once it has, so
    // that nothing of rkl's runs on for a removed pod.
    for (let i = 0; i < 40 && pidLockOwner(monitorPid(host)) === monitor; i++) await host.sleep(50);
  }
  for (const p of [f.state, f.pid, f.wake]) {
    try {
      host.fs.remove(p);
    } catch { /* none */ }
  }
}

/** Whether a pod other than `pod` has probes the monitor would run. */
function othersProbed(host: Host, pod: string): boolean {
  try {
    return host.store.list<PodRecord>("pods").some((r) =>
      r.name !== pod && !!r.probes && !r.static && !r.removing
    );
  } catch {
    return true; // a damaged record: do not wait on the monitor
  }
}

/** The stop request for `pod`, once its record has gone (the end of its teardown). */
export function dropProbeStop(host: Pick<Host, "paths" | "fs">, pod: string): void {
  try {
    host.fs.remove(files(host, pod).stop);
  } catch { /* none */ }
}

/**
 * Whether the monitor should watch `rec`: its record is there, made, from
 * this boot, not being removed, and no stop request is left for it.
 */
function watched(host: Host, rec: PodRecord | undefined): rec is PodRecord {
  return !!rec && rec.created && !rec.static && !!rec.probes && !rec.removing &&
    (!host.epoch || !rec.epoch || rec.epoch === host.epoch) &&
    !pathExists(files(host, rec.name).stop, host.fs);
}

/**
 * The run root's monitor (`rkl __pod-probes`): a worker for each pod it
 * should watch, until none is left or `signal` aborts. `wake` registers the
 * callback that makes it look at the pods now (SIGUSR1: a pod started, or a
 * stop was asked for).
 */
export async function runProbeMonitors(
  host: Host,
  options: { signal?: AbortSignal; tickMs?: number; wake?: (fn: () => void) => void } = {},
): Promise<void> {
  const dir = probeDir(host);
  host.fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const lock = () => {
    try {
      return takePidLock(monitorPid(host), (pid) => new ConflictError(`probe monitor ${pid} runs`));
    } catch (e) {
      if (e instanceof ConflictError) return undefined; // another one does the work
      throw e;
    }
  };
  // The wake-up first: a SIGUSR1 that came before its listener would end the process.
  let wakeUp: () => void = () => {};
  options.wake?.(() => wakeUp());
  let release = lock();
  if (!release) return;
  const tickMs = options.tickMs ?? 250;
  const workers = new Map<string, { stop: AbortController; done: Promise<void> }>();
  /** Pods whose worker rested (nothing runs, nothing to restart) and that have not started since. */
  const resting = new Set<string>();
  /** Takes the wake files: those pods are watched afresh. Whether there was any. */
  const takeWakes = (): boolean => {
    let any = false;
    let entries: { name: string }[] = [];
    try {
      entries = host.fs.readDir(dir);
    } catch { /* none */ }
    for (const e of entries) {
      if (!e.name.endsWith(".wake")) continue;
      any = true;
      resting.delete(e.name.slice(0, -".wake".length));
      try {
        host.fs.remove(`${dir}/${e.name}`);
      } catch { /* taken */ }
    }
    return any;
  };
  const scan = (): PodRecord[] => {
    try {
      return host.store.list<PodRecord>("pods").filter((r) => watched(host, r));
    } catch {
      return []; // a damaged record: its owner sees to it
    }
  };
  try {
    while (!options.signal?.aborted) {
      takeWakes();
      const pods = scan();
      const names = new Set(pods.map((r) => r.name));
      for (const name of resting) if (!names.has(name)) resting.delete(name);
      for (const [name, w] of workers) if (!names.has(name)) w.stop.abort();
      for (const rec of pods) {
        if (workers.has(rec.name) || resting.has(rec.name)) continue;
        // A worker of another process (an older rkl's per-pod monitor) keeps it.
        const other = pidLockOwner(files(host, rec.name).pid);
        if (other !== undefined && other !== host.proc.self) continue;
        const stop = new AbortController();
        const abort = () => stop.abort();
        options.signal?.addEventListener("abort", abort, { once: true });
        const done = runProbeMonitor(host, rec.name, { signal: stop.signal, tickMs })
          .then((rested) => {
            if (rested) resting.add(rec.name);
          })
          .catch((e) => host.warn(`pod ${rec.name}: probes: ${(e as Error).message}`))
          .finally(() => {
            options.signal?.removeEventListener("abort", abort);
            workers.delete(rec.name);
            wakeUp(); // the monitor may be done now
          });
        workers.set(rec.name, { stop, done });
      }
      if (workers.size === 0 && pods.every((r) => resting.has(r.name))) {
        // Let the lock go, then look once more: a pod that started before that has left its
        // wake file, seen here; one that starts after finds no monitor and starts one.
        release();
        release = undefined;
        if (!takeWakes() && scan().every((r) => resting.has(r.name))) break;
        release = lock();
        if (!release) break;
        continue;
      }
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        host.sleep(tickMs).then(resolve);
      });
      wakeUp = () => {};
    }
  } finally {
    for (const w of workers.values()) w.stop.abort();
    await Promise.all([...workers.values()].map((w) => w.done));
    release?.();
  }
}

/**
 * The worker of one pod. Returns when the pod is gone (false), when `signal`
 * aborts (false), or when nothing of it runs and nothing is to restart
 * (true: it rests until woken).
 */
export async function runProbeMonitor(
  host: Host,
  pod: string,
  options: { signal?: AbortSignal; tickMs?: number } = {},
): Promise<boolean> {
  host.fs.mkdir(probeDir(host), { recursive: true, mode: 0o700 });
  const f = files(host, pod);
  let release: () => void;
  try {
    release = takePidLock(f.pid, (pid) => new ConflictError(`probe monitor ${pid} runs already`));
  } catch (e) {
    if (e instanceof ConflictError) return false;
    throw e;
  }
  const states: PodProbeState = { pod, updatedAt: "", containers: {} };
  const write = (rec: PodRecord) => {
    // Never after the pod is gone: its teardown removes the file once this worker has ended.
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
      if (!watched(host, rec)) return false;
      const busy = await tick(host, rec, states, options.signal, () => write(rec!));
      write(rec);
      if (!busy) return true;
      await host.sleep(options.tickMs ?? 250);
    }
    return false;
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
