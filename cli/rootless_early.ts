/**
 * What a user's rkl does before it loads anything else (cli/main.ts), so a
 * rootless command costs one small module in the outer process:
 *
 * - served: when the user's own `rkl daemon` runs, ownDaemon() names its
 *   socket (RUN_ROOT/cli.sock, checked: the user's, 0600, in the user's
 *   0700 run root, no symlink) and the environment the inner rkl would have;
 *   cli/remote.ts sends the command there. Root's socket, or another user's,
 *   is never tried.
 * - otherwise enterEarly() re-executes the command inside the user's
 *   namespaces at once (before commander, the command tree and the Host
 *   load), through nsenter and Deno.execPath() (cli/self.ts's rule), and
 *   exits with the inner rkl's code.
 *
 * Commands that need no namespace (doctor, version, completion, help,
 * `daemon install/uninstall --user`) are not entered here; anything not
 * listed still enters where it builds its Host (cli/host.ts), as before.
 */
import { RklError } from "../src/errors.ts";
import { trace } from "../src/trace.ts";
import { DOCKER_VERBS } from "./docker_verbs.ts";
import { youkiRunsRootlessOnV1 } from "../src/oci/youki_marker.ts";
import {
  ensurePause,
  enterArgv,
  idMapsFor,
  livePause,
  privateUserDir,
  type RootlessRoots,
  rootlessRoots,
  userName,
} from "../src/sys/userns.ts";

/** The command words that build a Host (cli/app.ts's COMMANDS), aliases included. */
const HOST_COMMANDS = new Set([
  ...DOCKER_VERBS,
  "container",
  "c",
  "pod",
  "p",
  "__rm-on-exit",
  "compose",
  "kube",
  "__job-monitor",
  "daemon",
  "gc",
  "__health-monitor",
  "__pod-probes",
  "volume",
  "image",
  "login",
  "logout",
  "generate",
  "stats",
  "events",
  "__complete",
]);
/** `daemon` verbs written as the user itself (cli/rootless_daemon.ts). */
const DAEMON_OUTSIDE = new Set(["install", "uninstall"]);
const GLOBAL_VALUE = new Set(["--root", "--run-root", "--runtime"]);

/**
 * Whether a user's argv runs inside its namespaces: a command that builds a
 * Host, asked without -h/--help (help is printed where it is asked).
 */
export function needsNamespace(argv: string[]): boolean {
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (GLOBAL_VALUE.has(a)) {
      i++;
      continue;
    }
    if (!a.startsWith("-")) break;
    if (a === "-h" || a === "--help" || a === "--" || a === "-V" || a === "--version") return false;
  }
  const word = argv[i];
  if (word === undefined || !HOST_COMMANDS.has(word)) return false;
  const rest = argv.slice(i + 1);
  const end = rest.indexOf("--");
  if ((end < 0 ? rest : rest.slice(0, end)).some((a) => a === "-h" || a === "--help")) {
    return false;
  }
  if (word === "daemon" && DAEMON_OUTSIDE.has(rest.find((a) => !a.startsWith("-")) ?? "")) {
    return false;
  }
  return true;
}

/**
 * The runtime a rootless rkl uses unless told, decided by the outer rkl so
 * that the inner one, the user's daemon and its thin client agree. On
 * cgroup v1: the youki first on PATH (as its absolute path) when it is
 * rkl's build with the rootless cgroup v1 patch (the marker setup.sh
 * writes, src/oci/youki_marker.ts), else runc: youki 0.7.0 as published has
 * no rootless mode on v1 (docs/rootless.md). On v2: the usual default.
 * `mountinfo` is /proc/self/mountinfo: a v1 hierarchy with a controller rkl
 * uses means v1 (src/sys/cgroups/detect.ts's rule).
 */
export function defaultRootlessRuntime(
  mountinfo: string,
  which: (name: string) => string | undefined,
  rootlessOnV1: (binary: string) => boolean = youkiRunsRootlessOnV1,
): string | undefined {
  const v1 = mountinfo.split("\n").some((line) => {
    const post = line.split(" - ")[1];
    if (!post) return false;
    const [fstype, , opts = ""] = post.split(" ");
    return fstype === "cgroup" &&
      opts.split(",").some((o) =>
        ["cpu", "cpuacct", "memory", "pids", "cpuset", "blkio", "devices", "freezer"].includes(o)
      );
  });
  if (!v1) return undefined;
  const youki = which("youki");
  if (youki && rootlessOnV1(youki)) return youki;
  return which("runc") ? "runc" : undefined;
}

