/** `rkl pod` (alias `p`): Kubernetes pods. */
import type { Command } from "commander";
import type { LoadedPod } from "../../src/spec/pod.ts";
import { formatBytes } from "../../src/spec/quantity.ts";
import {
  getPod,
  listPods,
  podMember,
  type PodView,
  podView,
  removePod,
  startPod,
  stopPod,
} from "../../src/workloads/pod.ts";
import type { Context } from "../app.ts";
import { ago, keyValues, table, write } from "../format.ts";
import { served } from "../io.ts";
import { execIn, parseSeconds, printLogs } from "./_shared.ts";
import { JOB_BACKOFF_OPTION, type PlayOptions } from "./kube.ts";

/**
 * Loads the pods of a manifest (yaml + zod loaded only here): its Pods, the
 * pods of its Deployments and DaemonSets, and its Jobs' templates (for validate).
 */
export async function loadPodFile(
  file: string,
  warn: (m: string) => void,
  configmaps: string[] = [],
): Promise<LoadedPod[]> {
  const { loadKubeFile } = await import("./kube.ts");
  const kube = await loadKubeFile(file, warn, configmaps);
  return [...kube.pods, ...kube.jobs.map((j) => j.template)];
}

function ready(v: PodView): string {
  const app = v.containers.filter((c) => !c.init);
  return `${app.filter((c) => c.status === "running").length}/${app.length}`;
}

function printPod(v: PodView): void {
  const lim = v.limits;
  const lines: [string, string][] = [
    ["Name", v.name],
    ["Namespace", v.namespace],
    ["Phase", v.phase],
    ["IP", v.hostNetwork ? "host network" : v.ip ?? "-"],
    [
      "Ports",
      v.ports.map((p) => `${p.hostIP ?? "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${p.protocol}`)
        .join(", ") || "-",
    ],
    ["Cgroup", v.cgroup],
    ["Pod CPU", lim.cpuQuota ? `${lim.cpuQuota}/${lim.cpuPeriod} µs` : "unlimited"],
    ["Pod memory", lim.memoryLimit ? formatBytes(lim.memoryLimit) : "unlimited"],
    ["Created", v.created],
    ["Started", v.started ?? "-"],
    ["Runtime", v.runtime],
  ];
  write(keyValues(lines, 12));
  write("Containers:\n");
  write(table(
    ["  NAME", "STATUS", "PID", "EXIT", "REASON", "RESTARTS", "CPU", "MEMORY", "READY"],
    v.containers.map((c) => [
      `  ${c.name}${c.init ? " (init)" : ""}`,
      c.status,
      c.pid ? String(c.pid) : "-",
      c.exitCode === null ? "-" : String(c.exitCode),
      c.reason ?? "-",
      String(c.restarts),
      c.limits.cpuQuota ? `${c.limits.cpuQuota / 100}m` : "-",
      c.limits.memoryLimit ? formatBytes(c.limits.memoryLimit) : "-",
      c.ready ? "yes" : "no",
    ]),
  ));
}

/** `pod rm [-f] NAME`: removes the pod; prints its name. */
export async function removePodCommand(
  ctx: Context,
  name: string,
  o: { force?: boolean },
): Promise<void> {
  // Served, it answers once the pod's containers are gone (lifecycle.ts, removePod).
  await removePod(ctx.host(), name, { force: o.force, early: served() });
  write(`${name}\n`);
}

/** `--configmap FILE`, repeatable: ConfigMaps, Secrets and claims the pods refer to. */
const CONFIGMAP_OPTION = [
  "--configmap <file>",
  "YAML with ConfigMap/Secret documents the pods use (repeatable)",
  (v: string, prev: string[]) => [...prev, v],
  [] as string[],
] as const;

