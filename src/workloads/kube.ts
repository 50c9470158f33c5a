/**
 * `rkl kube play FILE` / `rkl kube down FILE` (and `pod run|create` of a file
 * holding workload kinds): what a Kubernetes file makes on this host, and the
 * job monitor that runs a Job to completion.
 *
 * Every pod a file makes carries three annotations (its file, a hash of what
 * it was made from, and its owner: `Deployment/web`), so `kube down FILE`
 * finds everything the file made even after the file changed, and a second
 * `play` of a changed file replaces only the pods whose content changed,
 * removes the ones the file no longer makes and leaves the others running
 * (podman's `--replace` recreates all of them).
 *
 * A Job is run by a small process of its own (`rkl __job-monitor NAME`,
 * started in its own session as the health monitor is): it makes pods
 * `<job>-pod-<n>` up to `parallelism` at a time until `completions` of them
 * succeeded, counts a failed pod against `backoffLimit` and waits 10 s, 20 s,
 * 40 s … (capped at 6 min, the Job controller's delays; `--job-backoff` sets
 * the first) before the next, and stops everything once
 * `activeDeadlineSeconds` have passed. Its status is a file under
 * ROOT/kube/jobs that `rkl kube status` prints; `kube down` ends the monitor.
 */
import { ConflictError, SpecError, UsageError } from "../errors.ts";
import type { KubeJob, LoadedKube, PodOwner } from "../spec/kinds.ts";
import type { LoadedPod } from "../spec/pod.ts";
import type { Host } from "./host.ts";
import {
  createPod,
  getPod,
  type PodRecord,
  podView,
  removePod,
  removePods,
  runPod,
  stopPod,
} from "./pod.ts";
import { pidLockOwner, takePidLock } from "../sys/pidlock.ts";
import { readTextBounded } from "../sys/readfile.ts";
import { sha256Hex } from "../base/hex.ts";

/** Annotations on every pod a Kubernetes file made. */
export const FILE_ANNOTATION = "kube.rkl.dev/file";
export const HASH_ANNOTATION = "kube.rkl.dev/hash";
export const OWNER_ANNOTATION = "kube.rkl.dev/owner";

/** The Job controller's delays: 10 s doubled after each failure, at most 6 minutes. */
export const JOB_BACKOFF_SECONDS = 10;
export const JOB_BACKOFF_MAX_SECONDS = 360;

export interface JobStatus {
  name: string;
  file: string;
  configmaps: string[];
  network: string | null;
  hash: string;
  completions: number;
  parallelism: number;
  backoffLimit: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  /** Seconds before the first retry (doubled after each further failure). */
  backoffSeconds: number;
  startedAt: string;
  completedAt?: string;
  succeeded: number;
  failed: number;
  active: string[];
  /** Every pod the job made, in order (kept, as the Job controller keeps them, until down). */
  pods: string[];
  condition: "Running" | "Complete" | "Failed";
  reason?: string;
}

export interface PlayReport {
  /** Pods made (or remade because the file changed them). */
  made: string[];
  /** Pods the file made before and still makes the same: left running. */
  kept: string[];
  /** Pods removed: the file no longer makes them, or they changed. */
  removed: string[];
  jobs: string[];
}

function jobsDir(host: Pick<Host, "paths">): string {
  return `${host.paths.root}/kube/jobs`;
}

/** Job names are DNS-1123 labels (kinds.ts checks them), so they are safe file names. */
function jobFile(host: Pick<Host, "paths">, name: string): string {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
    throw new UsageError(`${JSON.stringify(name)} is not a job name`);
  }
  return `${jobsDir(host)}/${name}.json`;
}

/** What a pod is made from (functions and locations dropped), hashed with its network. */
export function podHash(pod: LoadedPod, network: string | null): Promise<string> {
  const { annotations: _a, ...spec } = pod.spec;
  const containers = (l: LoadedPod["spec"]["containers"]) => l.map((c) => c.spec);
  return sha256Hex(JSON.stringify({
    network,
    spec: {
      ...spec,
      containers: containers(spec.containers),
      initContainers: containers(spec.initContainers),
    },
    annotations: pod.spec.annotations,
  }));
}

