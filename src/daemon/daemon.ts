/**
 * `rkl daemon`: keeps the pods of a manifests directory running, the way a
 * kubelet keeps static pods. Three parts, kept apart:
 *
 * - scan: the directory → desired pods (validated) and broken files;
 * - reconcile(): pure, in reconcile.ts;
 * - apply: the same pod functions the CLI uses.
 *
 * It is triggered by inotify (Deno.watchFs), debounced, and by a periodic
 * relist. The daemon holds no state of its own that matters: pods, their
 * containers and conmon outlive it, and a restarted daemon adopts them from
 * the store (same manifest hash → nothing to do).
 */
import type { LoadedPod } from "../spec/pod.ts";
import { type PodRecord, removePod, runPod, stopPod } from "../workloads/pod.ts";
import {
  type ContainerRecord,
  fromEarlierBoot,
  procStat,
  quickRefresh,
  restartContainer,
} from "../workloads/container.ts";
import { gc } from "../workloads/gc.ts";
import { rotateIfLarge } from "../workloads/logrotate.ts";
import { withAbort } from "../cancel.ts";
import { ConflictError } from "../errors.ts";
import { processAlive, takePidLock } from "../sys/pidlock.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../sys/readfile.ts";
import { type Backoff, KUBELET_BACKOFF, restartAt, type RestartPolicy } from "./restart.ts";
import {
  initialState,
  probeDue,
  type ProbeKind,
  type ProbeState,
  recordResult,
  runProbe,
} from "./probes.ts";
import { stopContainer } from "../workloads/container.ts";
import type { Host } from "../workloads/host.ts";
import { execProcess } from "../oci/runtime.ts";
import {
  type Action,
  type ActualPod,
  type DesiredPod,
  isManifestName,
  reconcile,
} from "./reconcile.ts";
import { RESTART_LABEL } from "../spec/names.ts";
import { IdleCollector } from "./memory.ts";

export const DEFAULT_MANIFESTS = "/etc/rk8s/manifests";
/** Largest manifest the daemon reads. */
export const MAX_MANIFEST_BYTES = MAX_INPUT_BYTES;

function readManifest(file: string): string {
  try {
    return readTextBounded(file, { max: MAX_MANIFEST_BYTES, follow: false });
  } catch (e) {
    if (e instanceof FileReadError) throw new Error(`${file}: ${e.reason}`);
    throw e;
  }
}

export interface Scan {
  desired: (DesiredPod & { pod: LoadedPod })[];
  /** File → first error line. */
  errors: Map<string, string>;
}

export type LoadPodsFn = (text: string, file: string) => LoadedPod[];

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/**
 * The parsed pods without their YAML documents: locations (for the rare
 * error that needs one) re-parse the text on demand. With 50 manifests this
 * keeps the daemon's memory to the pods' plain data.
 */
function lighten(pods: LoadedPod[], text: string, file: string, loadPods: LoadPodsFn): LoadedPod[] {
  let full: LoadedPod[] | undefined;
  const again = () => full ??= loadPods(text, file);
  type Path = Parameters<LoadedPod["source"]["at"]>[0];
  return pods.map((p, i) => ({
    ...p,
    source: { file, at: (path: Path) => again()[i].source.at(path) },
    spec: {
      ...p.spec,
      containers: p.spec.containers.map((c, j) => ({
        ...c,
        source: { file, at: (path: Path) => again()[i].spec.containers[j].source.at(path) },
      })),
      initContainers: p.spec.initContainers.map((c, j) => ({
        ...c,
        source: { file, at: (path: Path) => again()[i].spec.initContainers[j].source.at(path) },
      })),
    },
  }));
}

/** Parsed manifests by path, reused while a file's mtime and size stay the same. */
export type ScanCache = Map<
  string,
  { mtime: number; size: number; hash: string; pods?: LoadedPod[]; error?: string }
>;

/** Reads and validates every manifest. A pod named in two files is an error in the later one. */
export async function scanManifests(
  dir: string,
  loadPods: LoadPodsFn,
  cache: ScanCache = new Map(),
): Promise<Scan> {
  const scan: Scan = { desired: [], errors: new Map() };
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && isManifestName(e.name)).map((e) =>
      e.name
    ).sort();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = `${dir}/${name}`;
    try {
      const st = Deno.statSync(file);
      const mtime = st.mtime?.getTime() ?? 0;
      let hit = cache.get(file);
      if (st.size > MAX_MANIFEST_BYTES) {
        // Never read: a huge file would cost memory on every relist.
        throw new Error(
          `${file}: ${st.size} bytes; rkl reads manifests up to ${MAX_MANIFEST_BYTES} bytes (1 MiB)`,
        );
      }
      if (!hit || hit.mtime !== mtime || hit.size !== st.size) {
        // Opened without following a symlink and without waiting on a FIFO
        // put there since the listing; refused unless a regular file, read up to the cap.
        const text = readManifest(file);
        hit = { mtime, size: st.size, hash: await sha256(text) };
        try {
          hit.pods = lighten(loadPods(text, file), text, file, loadPods);
        } catch (e) {
          hit.error = (e as Error).message.split("\n")[0];
        }
        cache.set(file, hit);
      }
      if (hit.error) throw new Error(hit.error);
      const hash = hit.hash;
      const pods = hit.pods!;
      for (const pod of pods) {
        const other = seen.get(pod.spec.name);
        if (other) {
          throw new Error(
            `${file}: pod ${JSON.stringify(pod.spec.name)} is already defined in ${other}`,
          );
        }
      }
      for (const pod of pods) {
        seen.set(pod.spec.name, file);
        scan.desired.push({ name: pod.spec.name, file, hash, pod });
      }
    } catch (e) {
      scan.errors.set(file, (e as Error).message.split("\n")[0]);
    }
  }
  for (const f of cache.keys()) if (!names.includes(f.slice(dir.length + 1))) cache.delete(f);
  return scan;
}

