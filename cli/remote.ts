/**
 * The thin client: when `rkl daemon` runs for this run root, the commands
 * below are sent to it over RUN_ROOT/cli.sock and run there, in a process
 * that has its modules loaded, its YAML and schema code compiled and its
 * host probed already; this process only forwards argv and prints what comes
 * back (podman's remote mode, over a local socket). This module imports
 * nothing, so that path costs Deno's start and one small file.
 *
 * Same results either way: the daemon refuses (and this process then does
 * the work itself) unless it runs the same rkl build with the same state
 * roots, runtime and environment. With no daemon, a stale socket, or
 * RKL_NO_DAEMON=1, everything runs in-process as before.
 *
 * Wire format, one JSON object per line. Request:
 * `{"v":1,"build":…,"argv":[…],"cwd":"/…","root":"/…","runRoot":"/…","env":{…}}`,
 * plus `"composeEnv":{…}` (the whole environment: compose files interpolate
 * it) for compose commands; replies: `{"o":TEXT}` (stdout), `{"e":TEXT}` (stderr), then either
 * `{"exit":N}` or, before any output, `{"fallback":WHY}`.
 */

export const PROTOCOL = 1;
/** Largest request line the daemon reads. */
export const MAX_REQUEST = 1 << 20;

export const DEFAULT_ROOT = "/var/lib/rkl";
export const DEFAULT_RUN_ROOT = "/run/rkl";
const GLOBAL_VALUE = ["--root", "--run-root", "--runtime"];

/** The verbs a daemon serves: none reads stdin, needs a TTY or streams for long. */
const SERVED: Record<string, string[]> = {
  pod: ["run", "create", "start", "stop", "rm", "delete", "list", "ls", "state", "inspect"],
  container: ["run", "create", "start", "stop", "rm", "delete", "list", "ls", "state", "inspect"],
  image: ["ls", "list", "inspect", "pull", "tag", "rm", "remove", "prune"],
  // `up` only with -d: attached, it follows logs until ^C.
  compose: ["up", "down", "ps"],
  kube: ["play", "down", "status"],
  // and `stats --no-stream`, `ps`, `run -d` (servable() decides: they have no verb)
};
/** compose's own options (before its verb), each with a value. */
const COMPOSE_VALUE = ["-f", "--file", "-p", "--project-name", "--profile"];
const ALIASES: Record<string, string> = { p: "pod", c: "container" };
/** docker's `run` options that take a value (cli/commands/docker.ts). */
const RUN_VALUE = new Set([
  "-p",
  "--publish",
  "-e",
  "--env",
  "--env-file",
  "-v",
  "--volume",
  "--mount",
  "--tmpfs",
  "-w",
  "--workdir",
  "-u",
  "--user",
  "--entrypoint",
  "--cpus",
  "-m",
  "--memory",
  "--pids-limit",
  "--network",
  "--hostname",
  "--restart",
  "--cap-add",
  "--cap-drop",
  "--security-opt",
  "-l",
  "--label",
  "--pull",
  "--name",
]); // deno-fmt-ignore

/**
 * Whether a top-level `run` may be served: detached, nothing read from the
 * client's terminal, files or environment (a daemon has none of them), and no
 * helper left to wait for the exit (`--rm`). Options are read up to the image;
 * what follows it is the container's command.
 */
function servableRun(rest: string[]): boolean {
  let detached = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith("-")) return detached; // the image
    const [flag, inline] = a.startsWith("--") && a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    if (flag === "-d" || flag === "--detach") detached = true;
    else if (["--read-only", "--init", "--privileged"].includes(flag)) continue;
    else if (RUN_VALUE.has(flag)) {
      const value = inline ?? rest[++i];
      if (value === undefined) return false;
      // -e NAME copies the client's variable; --env-file and a relative -v name client files
      // (a named volume, `-v NAME:/dir`, is the daemon's).
      if ((flag === "-e" || flag === "--env") && !value.includes("=")) return false;
      if (flag === "--env-file") return false;
      if ((flag === "-v" || flag === "--volume") && value.startsWith(".")) return false;
    } else return false; // -i, -t, --rm, clusters such as -dit, anything unknown
  }
  return false;
}

export interface Plan {
  /** Global option values given in argv. */
  globals: { root?: string; runRoot?: string; runtime?: string };
  command: string;
  verb: string;
}

/** What argv asks for, when it is something a daemon may serve; undefined otherwise. */
export function servable(argv: string[]): Plan | undefined {
  const globals: Plan["globals"] = {};
  const key = (flag: string) =>
    flag === "--root" ? "root" : flag === "--run-root" ? "runRoot" : "runtime";
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--debug") continue;
    const eq = GLOBAL_VALUE.find((g) => a.startsWith(`${g}=`));
    if (eq) {
      globals[key(eq)] = a.slice(eq.length + 1);
      continue;
    }
    if (GLOBAL_VALUE.includes(a)) {
      if (i + 1 >= argv.length) return undefined;
      globals[key(a)] = argv[++i];
      continue;
    }
    break;
  }
  const command = ALIASES[argv[i]] ?? argv[i];
  // `stats --no-stream` prints once and ends (the live table streams: in-process).
  if (command === "stats") {
    const rest = argv.slice(i + 1);
    const ok = rest.includes("--no-stream") &&
      !rest.some((a) => ["-h", "--help", "--"].includes(a));
    return ok ? { globals, command, verb: "--no-stream" } : undefined;
  }
  // docker's top-level verbs: `ps` (it only reads), and `run -d`.
  if (command === "ps" || (command === "run" && servableRun(argv.slice(i + 1)))) {
    if (argv.some((a) => a === "-h" || a === "--help" || a === "--")) return undefined;
    return { globals, command, verb: "" };
  }
  let v = i + 1;
  if (command === "compose") {
    for (; v < argv.length; v++) {
      const a = argv[v];
      if (COMPOSE_VALUE.some((o) => a.startsWith(`${o}=`))) continue;
      if (!COMPOSE_VALUE.includes(a)) break;
      if (++v >= argv.length) return undefined;
    }
  }
  const verb = argv[v];
  if (!SERVED[command]?.includes(verb)) return undefined;
  const rest = argv.slice(v + 1);
  if (command === "compose" && verb === "up" && !rest.some((a) => a === "-d" || a === "--detach")) {
    return undefined;
  }
  // Help is printed here; `--` could hide a help flag from the check above.
  if (argv.some((a) => a === "-h" || a === "--help" || a === "--")) return undefined;
  return { globals, command, verb };
}

