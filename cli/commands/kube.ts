/**
 * `rkl kube play FILE` / `rkl kube down FILE` (podman's spelling) and
 * `rkl kube status`: a Kubernetes file's Pods, Deployments, DaemonSets, Jobs
 * and Services on this host. `rkl pod run|create FILE` runs the same code.
 */
import type { Command } from "commander";
import type { LoadedKube } from "../../src/spec/kinds.ts";
import type { Context } from "../app.ts";
import { ago, table, write } from "../format.ts";
import { networkOption, parseSeconds, readSpecFile } from "./_shared.ts";
import { absolute, served } from "../io.ts";
import { installCancelHandlers } from "../../src/cancel.ts";
import { trace } from "../../src/trace.ts";

/** Loads every kind of a Kubernetes file; prints its warnings (each once) through `warn`. */
export async function loadKubeFile(
  file: string,
  warn: (m: string) => void,
  configmaps: string[] = [],
): Promise<LoadedKube> {
  const { text, baseDir } = readSpecFile(file);
  const [{ loadKube }, { loadObjects }, { formatWarning }, { emptyObjects }] = await Promise.all([
    import("../../src/spec/kinds.ts"),
    import("../../src/spec/pod.ts"),
    import("../../src/spec/source.ts"),
    import("../../src/spec/objects.ts"),
  ]);
  trace("kube: spec modules loaded");
  const objects = emptyObjects();
  for (const f of configmaps) loadObjects(readSpecFile(f).text, f, objects);
  const kube = loadKube(text, file, { baseDir, objects });
  trace("kube: parsed");
  // A Deployment's replicas share one template: its warnings are printed once.
  const seen = new Set<string>();
  const say = (m: string) => {
    if (!seen.has(m)) warn(m);
    seen.add(m);
  };
  for (const w of kube.warnings) say(formatWarning(w));
  const pods = [...kube.pods, ...kube.jobs.map((j) => j.template)];
  for (const p of pods) for (const w of p.warnings) say(formatWarning(w));
  // Probes are run by the pod's probe monitor (workloads/pod/probe_monitor.ts) once it starts.
  return kube;
}

export interface PlayOptions {
  network?: string;
  configmap: string[];
  jobBackoff?: string;
  /** Rootless: refuse limits that cannot apply instead of warning (`pod run --strict-limits`). */
  strictLimits?: boolean;
}

/**
 * `kube play` (start, replace) / `pod run` (start) and `pod create`: prints what was made.
 * `pod run|create` refuse a name in use, as before and as `podman kube play` without --replace.
 */
export async function playFile(
  ctx: Context,
  file: string,
  o: PlayOptions,
  mode: { start: boolean; replace: boolean },
): Promise<void> {
  const host = ctx.host();
  if (o.strictLimits && host.rootless) host.rootless.strictLimits = true;
  const kube = await loadKubeFile(file, ctx.warn, o.configmap);
  const { playKube } = await import("../../src/workloads/kube.ts");
  const uninstall = served() ? () => {} : installCancelHandlers();
  try {
    const r = await playKube(host, kube, {
      file: absolute(file),
      network: networkOption(o.network),
      ...mode,
      configmaps: o.configmap.map((f) => absolute(f)),
      jobBackoffSeconds: parseSeconds("--job-backoff", o.jobBackoff),
    });
    for (const n of r.removed) ctx.warn(`removed ${n}: ${file} no longer makes it as it was`);
    write(r.made.map((n) => `${n}\n`).join("") + r.jobs.map((n) => `job/${n}\n`).join(""));
    if (r.kept.length > 0) {
      ctx.warn(`unchanged, left running: ${r.kept.join(", ")}`);
    }
  } finally {
    uninstall();
  }
}

/** `kube down FILE`: removes every pod and job FILE made; prints their names. */
export async function downFile(ctx: Context, file: string): Promise<void> {
  const { downKube } = await import("../../src/workloads/kube.ts");
  const removed = await downKube(ctx.host(), absolute(file));
  write(removed.map((n) => `${n}\n`).join(""));
}