export function jobHash(job: KubeJob, network: string | null): Promise<string> {
  return podHash(job.template, network).then((h) =>
    sha256Hex(JSON.stringify([
      h,
      job.completions,
      job.parallelism,
      job.backoffLimit,
      job.activeDeadlineSeconds,
      job.ttlSecondsAfterFinished,
    ]))
  );
}

/** The pod as made from `file`: the annotations that tie it to the file, under a new name. */
function annotated(pod: LoadedPod, file: string, owner: PodOwner, hash: string, name?: string) {
  return {
    ...pod,
    spec: {
      ...pod.spec,
      ...(name
        ? { name, hostname: pod.spec.hostname === pod.spec.name ? name : pod.spec.hostname }
        : {}),
      annotations: {
        ...pod.spec.annotations,
        [FILE_ANNOTATION]: file,
        [HASH_ANNOTATION]: hash,
        [OWNER_ANNOTATION]: `${owner.kind}/${owner.name}`,
      },
    },
  };
}

/** Pods whose records say `file` made them. */
export function podsOfFile(host: Host, file: string): PodRecord[] {
  return host.store.list<PodRecord>("pods").filter((p) =>
    p.annotations?.[FILE_ANNOTATION] === file
  );
}

/** A job's status file, checked as it is read back (it is data from disk). */
export function readJob(host: Pick<Host, "paths">, name: string): JobStatus | undefined {
  let text: string;
  try {
    text = readTextBounded(jobFile(host, name), { max: 1 << 20 });
  } catch {
    return undefined;
  }
  let v: JobStatus;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const label = (s: unknown) => typeof s === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s);
  if (
    !v || typeof v !== "object" || v.name !== name || typeof v.file !== "string" ||
    !Array.isArray(v.pods) || !v.pods.every(label) || !Array.isArray(v.active) ||
    !v.active.every(label) || !Number.isInteger(v.succeeded) || !Number.isInteger(v.failed)
  ) return undefined;
  return v;
}

function writeJob(host: Pick<Host, "paths">, st: JobStatus): void {
  Deno.mkdirSync(jobsDir(host), { recursive: true, mode: 0o700 });
  const path = jobFile(host, st.name);
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, path);
}

/** Every job status under the root. */
export function listJobs(host: Pick<Host, "paths">): JobStatus[] {
  const out: JobStatus[] = [];
  try {
    for (const e of Deno.readDirSync(jobsDir(host))) {
      const m = /^([a-z0-9-]+)\.json$/.exec(e.name);
      const st = m && e.isFile ? readJob(host, m[1]) : undefined;
      if (st) out.push(st);
    }
  } catch { /* none yet */ }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function monitorLock(host: Pick<Host, "paths">, name: string): string {
  return `${jobsDir(host)}/${name}.pid`;
}

/** Ends a job's monitor (SIGTERM, then waits for its lock to go) and removes its pods and file. */
async function removeJob(host: Host, name: string, file: string): Promise<string[]> {
  const pid = pidLockOwner(monitorLock(host, name));
  if (pid !== undefined) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
    for (let i = 0; i < 300 && pidLockOwner(monitorLock(host, name)) !== undefined; i++) {
      await host.sleep(50);
    }
  }
  const st = readJob(host, name);
  const names = new Set(st && st.file === file ? st.pods : []);
  for (const p of podsOfFile(host, file)) {
    if (p.annotations?.[OWNER_ANNOTATION] === `Job/${name}`) names.add(p.name);
  }
  const removed = await removePods(host, [...names]);
  try {
    Deno.removeSync(jobFile(host, name));
  } catch { /* none */ }
  return removed;
}

/**
 * Makes what `kube` asks for: new pods, pods whose content changed (removed
 * and made again), pods the file no longer makes (removed), and jobs (each
 * started with its monitor, unless unchanged). All or nothing for what this
 * call makes: a failure removes the pods it made before it.
 */
