/**
 * `rkl daemon` (and `rkl pod daemon`) without the CLI framework, when its
 * argv is plain. The daemon runs for days: commander and the CLI's wiring
 * were some 2.5-3 MB of its RSS (measured with the daemon's V8 flags), for
 * parsing one command line. This runs the very function commander's action
 * calls (cli/commands/daemon.ts runDaemonCommand) and reports errors as
 * main() does.
 *
 * Only what this file knows entirely is taken: the global options, then the
 * command, then the daemon's own flags (`--flag value` or `--flag=value`,
 * as commander takes them). Anything else (--help, a subcommand such as
 * `install` or `status`, an unknown flag, a value that looks like a flag, an
 * operand) returns undefined before anything is done, and commander parses
 * the command and says what is wrong.
 */
import type { GlobalOptions } from "./host.ts";
import type { DaemonRunOptions } from "./commands/daemon.ts";
import { directContext, reportError } from "./direct.ts";
import { plainGlobals } from "./globals_argv.ts";

const VALUE_FLAGS: Record<string, keyof DaemonRunOptions> = {
  "--manifests": "manifests",
  "--network": "network",
  "--relist": "relist",
  "--backoff": "backoff",
  "--backoff-max": "backoffMax",
  "--cri-socket": "criSocket",
  "--pause-image": "pauseImage",
  "--runtime-handlers": "runtimeHandlers",
  "--metrics": "metrics",
};
const SWITCHES: Record<string, [keyof DaemonRunOptions, boolean]> = {
  "--no-cri": ["cri", false],
  "--no-cli": ["cli", false],
  "--metrics-allow-remote": ["metricsAllowRemote", true],
};

/** argv as global options and the daemon's flags; undefined when not plain. */
export function plainDaemonArgv(
  argv: string[],
): { globals: GlobalOptions; flags: Partial<DaemonRunOptions> } | undefined {
  const g = plainGlobals(argv);
  if (!g) return undefined;
  const globals = g.globals;
  let i = g.next;
  if (argv[i] === "daemon") i++;
  else if ((argv[i] === "pod" || argv[i] === "p") && argv[i + 1] === "daemon") i += 2;
  else return undefined;
  const flags: Record<string, string | boolean> = {};
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (Object.hasOwn(SWITCHES, a)) {
      const [key, value] = SWITCHES[a];
      flags[key] = value;
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!Object.hasOwn(VALUE_FLAGS, name)) return undefined; // --help, a subcommand, an operand
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined || (eq < 0 && v.startsWith("-"))) return undefined;
    flags[VALUE_FLAGS[name]] = v;
  }
  return { globals, flags: flags as Partial<DaemonRunOptions> };
}

/** Runs the daemon when argv is plain; undefined to let commander do it. */
export async function runDaemonDirect(argv: string[]): Promise<number | undefined> {
  const p = plainDaemonArgv(argv);
  if (!p) return undefined;
  const [{ buildHost }, { DAEMON_DEFAULTS, runDaemonCommand }] = await Promise.all([
    import("./host.ts"),
    import("./commands/daemon.ts"),
  ]);
  const ctx = directContext(p.globals, buildHost);
  try {
    await runDaemonCommand(ctx, { ...DAEMON_DEFAULTS, ...p.flags });
    return ctx.exitCode;
  } catch (e) {
    return reportError(e, !!p.globals.debug || Deno.env.get("RKL_DEBUG") === "1");
  }
}