/** The environment that decides what a command does: it must match the daemon's. */
export function relevantEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(env).sort()) {
    // RKL_TRACE only says where the trace goes: a client with it runs in-process
    // (its user wants the trace), a daemon with it traces what it serves.
    if (k === "RKL_TRACE") continue;
    if (k.startsWith("RKL_") || k === "PATH" || k === "REGISTRY_AUTH_FILE") out[k] = env[k];
  }
  return out;
}

function absolute(p: string, cwd: string): string {
  return (p.startsWith("/") ? p : `${cwd}/${p}`).replace(/\/+$/, "") || "/";
}

/** The state roots a command with these globals and env uses (as cli/host.ts resolves them). */
export function rootsOf(
  globals: Plan["globals"],
  env: Record<string, string | undefined>,
  cwd: string,
): { root: string; runRoot: string } {
  return {
    root: absolute(globals.root ?? env.RKL_ROOT ?? DEFAULT_ROOT, cwd),
    runRoot: absolute(globals.runRoot ?? env.RKL_RUN_ROOT ?? DEFAULT_RUN_ROOT, cwd),
  };
}

export function socketPath(runRoot: string): string {
  return `${runRoot}/cli.sock`;
}

/**
 * Runs argv in the daemon when one serves this run root; the exit code, or
 * undefined when this process must do the work itself.
 */
export async function runRemote(argv: string[], build: string): Promise<number | undefined> {
  const plan = servable(argv);
  if (!plan) return undefined;
  let env: Record<string, string>;
  try {
    env = Deno.env.toObject();
  } catch {
    return undefined;
  }
  // Tracing and fault injection are about this process.
  if (env.RKL_NO_DAEMON === "1" || env.RKL_TRACE || env.RKL_TEST_KILL_AT) return undefined;
  // Pull progress is drawn on this process's terminal.
  if (plan.command === "image" && plan.verb === "pull" && Deno.stderr.isTerminal()) {
    return undefined;
  }
  // The inner rootless rkl does the work itself.
  if (env.RKL_ROOTLESS === "1") return undefined;
  const cwd = Deno.cwd();
  let root: string, runRoot: string, socket: string;
  if (Deno.uid() !== 0) {
    // A user without root: only its own daemon, its socket checked (cli/rootless_early.ts).
    const own = (await import("./rootless_early.ts"))
      .ownDaemon(plan.globals, env, cwd, Deno.uid()!, rootsOf);
    if (!own) return undefined;
    ({ env, root, runRoot, socket } = own);
  } else {
    ({ root, runRoot } = rootsOf(plan.globals, env, cwd));
    socket = socketPath(runRoot);
  }
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    return undefined; // no daemon (or a stale socket of a dead one)
  }
  try {
    const request = {
      v: PROTOCOL,
      build,
      argv,
      cwd,
      root,
      runRoot,
      env: relevantEnv(env),
      ...(plan.command === "compose" ? { composeEnv: env } : {}),
    };
    const enc = new TextEncoder();
    const bytes = enc.encode(JSON.stringify(request) + "\n");
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    return await readReplies(conn);
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

export function writeAll(file: typeof Deno.stdout, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

async function readReplies(conn: Deno.UnixConn): Promise<number | undefined> {
  const dec = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let pending = "";
  let printed = false;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    pending += dec.decode(buf.subarray(0, n), { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let msg: { o?: unknown; e?: unknown; exit?: unknown; fallback?: unknown };
      try {
        msg = JSON.parse(line);
      } catch {
        writeAll(Deno.stderr, "rkl: the daemon sent a reply that is not JSON\n");
        return 1;
      }
      if (typeof msg.o === "string") {
        printed = true;
        writeAll(Deno.stdout, msg.o);
      } else if (typeof msg.e === "string") {
        printed = true;
        writeAll(Deno.stderr, msg.e);
      } else if (typeof msg.exit === "number" && Number.isInteger(msg.exit)) {
        return msg.exit;
      } else if (typeof msg.fallback === "string" && !printed) {
        return undefined;
      } else {
        writeAll(Deno.stderr, "rkl: the daemon sent a reply rkl does not know\n");
        return 1;
      }
    }
  }
  // The daemon went away mid-command: what it did is in the store, as after a crash.
  writeAll(
    Deno.stderr,
    "rkl: the daemon closed the connection before the command finished; see `rkl pod list`/`container list`\n",
  );
  return 1;
}