export async function playKube(
  host: Host,
  kube: LoadedKube,
  options: {
    file: string;
    network: string | null;
    start: boolean;
    /** `kube play`: replace what changed, keep the rest; else a name in use is refused. */
    replace?: boolean;
    configmaps?: string[];
    jobBackoffSeconds?: number;
  },
): Promise<PlayReport> {
  const { file, network } = options;
  const report: PlayReport = { made: [], kept: [], removed: [], jobs: [] };
  // Without replace (`pod run|create`), nothing made before is touched: a name in use is refused
  // by createPod at its line, as `podman kube play` without --replace refuses it.
  const mine = new Map(
    options.replace ? podsOfFile(host, file).map((p) => [p.name, p] as const) : [],
  );
  const want = await Promise.all(kube.pods.map(async (p) => ({
    pod: p,
    hash: await podHash(p, network),
  })));
  // Refuse before anything changes: a name taken by a pod this file did not make.
  for (const { pod } of options.replace ? want : []) {
    if (!mine.has(pod.spec.name) && host.store.get("pods", pod.spec.name)) {
      throw new ConflictError(
        `Cannot make pod ${
          JSON.stringify(pod.spec.name)
        }: a pod of that name exists and ${file} did not make it`,
        { hint: "remove it (rkl pod rm -f) or rename the workload" },
      );
    }
  }
  const wanted = new Set(want.map((w) => w.pod.spec.name));
  const jobNames = new Set(kube.jobs.map((j) => j.name));
  // Pods the file no longer makes, or makes differently; jobs it no longer has.
  for (const [name, rec] of mine) {
    const owner = rec.annotations?.[OWNER_ANNOTATION] ?? "";
    if (owner.startsWith("Job/")) {
      if (!jobNames.has(owner.slice(4))) {
        report.removed.push(...await removeJob(host, owner.slice(4), file));
      }
      continue;
    }
    const w = want.find((x) => x.pod.spec.name === name);
    if (!wanted.has(name) || rec.annotations?.[HASH_ANNOTATION] !== w?.hash) {
      report.removed.push(name);
    } else {
      report.kept.push(name);
    }
  }
  await removePods(host, report.removed.filter((n) => mine.has(n)));
  for (const st of options.replace ? listJobs(host) : []) {
    if (st.file === file && !jobNames.has(st.name)) {
      report.removed.push(...await removeJob(host, st.name, file));
    }
  }
  const kept = new Set(report.kept);
  try {
    // The pods are made side by side (the store's lock and CNI's serialize what must be).
    const todo = want.filter(({ pod }) => !kept.has(pod.spec.name));
    const results = await Promise.allSettled(todo.map(({ pod, hash }) => {
      const a = annotated(pod, file, pod.owner, hash);
      return options.start ? runPod(host, a, { network }) : createPod(host, a, { network });
    }));
    results.forEach((r, i) => {
      if (r.status === "fulfilled") report.made.push(todo[i].pod.spec.name);
    });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    for (const job of kube.jobs) {
      const hash = await jobHash(job, network);
      const old = readJob(host, job.name);
      if (old && old.file !== file) {
        throw new ConflictError(
          `Cannot start job ${JSON.stringify(job.name)}: ${old.file} runs a job of that name`,
          { hint: `rkl kube down ${old.file}` },
        );
      }
      if (old && !options.replace) {
        throw new ConflictError(
          `Cannot start job ${JSON.stringify(job.name)}: it was started already`,
          {
            hint:
              `rkl kube play ${file} replaces it if it changed; rkl kube down ${file} removes it`,
          },
        );
      }
      if (old && old.hash === hash) {
        // A running job whose monitor is gone (a reboot, a kill) gets its monitor back.
        if (old.condition === "Running" && !jobMonitorAlive(host, job.name)) {
          startJobMonitor(host, job.name);
        }
        report.kept.push(`job/${job.name}`);
        continue;
      }
      if (old) report.removed.push(...await removeJob(host, job.name, file));
      if (!options.start) {
        throw new SpecError(
          job.loc,
          `Job ${job.name} runs once made: use rkl kube play or rkl pod run, not pod create`,
        );
      }
      writeJob(host, {
        name: job.name,
        file,
        configmaps: options.configmaps ?? [],
        network,
        hash,
        completions: job.completions,
        parallelism: job.parallelism,
        backoffLimit: job.backoffLimit,
        activeDeadlineSeconds: job.activeDeadlineSeconds,
        ttlSecondsAfterFinished: job.ttlSecondsAfterFinished,
        backoffSeconds: options.jobBackoffSeconds ?? JOB_BACKOFF_SECONDS,
        startedAt: host.now().toISOString(),
        succeeded: 0,
        failed: 0,
        active: [],
        pods: [],
        condition: "Running",
      });
      startJobMonitor(host, job.name);
      report.jobs.push(job.name);
    }
  } catch (e) {
    for (const name of [...report.made].reverse()) {
      await removePod(host, name, { force: true }).catch(() => {});
    }
    for (const name of report.jobs) await removeJob(host, name, file).catch(() => {});
    throw e;
  }
  return report;
}

