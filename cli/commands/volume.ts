/** `rkl volume`: the named volumes (compose volumes and PersistentVolumeClaims). */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { table, write } from "../format.ts";

export function registerVolume(program: Command, ctx: Context): void {
  const v = program.command("volume").description(
    "named volumes: compose volumes and PersistentVolumeClaims",
  );
  v.command("ls").alias("list").description("list named volumes").option(
    "-o, --output <format>",
    "table or json",
    "table",
  ).action(async (o: { output: string }) => {
    const { listVolumes } = await import("../../src/workloads/volumes.ts");
    const list = listVolumes(ctx.host());
    if (o.output === "json") {
      write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    write(table(
      ["NAME", "KIND", "USED BY", "PATH"],
      list.map((x) => [x.name, x.kind, x.users.join(", ") || "-", x.path]),
    ));
  });
  v.command("rm").alias("remove").argument("<names...>").description(
    "remove volumes that no pod or compose project uses (their data goes)",
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
}
