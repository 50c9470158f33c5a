/** `rkl bundle build KIND DIR`: the bundle recipes, usable from a copied binary. */
import type { Command } from "commander";
import { UsageError } from "../../src/errors.ts";
import { buildBundle, BUNDLE_KINDS, type BundleKind } from "../../src/workloads/bundles.ts";
import { realFs } from "../../src/sys/fs.ts";
import { DenoCommandRunner } from "../../src/sys/command.ts";
import type { Context } from "../app.ts";
import { write } from "../format.ts";

export function registerBundle(program: Command, _ctx: Context): void {
  const b = program.command("bundle").description(
    "OCI bundles rkl can build from the host's packages",
  );
  b.command("build").argument("<kind>", BUNDLE_KINDS.join(" | ")).argument("<dir>")
    .description("build a bundle: pause (catatonit -P) or busybox")
    .action(async (kind: string, dir: string) => {
      if (!(BUNDLE_KINDS as readonly string[]).includes(kind)) {
        throw new UsageError(
          `bundle kind ${JSON.stringify(kind)} must be one of ${BUNDLE_KINDS.join(", ")}`,
        );
      }
      // No Host: building a bundle needs neither root nor conmon.
      await buildBundle({ fs: realFs, cmd: new DenoCommandRunner() }, kind as BundleKind, dir);
      write(`${dir}\n`);
    });
}
