/** images, pull and rmi: aliases of `rkl image ls`, `pull` and `rm`. */
import type { Command } from "commander";
import type { Context } from "../../app.ts";
import { UsageError } from "../../../src/errors.ts";
import { write } from "../../format.ts";
import { stderr } from "../../io.ts";
import type { Verb } from "./shared.ts";

/** images, pull, rmi, by name. */
export const IMAGE_VERBS: Record<string, Verb> = {
  images(program: Command, ctx: Context): void {
    program.command("images").description("list images (rkl image ls)")
      .option("-a, --all", "also images without a tag")
      .option("-q, --quiet", "ids only")
      .option("--format <format>", "json")
      .action(async (o: { all?: boolean; quiet?: boolean; format?: string }) => {
        if (o.quiet) {
          const { store } = ctx.host().images!;
          const ids = store.listImages().filter((r) => o.all || store.tagsOf(r.id).length > 0)
            .map((r) => r.id.slice(7, 19));
          write([...new Set(ids)].map((i) => `${i}\n`).join(""));
          return;
        }
        if (o.format !== undefined && o.format !== "json") {
          throw new UsageError("images --format: only json is supported");
        }
        await delegate(ctx, [
          "image",
          "ls",
          ...(o.all ? ["-a"] : []),
          ...(o.format ? ["-o", "json"] : []),
        ]);
      });
  },
  pull(program: Command, ctx: Context): void {
    program.command("pull").argument("<reference>").description("pull an image (rkl image pull)")
      .option("-q, --quiet", "print only the image id")
      .option("--platform <os/arch>", "platform of a multi-arch image")
      .action(async (ref: string, o: { quiet?: boolean; platform?: string }) => {
        await delegate(ctx, [
          "image",
          "pull",
          ...(o.quiet ? ["-q"] : []),
          ...(o.platform ? ["--platform", o.platform] : []),
          ref,
        ]);
      });
  },
  rmi(program: Command, ctx: Context): void {
    program.command("rmi").argument("<images...>").description("remove images (rkl image rm)")
      .option("-f, --force", "remove even while containers use it")
      .action(async (list: string[], o: { force?: boolean }) => {
        await delegate(ctx, ["image", "rm", ...(o.force ? ["-f"] : []), ...list]);
      });
  },
};

/** Runs an `image` subcommand as it is defined there (the top-level name is an alias). */
async function delegate(ctx: Context, argv: string[]): Promise<void> {
  const [{ Command }, { registerImage }] = await Promise.all([
    import("commander"),
    import("../image.ts"),
  ]);
  const p = new Command("rkl").exitOverride().configureOutput({
    writeErr: stderr,
    writeOut: write,
  });
  registerImage(p, ctx);
  for (const sub of p.commands) {
    sub.exitOverride();
    for (const s of sub.commands) s.exitOverride();
  }
  await p.parseAsync(argv, { from: "user" });
}
