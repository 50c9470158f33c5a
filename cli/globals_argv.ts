/** The global options at the front of argv, for the short paths that run before commander. */
import type { GlobalOptions } from "./host.ts";

/**
 * The global options argv starts with (--debug, --root, --run-root,
 * --runtime, as `--x v` or `--x=v`) and the index of the first word after
 * them; undefined when a value is missing.
 */
export function plainGlobals(argv: string[]): { globals: GlobalOptions; next: number } | undefined {
  const globals: GlobalOptions = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--debug") {
      globals.debug = true;
      continue;
    }
    const m = /^--(root|run-root|runtime)(?:=(.*))?$/.exec(a);
    if (!m) break;
    const v = m[2] ?? argv[++i];
    if (v === undefined || (m[2] === undefined && v.startsWith("-"))) return undefined;
    if (m[1] === "root") globals.root = v;
    else if (m[1] === "run-root") globals.runRoot = v;
    else globals.runtime = v;
  }
  return { globals, next: i };
}