/** `--configmap FILE`, repeatable: ConfigMaps, Secrets and claims the pods refer to. */
const CONFIGMAP_OPTION = [
  "--configmap <file>",
  "YAML with ConfigMap/Secret documents the pods use (repeatable)",
  (v: string, prev: string[]) => [...prev, v],
  [] as string[],
] as const;

export const JOB_BACKOFF_OPTION = [
  "--job-backoff <seconds>",
  "a Job's first retry delay, doubled after each failure up to 6 minutes (default 10)",
] as const;

export function registerKube(program: Command, ctx: Context): void {
  const k = program.command("kube").description(
    "play and tear down Kubernetes files: Pods, Deployments, DaemonSets, Jobs, Services",
  );
  k.command("play").argument("<file>", "Kubernetes YAML (one or more documents)")
    .description(
      "make what FILE describes; played again, replace what changed and keep the rest",
    )
    .option("--network <name>", "CNI network, or 'none' for loopback only", "rkl0")
    .option(...CONFIGMAP_OPTION)
    .option(...JOB_BACKOFF_OPTION)
    .option("--strict-limits", "rootless: refuse limits that cannot apply instead of warning")
    .action((file: string, o: PlayOptions) =>
      playFile(ctx, file, o, { start: true, replace: true })
    );

  k.command("down").argument("<file>", "the file given to play (it may have changed since)")
    .description("remove every pod and job FILE made")
    .action((file: string) => downFile(ctx, file));

  k.command("status").argument("[file]", "only what this file made")
    .description("the jobs and pods Kubernetes files made: owner, phase, a job's completions")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (file: string | undefined, o: { output: string }) => {
      const host = ctx.host();
      const kube = await import("../../src/workloads/kube.ts");
      const { podView } = await import("../../src/workloads/pod.ts");
      const abs = file ? absolute(file) : undefined;
      const jobs = kube.listJobs(host).filter((j) => !abs || j.file === abs);
      const recs = host.store.list<import("../../src/workloads/pod.ts").PodRecord>("pods")
        .filter((r) => {
          const f = r.annotations?.[kube.FILE_ANNOTATION];
          return f !== undefined && (!abs || f === abs);
        });
      const pods = await Promise.all(recs.map(async (r) => ({
        ...await podView(host, r),
        annotations: r.annotations,
      })));
      if (o.output === "json") {
        return write(JSON.stringify({ jobs, pods }, null, 2) + "\n");
      }
      if (jobs.length > 0) {
        write(table(
          ["JOB", "STATUS", "COMPLETIONS", "FAILED", "ACTIVE", "AGE", "MONITOR"],
          jobs.map((j) => [
            j.name,
            j.condition + (j.reason ? ` (${j.reason})` : ""),
            `${j.succeeded}/${j.completions}`,
            String(j.failed),
            String(j.active.length),
            ago(j.startedAt),
            kube.jobMonitorAlive(host, j.name) ? "running" : "-",
          ]),
        ));
      }
      write(table(
        ["POD", "OWNER", "PHASE", "IP", "FILE"],
        pods.map((p) => [
          p.name,
          p.annotations?.[kube.OWNER_ANNOTATION] ?? "-",
          p.phase,
          p.ip ?? "-",
          p.annotations?.[kube.FILE_ANNOTATION] ?? "-",
        ]),
      ));
    });
}

/** `rkl __job-monitor NAME`: started by kube play, runs one Job to its end. */
export function registerJobMonitor(program: Command, ctx: Context): void {
  program.command("__job-monitor", { hidden: true }).argument("<name>").action(
    async (name: string) => {
      const host = ctx.host();
      const kube = await import("../../src/workloads/kube.ts");
      const st = kube.readJob(host, name);
      if (!st) return;
      const stop = new AbortController();
      for (const sig of ["SIGTERM", "SIGINT"] as const) {
        Deno.addSignalListener(sig, () => stop.abort());
      }
      let job;
      try {
        job = (await loadKubeFile(st.file, () => {}, st.configmaps)).jobs.find((j) =>
          j.name === name
        );
      } catch { /* the file is gone or broken: FileChanged */ }
      await kube.runJobMonitor(host, name, job, { signal: stop.signal });
      Deno.exit(0);
    },
  );
}