/** The environment of the inner rkl: its roots, its config files, and the rootless mode. */
export function innerEnv(
  env: Record<string, string>,
  roots: { root: string; runRoot: string; configDir: string },
  runtime?: string,
): Record<string, string> {
  const out: Record<string, string> = {
    ...env,
    RKL_ROOTLESS: "1",
    RKL_ROOT: env.RKL_ROOT ?? roots.root,
    RKL_RUN_ROOT: env.RKL_RUN_ROOT ?? roots.runRoot,
    RKL_REGISTRIES_CONFIG: env.RKL_REGISTRIES_CONFIG ?? `${roots.configDir}/registries.yaml`,
    REGISTRY_AUTH_FILE: env.REGISTRY_AUTH_FILE ?? `${roots.configDir}/auth.json`,
    // The inner rkl is the one that works: it never forwards to a daemon.
    RKL_NO_DAEMON: "1",
  };
  const rt = env.RKL_RUNTIME ?? runtime;
  if (rt !== undefined) out.RKL_RUNTIME = rt;
  return out;
}

/** `name` on PATH (an executable file), or undefined. */
export function which(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  for (const dir of path.split(":")) {
    if (!dir.startsWith("/")) continue;
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0) & 0o111)) return `${dir}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

function readOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** The user's roots and the inner rkl's environment, for this process's user. */
export function userContext(env: Record<string, string>, uid: number): {
  roots: RootlessRoots;
  env: Record<string, string>;
} {
  const roots = rootlessRoots(env, uid);
  const runtime = defaultRootlessRuntime(
    readOr("/proc/self/mountinfo", ""),
    (n) => which(n, env.PATH ?? ""),
  );
  return { roots, env: innerEnv(env, roots, runtime) };
}

/** What lstat says of a path, as much as the checks below need. */
export interface Stat {
  isDirectory: boolean;
  isSocket: boolean;
  isSymlink: boolean;
  uid: number | null;
  mode: number | null;
}

/**
 * Why `socket` in `runRoot` is not this user's daemon's to trust, or
 * undefined when it is: the run root a directory of `uid` with no access
 * for group or others (nobody else can put or swap a socket in it), the
 * socket itself a socket (not a symlink) of `uid`, mode without group or
 * other bits. A socket another user made, or root's, is refused.
 */
export function untrustedSocket(
  runRoot: string,
  socket: string,
  uid: number,
  lstat: (path: string) => Stat | undefined,
): string | undefined {
  const dir = lstat(runRoot);
  if (!dir) return `${runRoot} is missing`;
  if (dir.isSymlink || !dir.isDirectory) return `${runRoot} is not a directory`;
  if (dir.uid !== uid) return `${runRoot} belongs to uid ${dir.uid}`;
  if (((dir.mode ?? 0o777) & 0o077) !== 0) return `${runRoot} is open to others`;
  const s = lstat(socket);
  if (!s) return `${socket} is missing`;
  if (s.isSymlink || !s.isSocket) return `${socket} is not a socket`;
  if (s.uid !== uid) return `${socket} belongs to uid ${s.uid}`;
  if (((s.mode ?? 0o777) & 0o077) !== 0) return `${socket} is open to others`;
  return undefined;
}

export function lstatOrUndefined(path: string): Stat | undefined {
  try {
    const st = Deno.lstatSync(path);
    return {
      isDirectory: st.isDirectory,
      isSocket: st.isSocket ?? false,
      isSymlink: st.isSymlink,
      uid: st.uid,
      mode: st.mode,
    };
  } catch {
    return undefined;
  }
}

/**
 * The user's own daemon for this command, when one may serve it: the
 * environment and roots the inner rkl would have (the daemon compares them
 * with its own), and its socket, checked (untrustedSocket). Undefined when
 * there is none to trust: the command then runs in the user's namespace.
 */
export function ownDaemon(
  globals: { root?: string; runRoot?: string },
  env: Record<string, string>,
  cwd: string,
  uid: number,
  rootsOf: (
    globals: { root?: string; runRoot?: string },
    env: Record<string, string | undefined>,
    cwd: string,
  ) => { root: string; runRoot: string },
  lstat: (path: string) => Stat | undefined = lstatOrUndefined,
): { env: Record<string, string>; root: string; runRoot: string; socket: string } | undefined {
  let inner: Record<string, string>;
  try {
    inner = userContext(env, uid).env;
  } catch {
    return undefined; // no HOME: the in-namespace path says why
  }
  const { root, runRoot } = rootsOf(globals, inner, cwd);
  const socket = `${runRoot}/cli.sock`;
  if (untrustedSocket(runRoot, socket, uid, lstat) !== undefined) return undefined;
  return { env: inner, root, runRoot, socket };
}

/**
 * Runs `args` again as root of the user's namespace (starting the pause
 * process when there is none), and exits with the inner rkl's code.
 * `beforePause` runs before a pause process is started (the caller's fds
 * must not live on in it).
 */
export function enterNamespace(
  self: string[],
  args: string[],
  beforePause: () => void = () => {},
): never {
  trace("rootless: enter");
  const uid = Deno.uid() ?? 0;
  const gid = Deno.gid() ?? uid;
  const env = Deno.env.toObject();
  for (const tool of ["newuidmap", "newgidmap", "nsenter", "unshare"]) {
    if (!which(tool, env.PATH ?? "")) {
      throw new RklError("EROOTLESS", `Cannot run rootless: ${tool} is not installed`, {
        hint: tool.startsWith("new")
          ? "apt-get install uidmap  |  dnf install shadow-utils"
          : "apt-get install util-linux",
      });
    }
  }
  const { roots, env: inner } = userContext(env, uid);
  if (env.XDG_RUNTIME_DIR?.startsWith("/")) privateUserDir(env.XDG_RUNTIME_DIR, uid);
  privateUserDir(roots.runRoot, uid);
  Deno.mkdirSync(roots.root, { recursive: true, mode: 0o700 });
  if (livePause(`${roots.runRoot}/pause.pid`, uid) === undefined) beforePause();
  const maps = idMapsFor(userName(uid), uid, gid);
  const pid = ensurePause(roots.runRoot, maps);
  const argv = enterArgv(pid, Deno.cwd(), [...self, ...args]);
  // ^C reaches the inner rkl too (one process group): this one waits for it.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(sig, () => {});
  }
  const r = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: inner,
    clearEnv: true,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  Deno.exit(r.signal ? 128 + signalNumber(r.signal) : r.code);
}

function signalNumber(s: Deno.Signal): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[
    s
  ] ?? 1;
}

/** How to start this rkl again (cli/self.ts's rule, without its imports). */
export function selfArgvEarly(
  env: Record<string, string | undefined>,
  execPath: string,
  mainUrl: URL,
  isExecutable: (path: string) => boolean,
): string[] {
  const artifact = env.RKL_SELF;
  if (artifact?.startsWith("/") && isExecutable(artifact)) return [artifact];
  if (!/(^|\/)deno$/.test(execPath)) return [execPath];
  if (mainUrl.protocol !== "file:") return [execPath];
  return [execPath, "run", "-A", mainUrl.pathname];
}

/**
 * cli/main.ts's first step for a user without root: a command that needs
 * the namespace enters it now and never returns; anything else returns.
 * Errors are printed as rkl prints them (exit code of the error).
 */
export async function enterEarly(args: string[]): Promise<void> {
  if (!needsNamespace(args)) return;
  const self = selfArgvEarly(
    Deno.env.toObject(),
    Deno.execPath(),
    new URL("./main.ts", import.meta.url),
    (p) => {
      try {
        const st = Deno.statSync(p);
        return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
      } catch {
        return false;
      }
    },
  );
  // Only when a pause process is started: the caller's fds must not live on in it.
  let cloexec: (() => void) | undefined;
  try {
    const live = (() => {
      try {
        const roots = rootlessRoots(Deno.env.toObject(), Deno.uid() ?? 0);
        return livePause(`${roots.runRoot}/pause.pid`, Deno.uid() ?? 0) !== undefined;
      } catch {
        return false;
      }
    })();
    if (!live) cloexec = (await import("../src/sys/cloexec.ts")).cloexecInheritedFds;
    enterNamespace(self, args, () => cloexec?.());
  } catch (e) {
    const err = e as RklError;
    const text = `rkl: ${err?.message ?? String(e)}\n${err?.hint ? `hint: ${err.hint}\n` : ""}`;
    Deno.stderr.writeSync(new TextEncoder().encode(text));
    Deno.exit(e instanceof RklError ? e.exitCode : 1);
  }
}