/** Removes every pod and job `file` made (found by its records, so a changed file is no matter). */
export async function downKube(host: Host, file: string): Promise<string[]> {
  const removed: string[] = [];
  for (const st of listJobs(host)) {
    if (st.file === file) removed.push(...await removeJob(host, st.name, file));
  }
  // Side by side, under one hold of the store lock (removePods).
  removed.push(...await removePods(host, podsOfFile(host, file).map((p) => p.name)));
  return removed;
}

/** Starts a job's monitor in its own session; it outlives this command. */
export function startJobMonitor(host: Host, name: string): void {
  const argv = host.selfArgv;
  if (!argv || !host.proc.spawnDetached) {
    throw new TypeError("this host cannot start helper processes (no selfArgv)");
  }
  if (pidLockOwner(monitorLock(host, name)) !== undefined) return;
  host.proc.spawnDetached([
    ...argv,
    "--root",
    host.paths.root,
    "--run-root",
    host.paths.runRoot,
    "__job-monitor",
    name,
  ]);
}

/** How an ended pod of a job went: all app containers exited 0, or not. */
async function outcome(host: Host, name: string): Promise<"running" | "succeeded" | "failed"> {
  let rec: PodRecord;
  try {
    rec = getPod(host, name);
  } catch {
    return "failed";
  }
  const v = await podView(host, rec);
  const app = v.containers.filter((c) => !c.init);
  if (app.some((c) => c.status === "running" || c.status === "created")) return "running";
  return app.every((c) => c.status === "exited" && c.exitCode === 0) ? "succeeded" : "failed";
}

/** The delay before the pod after the `failed`-th failure: 10 s, 20 s, 40 s … at most 6 min. */
export function jobBackoffMs(st: Pick<JobStatus, "backoffSeconds">, failed: number): number {
  return Math.min(st.backoffSeconds * 2 ** Math.max(failed - 1, 0), JOB_BACKOFF_MAX_SECONDS) *
    1000;
}

/**
 * One step of a Job, pure (the Job controller's rules on one host): the pods
 * that `ended` (and how) leave the active list and count as succeeded or
 * failed (a failure delays the next pod); then the job is complete, out of
 * backoffLimit or past its deadline (its active pods are to be stopped), or
 * may start one more pod now. Returns the new status, when the next pod may
 * start, whether to start one, and the pods to stop.
 */
