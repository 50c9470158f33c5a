/**
 * An exec session through conmon (`--exec --exec-attach -t`), as podman runs
 * `exec -t`: youki gives a terminal only to a detached exec with a console
 * socket, so conmon takes the pty from the runtime, waits for the process as
 * its subreaper and reports its pid and exit code on its sync pipe; the
 * client joins through the session's attach socket. conmon is started by
 * spawnConmon() (conmon.ts), the same spawn as a container's create.
 */
import { RklError } from "../errors.ts";
import type { Syscalls } from "../sys/syscalls.ts";
import { type ConmonChild, readConmonMessage, spawnConmon } from "./conmon.ts";
import type { OciRuntime } from "./runtime.ts";
import { removeConmonLinks } from "./conmon_links.ts";
import { realFs } from "../sys/fs.ts";

export interface ConmonExecOptions {
  conmon: string;
  runtime: OciRuntime;
  /** The container the process joins. */
  id: string;
  name: string;
  /** The session's id: conmon names its attach socket after it. */
  sessionId: string;
  /** The session's own 0700 directory: its FIFOs, pid files, ctl FIFO and attach socket. */
  dir: string;
  socketDir: string;
  /** The process spec (a 0600 file). */
  processFile: string;
  stdin: boolean;
}

export function conmonExecArgs(o: ConmonExecOptions): string[] {
  const args = [
    "--api-version",
    "1",
    "-c",
    o.id,
    "-u",
    o.sessionId,
    "-n",
    o.name,
    "-r",
    o.runtime.exe,
    "-b",
    o.dir,
    "-p",
    `${o.dir}/pid`,
    "-P",
    `${o.dir}/conmon.pid`,
    "-l",
    "none",
    "--exit-dir",
    o.dir,
    "--socket-dir-path",
    o.socketDir,
    "--exec",
    "--exec-process-spec",
    o.processFile,
    "--exec-attach",
    "--terminal",
    "--syslog",
    "--log-level",
    "error",
  ]; // deno-fmt-ignore
  if (o.stdin) args.push("--stdin");
  for (const a of o.runtime.globalArgs()) args.push("--runtime-arg", a);
  return args;
}

/** An exec session conmon holds, set up and waiting to start its process. */
export interface ConmonExecSession {
  /** The session's attach socket: connect before start(). */
  attachSocket: string;
  /** The session's control FIFO (terminal sizes). */
  ctl: string;
  /** Lets the runtime exec the process; resolves to its pid, or throws why it did not start. */
  start(): Promise<number>;
  /** The process's exit code; undefined when conmon ended without one. */
  exited(): Promise<number | undefined>;
  /** Closes rkl's ends of the FIFOs, sees conmon gone and removes its link in socketDir. */
  close(): Promise<void>;
}

/**
 * Starts conmon in exec mode with a terminal (`--exec --exec-attach -t`)
 * through spawnConmon, and waits until its attach socket is up.
 */
export async function execConmonSession(
  sys: Syscalls,
  o: ConmonExecOptions,
): Promise<ConmonExecSession> {
  const spawned = spawnConmon(sys, {
    conmon: o.conmon,
    args: conmonExecArgs(o),
    fifos: {
      sync: `${o.dir}/sync.fifo`,
      start: `${o.dir}/start.fifo`,
      attach: `${o.dir}/attached.fifo`,
    },
    cwd: o.dir,
  });
  const { sync, start, attach } = spawned.pipes as Required<ConmonChild["pipes"]>;
  let conmonPid: number | undefined;
  let stderr: string | undefined;
  const why = async () => {
    stderr ??= (await spawned.stderr()).trim();
    return stderr || "no message from conmon";
  };
  const close = async () => {
    spawned.close();
    if (conmonPid) {
      await waitGone(conmonPid, 2_000);
      try {
        Deno.kill(conmonPid, "SIGKILL");
      } catch { /* gone */ }
    }
    removeConmonLinks(realFs, o.socketDir, o.sessionId, o.dir);
  };
  const go = new TextEncoder().encode("0");
  try {
    // conmon may fork and set up its attach socket (a conmon that died says so below).
    await start.write(go).catch(() => {});
    await spawned.child.status; // the first conmon exits once it has forked
    conmonPid = Number(readOr(`${o.dir}/conmon.pid`).trim()) || undefined;
    const ready = await readConmonMessage(attach);
    if (!ready || ready.data !== 0) {
      throw new RklError("EEXEC", `conmon did not start the exec session: ${await why()}`);
    }
  } catch (e) {
    await close();
    throw e;
  }
  const carry = { text: "" };
  return {
    attachSocket: `${o.dir}/attach`,
    ctl: `${o.dir}/ctl`,
    async start() {
      await start.write(go); // now the runtime may exec the process
      const msg = await readConmonMessage(sync, carry);
      if (!msg || msg.data <= 0) {
        throw new RklError("EEXEC", msg?.message?.trim() || await why());
      }
      return msg.data;
    },
    async exited() {
      return (await readConmonMessage(sync, carry))?.data;
    },
    close,
  };
}

/**
 * Waits for `pid` to end. A zombie counts as ended: conmon's parent has
 * exited, so it waits to be reaped by init, which on some hosts reaps only
 * every second or two (measured: `crictl exec -it` took 1.6-2 s for that).
 */
async function waitGone(pid: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    } catch {
      return;
    }
    // pid (comm) STATE ...: comm may hold spaces and parentheses; the state follows the last ")".
    if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
