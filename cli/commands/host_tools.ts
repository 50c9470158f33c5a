/** `rkl doctor`, `rkl version` and `rkl completion`: about rkl and this host. */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { write } from "../format.ts";
import { VERSION } from "../version.ts";
import { COMMIT } from "../build_info.ts";
import { UsageError } from "../../src/errors.ts";
import { rootlessDoctor } from "../rootless.ts";

export function registerHostTools(program: Command, ctx: Context): void {
  program.command("doctor").description(
    "check what rkl needs on this host, and what a Kubernetes node still lacks; print what to install",
  ).action(async () => {
    const { hostChecks, formatCheck, nodeChecks, formatNodeCheck } = await import(
      "../../src/doctor.ts"
    );
    const { nodePaths } = await import("../../src/node/install.ts");
    // A user without root: what rootless rkl needs (cli/rootless.ts).
    if (Deno.uid() !== 0) return void (ctx.exitCode = await rootlessDoctor(formatCheck));
    const checks = hostChecks();
    for (const c of checks) write(`${formatCheck(c)}\n`);
    const missing = checks.filter((c) => c.required && !c.ok).length;
    write(missing ? `${missing} required part(s) missing\n` : "this host can run rkl\n");
    // A Kubernetes node needs more; what it lacks is said, and is no failure of rkl's.
    const paths = nodePaths(Deno.env.get("RKL_INSTALL_ROOT"));
    const node = nodeChecks(undefined, { config: paths.config, unit: paths.unit });
    write("as a Kubernetes node (kubelet on rkl's CRI):\n");
    for (const c of node) write(`${formatNodeCheck(c)}\n`);
    const lacks = node.filter((c) => !c.ok).map((c) => c.name);
    write(
      lacks.length
        ? `a Kubernetes node still lacks: ${lacks.join(", ")}\n`
        : "this host has what a Kubernetes node needs\n",
    );
    if (missing) ctx.exitCode = 1;
  });

  program.command("version").description(
    "rkl's version and commit, Deno's, and the runtime, conmon and CNI plugins found",
  ).option("-o, --output <format>", "text or json", "text").action(
    async (o: { output: string }) => {
      const { componentVersions } = await import("../../src/versions.ts");
      const v = await componentVersions(VERSION, COMMIT);
      if (o.output === "json") return write(`${JSON.stringify(v, null, 2)}\n`);
      const rows: [string, string][] = [
        ["rkl", `${v.rkl.version} (commit ${v.rkl.commit})`],
        ["deno", `${v.deno.deno} (v8 ${v.deno.v8}, typescript ${v.deno.typescript})`],
        ...v.runtimes.map((r): [string, string] => [r.name, `${r.version} (${r.path})`]),
        ["conmon", v.conmon ? `${v.conmon.version} (${v.conmon.path})` : "not found"],
        ...v.cni.map((p): [string, string] => [
          `cni ${p.name}`,
          `${p.version}; protocol ${p.protocols} (${p.path})`,
        ]),
      ];
      write(rows.map(([k, val]) => `${k.padEnd(16)}${val}\n`).join(""));
    },
  );

  program.command("completion").argument("<shell>", "bash, zsh or fish").description(
    "print a completion script: commands, flags, and names of containers, pods and projects",
  ).action(async (shell: string) => {
    const { completionScript } = await import("../completion.ts");
    if (!["bash", "zsh", "fish"].includes(shell)) {
      throw new UsageError(`completion: ${JSON.stringify(shell)} is not bash, zsh or fish`);
    }
    write(completionScript(program, shell as "bash" | "zsh" | "fish"));
  });

  // What the completion scripts call for names (hidden).
  program.command("__complete", { hidden: true }).argument("<kind>").action(
    (kind: string) => {
      const host = ctx.host();
      const store = { containers: "containers", pods: "pods", projects: "compose" } as const;
      const k = store[kind as keyof typeof store];
      if (!k) return;
      try {
        for (const r of host.store.list(k)) write(`${r.name}\n`);
      } catch { /* no state yet */ }
    },
  );
}
