/** The CLI: commander wiring, the real Host, error → message + exit code. */
import { Command, CommanderError } from "commander";
import { causeChain, RklError } from "../src/errors.ts";
import type { Host } from "../src/workloads/host.ts";
import { registerContainer } from "./commands/container.ts";
import { registerPod } from "./commands/pod.ts";
import { registerCompose } from "./commands/compose.ts";
import { registerDaemon } from "./commands/daemon.ts";
import { registerBundle } from "./commands/bundle.ts";
import { registerGc, registerHealthMonitor } from "./commands/gc.ts";
import { registerGenerate } from "./commands/generate.ts";
import { registerHostTools } from "./commands/host_tools.ts";
import { registerVolume } from "./commands/volume.ts";
import { registerImage } from "./commands/image.ts";

import { buildHost, type GlobalOptions } from "./host.ts";
import { VERSION } from "./version.ts";

export interface Context {
  /** The Host, built on first use (commands like --help never need one). */
  host(): Host;
  warn(message: string): void;
  /** The global flags (--root, --run-root, --runtime), for commands that need no Host. */
  options(): GlobalOptions;
  exitCode: number;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command("rkl")
    .description("run containers, Kubernetes pods and compose apps on one Linux host")
    .version(`rkl ${VERSION}`, "-V, --version")
    .option("--root <dir>", "persistent state (env RKL_ROOT)", undefined)
    .option("--run-root <dir>", "volatile state (env RKL_RUN_ROOT)", undefined)
    .option("--runtime <name>", "OCI runtime: youki, runc, crun or a path (env RKL_RUNTIME)")
    .option("--debug", "print the cause chain of errors")
    .showHelpAfterError()
    // Options belong to the command they follow: `compose -f FILE logs -f` means two things.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });

  let cached: Host | undefined;
  const ctx: Context = {
    host: () => cached ??= buildHost(program.opts<GlobalOptions>(), ctx.warn),
    warn: (m) => console.error(`warning: ${m}`),
    options: () => program.opts<GlobalOptions>(),
    exitCode: 0,
  };
  registerContainer(program, ctx);
  registerPod(program, ctx);
  registerCompose(program, ctx);
  registerDaemon(program, ctx);
  registerBundle(program, ctx);
  registerGc(program, ctx);
  registerVolume(program, ctx);
  registerImage(program, ctx);
  registerHealthMonitor(program, ctx);
  registerGenerate(program, ctx);
  registerHostTools(program, ctx);
  for (const sub of program.commands) sub.exitOverride();

  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version print and exit 0; usage errors are bad input (2).
      return e.exitCode === 0 ? 0 : 2;
    }
    const debug = program.opts<GlobalOptions>().debug || Deno.env.get("RKL_DEBUG") === "1";
    if (e instanceof RklError) {
      console.error(`rkl: ${e.message}`);
      if (e.hint) console.error(`hint: ${e.hint}`);
      if (debug) { for (const c of causeChain(e).slice(1)) console.error(`  caused by: ${c}`); }
      return e.exitCode;
    }
    console.error(`rkl: ${(e as Error)?.message ?? String(e)}`);
    if (debug) console.error((e as Error)?.stack ?? "");
    return 1;
  }
}
