/** `rkl gc`: remove what no record owns, finish interrupted creates. */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

export function registerGc(program: Command, ctx: Context): void {
  program.command("gc").description(
    "remove what no record owns (netns, mounts, cgroups, leases, nat rules, runtime state, files) and roll back interrupted creates",
  )
    .option("--dry-run", "only print what would be done")
    .action(async (o: { dryRun?: boolean }) => {
      const { gc } = await import("../../src/workloads/gc.ts");
      const r = await gc(ctx.host(), { dryRun: o.dryRun });
      if (o.dryRun) {
        for (const f of r.findings) write(`would clean ${f.kind} ${f.name}: ${f.why}\n`);
        if (r.findings.length === 0) write("nothing to clean\n");
        return;
      }
      for (const f of r.findings) write(`${f.kind} ${f.name}: ${f.why}\n`);
      for (const d of r.done) write(`  ${d}\n`);
      if (r.findings.length === 0 && r.done.length === 0) write("nothing to clean\n");
    });
}

/** `rkl __health-monitor`: the compose healthcheck monitor (started by rkl itself). */
export function registerHealthMonitor(program: Command, ctx: Context): void {
  program.command("__health-monitor", { hidden: true }).action(async () => {
    const { runHealthMonitor } = await import("../../src/workloads/health.ts");
    const stop = new AbortController();
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => stop.abort());
    }
    await runHealthMonitor(ctx.host(), { signal: stop.signal });
    Deno.exit(0);
  });
}

/**
 * `rkl __pod-probes`: the run root's pod probe monitor (started by rkl itself
 * when a pod with probes starts). A NAME, as older rkl gave it, is ignored:
 * the monitor watches every pod of the run root.
 */
export function registerPodProbes(program: Command, ctx: Context): void {
  program.command("__pod-probes", { hidden: true }).argument("[name]").action(async () => {
    const { runProbeMonitors } = await import("../../src/workloads/pod/probe_monitor.ts");
    const stop = new AbortController();
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => stop.abort());
    }
    await runProbeMonitors(ctx.host(), {
      signal: stop.signal,
      wake: (fn) => Deno.addSignalListener("SIGUSR1", fn),
    });
    Deno.exit(0);
  });
}