export function registerPod(program: Command, ctx: Context): void {
  const p = program.command("pod").alias("p").description("run and manage Kubernetes pods")
    .enablePositionalOptions();

  for (const verb of ["run", "create"] as const) {
    p.command(verb).argument("<file>", "Pod YAML (one or more documents)")
      .description(
        verb === "run"
          ? "create and start the pods in FILE"
          : "create the pods in FILE without starting them",
      )
      .option("--network <name>", "CNI network, or 'none' for loopback only", "rkl0")
      .option(...CONFIGMAP_OPTION)
      .option(...JOB_BACKOFF_OPTION)
      .option("--strict-limits", "rootless: refuse limits that cannot apply instead of warning")
      // The same code as `rkl kube play` (all or nothing), but a name in use is refused.
      .action(async (file: string, o: PlayOptions) => {
        const { playFile } = await import("./kube.ts");
        await playFile(ctx, file, o, { start: verb === "run", replace: false });
      });
  }

  p.command("validate").argument("<file>", "Pod YAML (one or more documents)").description(
    "load, check and plan every pod in FILE without creating anything",
  )
    .option(...CONFIGMAP_OPTION)
    .action(async (file: string, o: { configmap: string[] }) => {
      const { validatePods } = await import("../validate.ts");
      write(await validatePods(file, ctx, o.configmap));
    });

  p.command("start").argument("<name>").description("start a created pod").action(
    async (name: string) => {
      write(`${(await startPod(ctx.host(), name)).name}\n`);
    },
  );

  p.command("stop").argument("<name>").description(
    "stop every container (grace: -t or terminationGracePeriodSeconds)",
  )
    .option("-t, --time <seconds>", "grace period")
    .action(async (name: string, o: { time?: string }) => {
      write(`${(await stopPod(ctx.host(), name, parseSeconds("--time", o.time))).name}\n`);
    });

  p.command("rm").alias("delete").argument("<name>").description(
    "remove a pod and everything it holds",
  )
    .option("-f, --force", "remove even when running")
    .action((name: string, o: { force?: boolean }) => removePodCommand(ctx, name, o));

  p.command("list").alias("ls").description("list pods").option(
    "-o, --output <format>",
    "table or json",
    "table",
  )
    .option("-q, --quiet", "names only")
    .action(async (o: { output: string; quiet?: boolean }) => {
      const host = ctx.host();
      const views = await listPods(host);
      const damaged = host.store.damaged("pods");
      if (o.output === "json") {
        const bad = damaged.map((d) => ({ name: d.name, phase: "Unknown", damaged: d.reason }));
        return write(JSON.stringify([...views, ...bad], null, 2) + "\n");
      }
      if (o.quiet) return write([...views, ...damaged].map((v) => `${v.name}\n`).join(""));
      write(table(
        ["NAME", "READY", "PHASE", "IP", "RESTARTS", "CREATED", "SOURCE"],
        views.map((v) => [
          v.name,
          ready(v),
          v.phase,
          v.hostNetwork ? "host" : v.ip ?? "-",
          String(v.containers.reduce((a, c) => a + c.restarts, 0)),
          ago(v.created),
          v.static?.file ?? (v.source ? `${v.source.kind} ${v.source.name}` : "-"),
        ]).concat(
          damaged.map((d) => [d.name, "-", `Unknown (damaged: ${d.reason})`, "-", "-", "-", "-"]),
        ),
      ));
    });

  p.command("state").alias("inspect").argument("<name>").description(
    "show a pod and its containers",
  )
    .option("-o, --output <format>", "text or json", "text")
    .action(async (name: string, o: { output: string }) => {
      const host = ctx.host();
      const v = await podView(host, getPod(host, name), { exact: true });
      if (o.output === "json") write(JSON.stringify(v, null, 2) + "\n");
      else printPod(v);
    });

  p.command("exec").argument("<pod>").argument("<container>").argument("<command...>")
    .description("run a command in a pod's container")
    .option("-i, --interactive", "keep stdin open").option("-t, --tty", "allocate a terminal")
    .passThroughOptions()
    .action(
      async (
        pod: string,
        container: string,
        command: string[],
        o: { interactive?: boolean; tty?: boolean },
      ) => {
        const host = ctx.host();
        ctx.exitCode = await execIn(host, podMember(host, pod, container), command, o);
      },
    );

  p.command("logs").argument("<pod>").argument("[container]").description(
    "print a pod container's output",
  )
    .option("-f, --follow", "keep printing until the container exits")
    .option("--tail <n>", "only the last n lines")
    .option("--timestamps", "show each line's time")
    .action(
      async (
        pod: string,
        container: string | undefined,
        o: { follow?: boolean; tail?: string; timestamps?: boolean },
      ) => {
        const host = ctx.host();
        await printLogs(host, podMember(host, pod, container), o);
      },
    );
}
