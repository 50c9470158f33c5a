/** Pieces the container and pod commands share: reading files, exec, logs. */
import { ConflictError, NoExecutableError, SpecError, UsageError } from "../../src/errors.ts";
import { readExitCode } from "../../src/oci/conmon.ts";
import { execProcess } from "../../src/oci/runtime.ts";
import { installCancelHandlers } from "../../src/cancel.ts";
import { absolute, served } from "../io.ts";
import { type ContainerRecord, refresh } from "../../src/workloads/container.ts";
import type { Host } from "../../src/workloads/host.ts";
import { formatEntry, streamLog } from "../../src/workloads/logs.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../../src/sys/readfile.ts";

/** A spec file's text and the directory its relative paths resolve against. */
export function readSpecFile(file: string): { text: string; baseDir: string } {
  const abs = absolute(file);
  return { text: readInput(file, abs), baseDir: abs.slice(0, abs.lastIndexOf("/")) || "/" };
}

/**
 * A file the user named on the command line, as text: a regular file of at
 * most 1 MiB (src/sys/readfile.ts), else a SpecError naming it (exit 2).
 */
export function readInput(file: string, abs = absolute(file)): string {
  try {
    return readTextBounded(abs, { max: MAX_INPUT_BYTES });
  } catch (e) {
    if (e instanceof FileReadError) {
      throw new SpecError({ file }, `Cannot read file: ${e.reason}`, { cause: e });
    }
    throw e;
  }
}

export function networkOption(v: string | undefined): string | null {
  return v === "none" ? null : v ?? "rkl0";
}

export function parseSeconds(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Number(v);
  if (!Number.isInteger(t) || t < 0) {
    throw new UsageError(`${flag} ${JSON.stringify(v)} must be a whole number of seconds`);
  }
  return t;
}

export interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  /** `NAME=VALUE` entries over the container's env (docker exec -e). */
  env?: string[];
  /** Working directory instead of the container's (docker exec -w). */
  cwd?: string;
  /** User and group ids instead of the container's (docker exec -u). */
  user?: { uid: number; gid: number };
}

/** Runs `command` in a running container with its cwd and env; returns the exit code. */
/**
 * Why the runtime could not start `process.args[0]`, looked up as the
 * runtime will (PATH of the process env) in the container's rootfs, or
 * undefined when it may be there. Paths under a mount are not judged.
 */
function missingExecutable(
  rootfs: string,
  configPath: string,
  process: { args: string[]; env?: string[] },
): string | undefined {
  const cmd = process.args[0];
  let mounts: string[] = [];
  try {
    const cfg = JSON.parse(Deno.readTextFileSync(configPath)) as {
      mounts?: { destination?: string }[];
    };
    mounts = (cfg.mounts ?? []).map((m) => m.destination ?? "").filter((d) => d !== "/dev");
  } catch {
    return undefined; // the runtime will say
  }
  const underMount = (p: string) => mounts.some((m) => p === m || p.startsWith(`${m}/`));
  const exists = (p: string) => {
    if (underMount(p)) return true;
    try {
      Deno.lstatSync(`${rootfs}${p}`);
      return true;
    } catch {
      return false;
    }
  };
  if (cmd.includes("/")) {
    if (!cmd.startsWith("/") || exists(cmd) || !exists("/bin")) return undefined;
    return `${cmd}: no such file in the container's root filesystem`;
  }
  const path = (process.env ?? []).find((e) => e.startsWith("PATH="))?.slice(5) ??
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const dirs = path.split(":").filter((d) => d.startsWith("/"));
  if (!exists("/bin") && !exists("/usr")) return undefined; // not a view of the rootfs
  if (dirs.some((d) => exists(`${d}/${cmd}`))) return undefined;
  return `executable ${JSON.stringify(cmd)} is not found in the container's PATH (${path})`;
}

export async function execIn(
  host: Host,
  rec: ContainerRecord,
  command: string[],
  o: ExecFlags,
): Promise<number> {
  const live = await refresh(host, rec);
  if (live.status !== "running") {
    throw new ConflictError(
      `Cannot exec in container ${JSON.stringify(rec.name)}: it is ${live.status}`,
    );
  }
  if (command[0] === "--") command = command.slice(1); // `exec NAME -- CMD`, as kubectl writes it
  if (command.length === 0) throw new UsageError("exec needs a command");
  const process = execProcess(rec.dirs.config, command, {
    tty: o.tty ?? false,
    env: o.env,
    cwd: o.cwd,
  });
  if (o.user) process.user = { uid: o.user.uid, gid: o.user.gid };
  const missing = missingExecutable(rec.dirs.rootfs, rec.dirs.config, process);
  if (missing) {
    throw new NoExecutableError(`Cannot exec in container ${JSON.stringify(rec.name)}: ${missing}`);
  }
  return await host.runtimeFor(rec.runtime).exec(rec.id, process, {
    interactive: o.interactive ?? false,
    fileDir: rec.dirs.conmonDir,
  });
}

export interface LogFlags {
  follow?: boolean;
  tail?: string;
  timestamps?: boolean;
}

/** Prints a container's log (stdout lines to stdout, stderr lines to stderr). */
export async function printLogs(
  host: Host,
  rec: ContainerRecord,
  o: LogFlags,
  options: { prefix?: string } = {},
): Promise<void> {
  const n = o.tail === undefined ? undefined : Number(o.tail);
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
    throw new UsageError(`--tail ${JSON.stringify(o.tail)} must be a whole number`);
  }
  const enc = new TextEncoder();
  await streamLog(rec.dirs.log, (e) => {
    const bytes = enc.encode(formatEntry(e, { timestamps: o.timestamps, prefix: options.prefix }));
    (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(bytes);
  }, {
    tail: n,
    follow: o.follow,
    done: () =>
      readExitCode(rec.dirs.exitDir, rec.id) !== undefined ||
      !host.store.get("containers", rec.name),
  });
}

/**
 * Runs a command's create work with SIGINT/SIGTERM turned into a rollback
 * (src/cancel.ts); the handlers are gone again once it returns.
 */
export async function whileCreating<T>(fn: () => Promise<T>): Promise<T> {
  const uninstall = served() ? () => {} : installCancelHandlers();
  try {
    return await fn();
  } finally {
    uninstall();
  }
}
