/**
 * `rkl volume`: the named volumes, docker's (`volume create`, `run -v
 * NAME:/dir`), compose's and PersistentVolumeClaims'.
 */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { table, write } from "../format.ts";
import { UsageError } from "../../src/errors.ts";
import { parseLabels } from "./docker_spec.ts";
import { collect } from "./docker/shared.ts";

export function registerVolume(program: Command, ctx: Context): void {
  const v = program.command("volume").description(
    "named volumes: docker's (volume create, run -v NAME:/dir), compose's and PersistentVolumeClaims'",
  );
  v.command("create").argument("[name]", "its name (a random one when left out, as docker's)")
    .option("-l, --label <key=value>", "a label (repeatable)", collect, [])
    .description("make a named volume (an existing one is kept, as docker keeps it)")
    .action(async (name: string | undefined, o: { label: string[] }) => {
      const { ensureVolume } = await import("../../src/workloads/volumes.ts");
      const { randomHexId } = await import("../../src/base/hex.ts");
      const labels = parseLabels(o.label);
      const host = ctx.host();
      const n = name ?? randomHexId();
      await host.store.withLock(() => Promise.resolve(ensureVolume(host, n, labels)));
      write(`${n}\n`);
    });
  v.command("ls").alias("list").description("list named volumes").option(
    "-o, --output <format>",
    "table or json",
    "table",
  ).option("-q, --quiet", "names only").action(async (o: { output: string; quiet?: boolean }) => {
    const { listVolumes } = await import("../../src/workloads/volumes.ts");
    const list = listVolumes(ctx.host());
    if (o.quiet) {
      write(list.map((x) => `${x.name}\n`).join(""));
      return;
    }
    if (o.output === "json") {
      write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    write(table(
      ["NAME", "KIND", "USED BY", "PATH"],
      list.map((x) => [x.name, x.kind, x.users.join(", ") || "-", x.path]),
    ));
  });
  v.command("inspect").argument("<names...>").description(
    "show volumes as docker's volume inspect does (JSON)",
  ).action(async (names: string[]) => {
    const { inspectVolume } = await import("../../src/workloads/volumes.ts");
    const host = ctx.host();
    write(`${JSON.stringify(names.map((n) => inspectVolume(host, n)), null, 4)}\n`);
  });
  v.command("rm").alias("remove").argument("<names...>").description(
    "remove volumes that no container, pod or compose project uses (their data goes)",
  ).action(async (names: string[]) => {
    const { removeVolume } = await import("../../src/workloads/volumes.ts");
    const host = ctx.host();
    await host.store.withLock(() => {
      for (const n of names) {
        removeVolume(host, n);
        write(`${n}\n`);
      }
      return Promise.resolve();
    });
  });
  v.command("prune").option("-f, --force", "do not ask").description(
    "remove every volume no container, pod or compose project uses (their data goes)",
  ).action(async (o: { force?: boolean }) => {
    if (!o.force) {
      if (!Deno.stdin.isTerminal()) {
        throw new UsageError("volume prune removes data: confirm with -f");
      }
      const answer = prompt(
        "WARNING! This will remove all volumes not used by at least one container. Are you sure you want to continue? [y/N]",
      );
      if (!/^y(es)?$/i.test(answer?.trim() ?? "")) return;
    }
    const { pruneVolumes } = await import("../../src/workloads/volumes.ts");
    const host = ctx.host();
    const gone = await host.store.withLock(() => Promise.resolve(pruneVolumes(host)));
    write(gone.length > 0 ? `Deleted Volumes:\n${gone.map((n) => `${n}\n`).join("")}` : "");
  });
}
