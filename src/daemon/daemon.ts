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
import { type PodRecord, removePod, runPod } from "../workloads/pod.ts";
import { type ContainerRecord, quickRefresh, restartContainer } from "../workloads/container.ts";
import { type Backoff, KUBELET_BACKOFF, restartAt, type RestartPolicy } from "./restart.ts";
import type { Host } from "../workloads/host.ts";
import {
  type Action,
  type ActualPod,
  type DesiredPod,
  isManifestName,
  reconcile,
} from "./reconcile.ts";

export const DEFAULT_MANIFESTS = "/etc/rk8s/manifests";

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

/** Reads and validates every manifest. A pod named in two files is an error in the later one. */
export async function scanManifests(dir: string, loadPods: LoadPodsFn): Promise<Scan> {
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
      const text = Deno.readTextFileSync(file);
      const hash = await sha256(text);
      const pods = loadPods(text, file);
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
  return scan;
}

export interface DaemonEvent {
  time: string;
  action: Action["kind"] | "error" | "start" | "stop" | "restart";
  container?: string;
  exitCode?: number;
  pod?: string;
  file?: string;
  hash?: string;
  error?: string;
}

export interface DaemonStatus {
  pid: number;
  startedAt: string;
  manifests: string;
  lastSync: string;
  errors: Record<string, string>;
  pods: Record<string, { file: string; hash: string; lastError?: string }>;
}

export function daemonPaths(host: Host) {
  return {
    status: `${host.paths.runRoot}/daemon/status.json`,
    events: `${host.paths.root}/daemon/events.jsonl`,
  };
}

function appendEvent(host: Host, e: Omit<DaemonEvent, "time">): void {
  const p = daemonPaths(host).events;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(p, JSON.stringify({ time: host.now().toISOString(), ...e }) + "\n", {
    append: true,
  });
}

/** Actual static pods, from the store. */
export function actualPods(host: Host): ActualPod[] {
  return host.store.list<PodRecord>("pods").map((p) => ({
    name: p.name,
    file: p.static?.file,
    hash: p.static?.hash,
  }));
}

/** One pass: scan, reconcile, apply. Returns what it did. */
export async function syncOnce(
  host: Host,
  options: {
    manifests: string;
    network: string | null;
    loadPods: LoadPodsFn;
    status: DaemonStatus;
  },
): Promise<Action[]> {
  const scan = await scanManifests(options.manifests, options.loadPods);
  const actions = reconcile(scan.desired, actualPods(host), new Set(scan.errors.keys()));
  const st = options.status;
  for (const [file, error] of scan.errors) {
    if (st.errors[file] !== error) appendEvent(host, { action: "error", file, error });
  }
  st.errors = Object.fromEntries(scan.errors);
  for (const a of actions) {
    const want = scan.desired.find((d) => d.name === a.name);
    try {
      if (a.kind === "delete" || a.kind === "recreate") {
        await removePod(host, a.name, { force: true });
      }
      if (a.kind === "create" || a.kind === "recreate") {
        await runPod(host, want!.pod, {
          network: options.network,
          static: { file: a.file, hash: a.hash },
        });
      }
      appendEvent(host, {
        action: a.kind,
        pod: a.name,
        file: a.file,
        hash: "hash" in a ? a.hash : undefined,
      });
      if (a.kind === "delete") delete st.pods[a.name];
      else st.pods[a.name] = { file: a.file, hash: a.hash };
    } catch (e) {
      const error = (e as Error).message.split("\n")[0];
      appendEvent(host, { action: "error", pod: a.name, file: a.file, error });
      st.pods[a.name] = { file: a.file, hash: "hash" in a ? a.hash : "", lastError: error };
    }
  }
  for (const p of actualPods(host)) {
    if (p.file && !st.pods[p.name]) st.pods[p.name] = { file: p.file, hash: p.hash ?? "" };
  }
  st.lastSync = host.now().toISOString();
  writeStatus(host, st);
  return actions;
}

function writeStatus(host: Host, st: DaemonStatus): void {
  const p = daemonPaths(host).status;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
  const tmp = `${p}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(st, null, 2) + "\n");
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
export async function restartExited(host: Host, backoff: Backoff): Promise<number | undefined> {
  const candidates: { name: string; policy: RestartPolicy }[] = [];
  for (const p of host.store.list<PodRecord>("pods")) {
    if (p.static && p.created) {
      for (const m of p.containers) candidates.push({ name: m, policy: p.restartPolicy });
    }
  }
  for (const c of host.store.list<ContainerRecord>("containers")) {
    const policy = c.labels["org.rkl.restart"] as RestartPolicy | undefined;
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
    if (at > host.now().getTime()) {
      next = Math.min(next ?? at, at);
      continue;
    }
    try {
      await restartContainer(host, name);
      appendEvent(host, { action: "restart", container: name, exitCode: live.exitCode });
    } catch (e) {
      appendEvent(host, {
        action: "error",
        container: name,
        error: (e as Error).message.split("\n")[0],
      });
    }
  }
  return next;
}

/** Runs until `signal` aborts: sync on start, on every (debounced) change, and every `relistMs`. */
export async function runDaemon(
  host: Host,
  options: {
    manifests: string;
    network: string | null;
    loadPods: LoadPodsFn;
    relistMs?: number;
    debounceMs?: number;
    backoff?: Backoff;
    signal: AbortSignal;
    log(message: string): void;
  },
): Promise<void> {
  Deno.mkdirSync(options.manifests, { recursive: true });
  const status: DaemonStatus = {
    pid: Deno.pid,
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
  const poke = (delay: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => wake?.(), delay);
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
  options.signal.addEventListener("abort", () => {
    watcher.close();
    wake?.();
  });
  while (!options.signal.aborted) {
    try {
      const done = await syncOnce(host, { ...options, status });
      for (const a of done) options.log(`${a.kind} ${a.name} (${a.file})`);
      for (const error of Object.values(status.errors)) options.log(`error: ${error}`);
    } catch (e) {
      options.log(`sync failed: ${(e as Error).message}`);
    }
    let due: number | undefined;
    try {
      due = await restartExited(host, options.backoff ?? KUBELET_BACKOFF);
    } catch (e) {
      options.log(`restart check failed: ${(e as Error).message}`);
    }
    if (options.signal.aborted) break;
    const relist = options.relistMs ?? 5_000;
    const wait = due === undefined
      ? relist
      : Math.max(10, Math.min(relist, due - host.now().getTime()));
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, wait);
    });
    clearTimeout(timer);
  }
  await pump;
  appendEvent(host, { action: "stop" });
}
