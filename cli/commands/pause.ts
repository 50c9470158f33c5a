/** `rkl container pause|unpause NAME...`: freeze and thaw through the cgroup freezer. */
import type { Command } from "commander";
import { pauseContainer, unpauseContainer } from "../../src/workloads/pause.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

export function registerPause(group: Command, ctx: Context): void {
  group.command("pause").argument("<names...>").description(
    "freeze every process of the containers (cgroup freezer); unpause resumes them",
  ).action(async (names: string[]) => {
    for (const n of names) {
      await pauseContainer(ctx.host(), n);
      write(`${n}\n`);
    }
  });
  group.command("unpause").argument("<names...>").description("thaw paused containers")
    .action(async (names: string[]) => {
      for (const n of names) {
        await unpauseContainer(ctx.host(), n);
        write(`${n}\n`);
      }
    });
}
