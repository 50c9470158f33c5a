/**
 * The commands a user runs most from files, without the CLI framework:
 * `pod run|create FILE`, `pod rm [-f] NAME`, `kube play FILE` and
 * `kube down FILE`, when their argv is plain. Loading commander costs a
 * command run in-process 25-45 ms on a 2-core host (its imports of node:fs
 * and node:child_process start Deno's Node layer); these run the very
 * functions their commander actions call (cli/commands/kube.ts, pod.ts) and
 * report errors as main() does.
 *
 * Only what this file knows entirely is taken: the global options, then the
 * command, then that command's own flags (each spelled as commander accepts
 * it, `--flag value` or `--flag=value`) and exactly one operand. Anything
 * else (--help, `--`, an unknown flag, a value that looks like a flag, a
 * missing or extra operand) returns undefined before anything is done, and
 * commander parses the command and says what is wrong.
 */
import type { Context } from "./app.ts";
import type { GlobalOptions } from "./host.ts";
import type { PlayOptions } from "./commands/kube.ts";
import type { Host } from "../src/workloads/host.ts";
import { causeChain, RklError } from "../src/errors.ts";
import { served, stderr } from "./io.ts";
import { trace } from "../src/trace.ts";
import { plainGlobals } from "./globals_argv.ts";

export { plainGlobals };

interface Flag {
  /** The option's key, as commander names it. */
  key: string;
  /** Takes a value (else a boolean). */
  value: boolean;
  /** Repeatable: the values collect in a list. */
  list?: true;
}

type Plain = {
  globals: GlobalOptions;
  flags: Record<string, string | string[] | true>;
  arg: string;
};

const PLAY_FLAGS: Record<string, Flag> = {
  "--network": { key: "network", value: true },
  "--configmap": { key: "configmap", value: true, list: true },
  "--job-backoff": { key: "jobBackoff", value: true },
  "--strict-limits": { key: "strictLimits", value: false },
};
const RM_FLAGS: Record<string, Flag> = {
  "-f": { key: "force", value: false },
  "--force": { key: "force", value: false },
};

/** argv as global options, the two command words, the command's flags and one operand. */
export function plainArgv(
  argv: string[],
  commands: Record<string, Record<string, Record<string, Flag>>>,
): (Plain & { group: string; verb: string }) | undefined {
  const g = plainGlobals(argv);
  if (!g) return undefined;
  const { globals, next: i } = g;
  const group = argv[i] === "p" ? "pod" : argv[i];
  const verb = argv[i + 1] === "delete" ? "rm" : argv[i + 1];
  const known = Object.hasOwn(commands, group) && Object.hasOwn(commands[group], verb)
    ? commands[group][verb]
    : undefined;
  if (!known) return undefined;
  const flags: Record<string, string | string[] | true> = {};
  const args: string[] = [];
  for (let j = i + 2; j < argv.length; j++) {
    const a = argv[j];
    if (!a.startsWith("-") || a === "-") {
      args.push(a);
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const f = Object.hasOwn(known, name) ? known[name] : undefined;
    if (!f) return undefined; // --help, --, an unknown flag
    if (!f.value) {
      if (eq > 0) return undefined;
      flags[f.key] = true;
      continue;
    }
    const v = eq > 0 ? a.slice(eq + 1) : argv[++j];
    if (v === undefined || (eq < 0 && v.startsWith("-"))) return undefined;
    if (f.list) flags[f.key] = [...(flags[f.key] as string[] | undefined) ?? [], v];
    else flags[f.key] = v;
  }
  if (args.length !== 1) return undefined;
  return { globals, flags, arg: args[0], group, verb };
}

export const DIRECT_COMMANDS = {
  pod: { run: PLAY_FLAGS, create: PLAY_FLAGS, rm: RM_FLAGS },
  kube: { play: PLAY_FLAGS, down: {} },
};

/** One line (and a hint, a cause chain with --debug) for an error; the exit code. */
export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof RklError) {
    stderr(`rkl: ${e.message}\n`);
    if (e.hint) stderr(`hint: ${e.hint}\n`);
    if (debug) { for (const c of causeChain(e).slice(1)) stderr(`  caused by: ${c}\n`); }
    return e.exitCode;
  }
  stderr(`rkl: ${(e as Error)?.message ?? String(e)}\n`);
  if (debug) stderr(`${(e as Error)?.stack ?? ""}\n`);
  return 1;
}

/** The Context commander's app would give a command, for a short path: the Host built on first use. */
export function directContext(
  globals: GlobalOptions,
  buildHost: (g: GlobalOptions, warn: (m: string) => void) => Host,
): Context {
  let cached: Host | undefined;
  const ctx: Context = {
    host: () => cached ??= buildHost(globals, ctx.warn),
    warn: (m) => stderr(`warning: ${m}\n`),
    options: () => globals,
    exitCode: 0,
  };
  return ctx;
}

/** Runs `argv` when it is one of the plain commands above; undefined to let commander do it. */
export async function runDirect(argv: string[]): Promise<number | undefined> {
  const p = plainArgv(argv, DIRECT_COMMANDS);
  if (!p) return undefined;
  const { buildHost } = await import("./host.ts");
  trace("direct: host's modules");
  if (Deno.uid() === 0) {
    // The runtime's sealed copy, made by a worker thread while the file's modules load
    // (src/oci/sealed.ts prewarmSealed). A runtime not found is reported by the command.
    const { resolveRuntime } = await import("../src/oci/runtime.ts");
    const { prewarmSealed } = await import("../src/oci/sealed.ts");
    try {
      prewarmSealed(resolveRuntime(p.globals.runtime ?? Deno.env.get("RKL_RUNTIME")).binary);
    } catch { /* reported when the runtime is needed */ }
  }
  const ctx = directContext(p.globals, buildHost);
  try {
    const command = `${p.group} ${p.verb}`;
    if (command === "kube down") {
      await (await import("./commands/kube.ts")).downFile(ctx, p.arg);
    } else if (command === "pod rm") {
      // As removePodCommand (commands/pod.ts), through remove.ts's modules alone: the
      // pod command's module loads the create path too, 8-10 ms more.
      const [{ removePod }, { write }] = await Promise.all([
        import("../src/workloads/pod/remove.ts"),
        import("./format.ts"),
      ]);
      await removePod(ctx.host(), p.arg, { force: p.flags.force === true, early: served() });
      write(`${p.arg}\n`);
    } else {
      const o: PlayOptions = {
        network: (p.flags.network as string | undefined) ?? "rkl0",
        configmap: (p.flags.configmap as string[] | undefined) ?? [],
        jobBackoff: p.flags.jobBackoff as string | undefined,
        strictLimits: p.flags.strictLimits === true,
      };
      const { playFile } = await import("./commands/kube.ts");
      await playFile(ctx, p.arg, o, {
        start: p.verb !== "create",
        replace: p.group === "kube",
      });
    }
    return ctx.exitCode;
  } catch (e) {
    return reportError(e, !!p.globals.debug || Deno.env.get("RKL_DEBUG") === "1");
  }
}
