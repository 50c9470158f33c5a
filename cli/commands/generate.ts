/** `rkl generate kube`: Kubernetes YAML for what runs. */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

/** `rkl generate kube NAME…`: Pod YAML for running pods, containers or compose projects. */
export function registerGenerate(program: Command, ctx: Context): void {
  const g = program.command("generate").description("write Kubernetes YAML for what runs");
  g.command("kube").argument("<names...>", "pods, containers or compose projects").description(
    "Pod YAML (with ConfigMaps for file volumes) that `rkl pod run` recreates them from",
  ).action(async (names: string[]) => {
    const [{ generateKube }, { stringify }] = await Promise.all([
      import("../../src/workloads/generate_kube.ts"),
      import("yaml"),
    ]);
    const docs = generateKube(ctx.host(), names);
    write(docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n"));
  });
}
