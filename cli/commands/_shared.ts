/** Pieces the container and pod commands share: reading files, exec, logs. */
import { ConflictError, SpecError, UsageError } from "../../src/errors.ts";
import { readExitCode } from "../../src/oci/conmon.ts";
import { execAttached } from "../../src/workloads/exec.ts";
import { withExecEvents } from "../../src/workloads/exec_events.ts";
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
  return await withExecEvents(host, live, command, () =>
    execAttached(host, {
      container: live,
      argv: command,
      tty: o.tty ?? false,
      stdin: o.interactive ?? false,
      env: o.env,
      cwd: o.cwd,
      ...(o.user ? { user: { uid: o.user.uid, gid: o.user.gid } } : {}),
    }));
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