export interface DaemonEvent {
  time: string;
  action: Action["kind"] | "error" | "start" | "stop" | "restart" | "probe";
  probe?: ProbeKind;
  container?: string;
  exitCode?: number;
  pod?: string;
  file?: string;
  hash?: string;
  error?: string;
}

export interface DaemonStatus {
  pid: number;
  /** Start time of `pid` (/proc/PID/stat), to tell a live daemon from a reused pid. */
  pidStart?: number;
  startedAt: string;
  manifests: string;
  lastSync: string;
  errors: Record<string, string>;
  pods: Record<
    string,
    { file: string; hash: string; lastError?: string; ready?: boolean; working?: string }
  >;
}

export function daemonPaths(host: Host) {
  return {
    status: `${host.paths.runRoot}/daemon/status.json`,
    events: `${host.paths.root}/daemon/events.jsonl`,
  };
}

function appendEvent(host: Host, e: Omit<DaemonEvent, "time">): void {
  const p = daemonPaths(host).events;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(p, JSON.stringify({ time: host.now().toISOString(), ...e }) + "\n", {
    append: true,
    mode: 0o600,
  });
}

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

/** Failed attempts per pod or container, for back-off between retries. */
export type Failures = Map<string, { count: number; retryAt: number; hash?: string }>;

function failed(failures: Failures, key: string, now: number, backoff: Backoff): number {
  const f = failures.get(key) ?? { count: 0, retryAt: 0 };
  f.count++;
  f.retryAt = now + Math.min(backoff.baseMs * 2 ** (f.count - 1), backoff.maxMs);
  failures.set(key, f);
  return f.retryAt;
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
      const target = {
        ip: pod.network?.ip ?? "127.0.0.1",
        ports: c.spec.ports,
        exec: async (argv: string[], timeoutMs: number) => {
          const process = execProcess(live.dirs.config, argv);
          return (await host.runtimeFor(live.runtime).execCapture(live.id, process, {
            timeoutMs,
            fileDir: live.dirs.conmonDir,
          })).code;
        },
      };
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

function writeStatus(host: Host, st: DaemonStatus): void {
  const p = daemonPaths(host).status;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  const tmp = `${p}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, p);
}

export function readStatus(host: Host): DaemonStatus | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(daemonPaths(host).status));
  } catch {
    return undefined;
  }
}

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
  const candidates: { name: string; policy: RestartPolicy }[] = [];
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
    const policy = c.labels[RESTART_LABEL] as RestartPolicy | undefined;
    if (policy && policy !== "no") candidates.push({ name: c.name, policy });
  }
  let next: number | undefined;
  for (const { name, policy } of candidates) {
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
    if (c.cri) continue; // the kubelet rotates its own logs (ReopenContainerLog)
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

/** Runs until `signal` aborts: sync on start, on every (debounced) change, and every `relistMs`. */
export interface DaemonOptions {
  manifests: string;
  network: string | null;
  loadPods: LoadPodsFn;
  relistMs?: number;
  debounceMs?: number;
  backoff?: Backoff;
  signal: AbortSignal;
  log(message: string): void;
  /** Serve the CRI (runtime.v1) on this unix socket while the daemon runs. */
  criSocket?: string;
  /** rkl's version, as the CRI's Version reports it. */
  version?: string;
  /** The CRI sandboxes' pause image ("" for the built-in pause bundle). */
  pauseImage?: string;
  /**
   * Starts serving CLI commands for thin clients (cli/serve.ts), once this
   * daemon holds the run root; what it returns is closed when the daemon stops.
   */
  serveCli?: () => Promise<{ close(): Promise<void> }>;
  /** Told of every CRI call once answered (`--metrics`, src/daemon/metrics.ts). */
  onCriCall?: (method: string, code: string, seconds: number) => void;
}

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

async function runDaemonLocked(host: Host, options: DaemonOptions): Promise<void> {
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
  // The CRI: its socket now, its code at the first connection (src/cri/lazy.ts):
  // grpc-js and the proto parser cost start-up time and memory that a
  // static-pod-only daemon need not pay.
  let cri: { close(): Promise<void> } | undefined;
  if (options.criSocket) {
    const { serveCriOnDemand } = await import("../cri/lazy.ts");
    cri = await serveCriOnDemand(options.criSocket, async () => {
      const [{ criInjector }, { criHandlers }] = await Promise.all([
        import("../cri/grpc.ts"),
        import("../cri/service.ts"),
      ]);
      const served = criInjector(
        criHandlers(host, {
          network: options.network,
          version: options.version ?? "",
          pauseImage: options.pauseImage,
          log: options.log,
        }),
        { log: options.log, onCall: options.onCriCall },
      );
      options.log("CRI: gRPC server loaded (first connection)");
      return served;
    }, options.log);
    options.log(`CRI serving on unix://${options.criSocket}`);
  }
  const cliServer = await options.serveCli?.();
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
  await cliServer?.close();
  await cri?.close();
  appendEvent(host, { action: "stop" });
}