export function foldJob(
  prev: JobStatus,
  ended: Record<string, "succeeded" | "failed">,
  now: number,
  notBefore: number,
): { st: JobStatus; notBefore: number; start: boolean; stop: string[] } {
  const st: JobStatus = structuredClone(prev);
  for (const [pod, how] of Object.entries(ended)) {
    if (!st.active.includes(pod)) continue;
    st.active = st.active.filter((x) => x !== pod);
    if (how === "succeeded") st.succeeded++;
    else {
      st.failed++;
      notBefore = now + jobBackoffMs(st, st.failed);
    }
  }
  if (st.condition !== "Running") return { st, notBefore, start: false, stop: [] };
  const end = (condition: "Complete" | "Failed", reason?: string) => {
    const stop = st.active;
    st.condition = condition;
    if (reason) st.reason = reason;
    st.completedAt = new Date(now).toISOString();
    st.active = [];
    return { st, notBefore, start: false, stop };
  };
  if (st.succeeded >= st.completions) return end("Complete");
  if (st.failed > st.backoffLimit) return end("Failed", "BackoffLimitExceeded");
  if (
    st.activeDeadlineSeconds !== undefined &&
    now - Date.parse(st.startedAt) >= st.activeDeadlineSeconds * 1000
  ) return end("Failed", "DeadlineExceeded");
  const room = Math.min(
    st.parallelism - st.active.length,
    st.completions - st.succeeded - st.active.length,
  );
  return { st, notBefore, start: room > 0 && now >= notBefore, stop: [] };
}

/**
 * The job monitor's loop (run by `rkl __job-monitor NAME`): `job` is the Job
 * as loaded from its file now; if the file no longer holds it as it was
 * played, the job fails with reason FileChanged.
 */
export async function runJobMonitor(
  host: Host,
  name: string,
  job: KubeJob | undefined,
  options: { signal?: AbortSignal; tickMs?: number } = {},
): Promise<void> {
  Deno.mkdirSync(jobsDir(host), { recursive: true, mode: 0o700 });
  let release: () => void;
  try {
    release = takePidLock(
      monitorLock(host, name),
      (pid) => new ConflictError(`job monitor ${pid} runs already`),
    );
  } catch (e) {
    if (e instanceof ConflictError) return;
    throw e;
  }
  try {
    let st = readJob(host, name);
    if (!st || st.condition !== "Running") return;
    if (!job || await jobHash(job, st.network) !== st.hash) {
      st.condition = "Failed";
      st.reason = "FileChanged";
      st.completedAt = host.now().toISOString();
      return writeJob(host, st);
    }
    const hash = await podHash(job.template, st.network);
    let notBefore = 0;
    let ended: Record<string, "succeeded" | "failed"> = {};
    while (!options.signal?.aborted) {
      for (const p of st.active) {
        const o = await outcome(host, p);
        if (o !== "running") ended[p] = o;
      }
      const step = foldJob(st, ended, host.now().getTime(), notBefore);
      ended = {};
      const changed = JSON.stringify(step.st) !== JSON.stringify(st);
      ({ st, notBefore } = step);
      if (changed) writeJob(host, st);
      // What still runs is stopped, as the Job controller deletes its active pods.
      for (const p of step.stop) await stopPod(host, p, 0).catch(() => {});
      if (st.condition !== "Running") break;
      if (!step.start) {
        await host.sleep(options.tickMs ?? 200);
        continue;
      }
      const pod = `${name}-pod-${st.pods.length}`;
      st.pods.push(pod);
      st.active.push(pod);
      writeJob(host, st);
      try {
        await runPod(
          host,
          annotated(job.template, st.file, { kind: "Job", name }, hash, pod),
          { network: st.network },
        );
      } catch {
        // Could not even start (an init container failed, a port is taken): a failed pod.
        if (!host.store.get("pods", pod)) st.pods = st.pods.filter((x) => x !== pod);
        ended[pod] = "failed";
      }
    }
    // ttlSecondsAfterFinished: the finished job and its pods go after that many seconds.
    if (st.condition !== "Running" && st.ttlSecondsAfterFinished !== undefined) {
      const until = host.now().getTime() + st.ttlSecondsAfterFinished * 1000;
      while (!options.signal?.aborted && host.now().getTime() < until) await host.sleep(200);
      if (!options.signal?.aborted) {
        for (const p of st.pods) {
          if (host.store.get("pods", p)) await removePod(host, p, { force: true }).catch(() => {});
        }
        try {
          Deno.removeSync(jobFile(host, name));
        } catch { /* gone */ }
      }
    }
  } finally {
    release();
  }
}

/** Is a job's monitor running? */
export function jobMonitorAlive(host: Pick<Host, "paths">, name: string): boolean {
  return pidLockOwner(monitorLock(host, name)) !== undefined;
}
