/**
 * Container creation through conmon, the per-container monitor podman and
 * CRI-O use: it runs `<runtime> create`, holds the container's stdio, writes
 * the CRI log file and the exit code, and outlives the rkl command.
 *
 * conmon reports the container's pid (or the runtime's error) as JSON on a
 * "sync pipe" given as an inherited fd number. Deno hands a child only its
 * stdio and opens every fd of its own close-on-exec, so the pipe is a FIFO
 * that rkl opens through libc without that flag just for the spawn (see
 * createWithConmon).
 */
import { callTimeoutMs } from "../timeouts.ts";
import { trace } from "../trace.ts";
import { RklError, RuntimeError } from "../errors.ts";
import { O_RDWR, type Syscalls } from "../sys/syscalls.ts";
import { cloexecInheritedFds } from "../sys/cloexec.ts";
import type { OciRuntime } from "./runtime.ts";

export interface ConmonOptions {
  conmon: string;
  runtime: OciRuntime;
  id: string;
  /** Name shown in conmon's own logs. */
  name: string;
  bundle: string;
  /** Directory for conmon's pid files, the FIFO and its stderr. */
  workDir: string;
  logPath: string;
  exitDir: string;
  socketDir: string;
  logSizeMax?: number;
  timeoutMs?: number;
  /** process.terminal: conmon makes the console socket, holds the pty and logs what it shows. */
  terminal?: boolean;
  /** A stdin pipe attach can write to; "once": closed when the first attach ends. */
  stdin?: "open" | "once";
}

export interface ConmonPaths {
  pidFile: string;
  conmonPidFile: string;
  syncFifo: string;
}

export function conmonPaths(workDir: string): ConmonPaths {
  return {
    pidFile: `${workDir}/pid`,
    conmonPidFile: `${workDir}/conmon.pid`,
    syncFifo: `${workDir}/sync`,
  };
}

export function conmonArgs(o: ConmonOptions): string[] {
  const p = conmonPaths(o.workDir);
  const args = [
    "--api-version",
    "1",
    "-c",
    o.id,
    "-u",
    o.id,
    "-n",
    o.name,
    "-r",
    o.runtime.exe,
    "-b",
    o.bundle,
    "-p",
    p.pidFile,
    "-l",
    `k8s-file:${o.logPath}`,
    "--exit-dir",
    o.exitDir,
    "--conmon-pidfile",
    p.conmonPidFile,
    "--socket-dir-path",
    o.socketDir,
    "--syslog",
    "--log-level",
    "error",
  ]; // deno-fmt-ignore
  for (const a of o.runtime.globalArgs()) args.push("--runtime-arg", a);
  if (o.logSizeMax) args.push("--log-size-max", String(o.logSizeMax));
  if (o.terminal) args.push("--terminal");
  if (o.stdin) args.push("--stdin");
  if (o.stdin === "open") args.push("--leave-stdin-open");
  return args;
}

/** The FIFOs conmon takes as inherited fds: what it reports, and when it may go on. */
export type ConmonPipe = "sync" | "start" | "attach";

const PIPE_ENV: Record<ConmonPipe, string> = {
  sync: "_OCI_SYNCPIPE",
  start: "_OCI_STARTPIPE",
  attach: "_OCI_ATTACHPIPE",
};

/** A spawned conmon: rkl's ends of its FIFOs, and its stderr until it forks away. */
export interface ConmonChild {
  child: Deno.ChildProcess;
  /** sync and attach are read here; start is written ("0" lets conmon go on). */
  pipes: Partial<Record<ConmonPipe, Deno.FsFile>>;
  /** conmon's own complaints, said before its daemonised half drops its stderr. */
  stderr(): Promise<string>;
  /** Closes rkl's ends of the FIFOs and removes them. */
  close(): void;
}

/**
 * The one way rkl starts conmon, for a container's create and for an exec
 * session alike. Each FIFO in `fifos` is made afresh and reaches conmon as an
 * inherited fd named by its `_OCI_*PIPE` variable: opened through libc
 * without O_CLOEXEC just for the spawn and closed here right after it, with
 * no await between, so no other child of this process can take it along.
 * Both sides open read-write-safe, so no open waits for the other side.
 */
export function spawnConmon(
  sys: Syscalls,
  o: {
    conmon: string;
    args: string[];
    fifos: Partial<Record<ConmonPipe, string>>;
    cwd?: string;
  },
): ConmonChild {
  // conmon lives as long as the container: it must take no fd of this
  // process's caller along (done once per process; cli/main.ts did it already).
  cloexecInheritedFds();
  const names = Object.keys(o.fifos) as ConmonPipe[];
  for (const n of names) {
    try {
      Deno.removeSync(o.fifos[n]!);
    } catch { /* not there */ }
    sys.mkfifo(o.fifos[n]!, 0o600);
  }
  const inherited: number[] = [];
  const pipes: Partial<Record<ConmonPipe, Deno.FsFile>> = {};
  const closeOurs = () => {
    for (const f of Object.values(pipes)) {
      try {
        f.close();
      } catch { /* closed */ }
    }
  };
  const env: Record<string, string> = { RUST_BACKTRACE: "0" };
  let child: Deno.ChildProcess;
  try {
    for (const n of names) {
      const fd = sys.open(o.fifos[n]!, O_RDWR);
      inherited.push(fd);
      env[PIPE_ENV[n]] = String(fd);
    }
    for (const n of names) {
      pipes[n] = Deno.openSync(o.fifos[n]!, n === "start" ? { write: true } : { read: true });
    }
    child = new Deno.Command(o.conmon, {
      args: o.args,
      // RUST_BACKTRACE=0: youki's errors are then one line, not a backtrace.
      env,
      cwd: o.cwd,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    closeOurs();
    throw e;
  } finally {
    for (const fd of inherited) sys.close(fd);
  }
  trace("conmon: spawned");
  const stderrText = readAll(child.stderr);
  return {
    child,
    pipes,
    async stderr() {
      // The pipe ends when conmon's daemonised half points its stderr at
      // /dev/null, just after its fork; never waited on for long.
      let late: ReturnType<typeof setTimeout> | undefined;
      const text = await Promise.race([
        stderrText,
        new Promise<string>((r) => late = setTimeout(() => r(""), 1_000)),
      ]);
      clearTimeout(late);
      return text;
    },
    close() {
      closeOurs();
      for (const n of names) {
        try {
          Deno.removeSync(o.fifos[n]!);
        } catch { /* gone */ }
      }
    },
  };
}

/** A `{"data": N, "message": "…"}` report conmon writes on its sync or attach pipe. */
export interface ConmonMessage {
  data: number;
  message?: string;
}

/**
 * Reads the next report from a conmon pipe; undefined at its end. A "}"
 * inside the message (a runtime's error text) does not cut it short: the
 * report ends at the first "}" after which the text parses. `carry` keeps
 * what was read past it.
 */
export async function readConmonMessage(
  f: Deno.FsFile,
  carry: { text: string } = { text: "" },
): Promise<ConmonMessage | undefined> {
  const buf = new Uint8Array(4096);
  const dec = new TextDecoder();
  let from = 0;
  for (;;) {
    const open = carry.text.indexOf("{");
    for (let end = carry.text.indexOf("}", Math.max(from, open)); open >= 0 && end >= 0;) {
      try {
        const msg = JSON.parse(carry.text.slice(open, end + 1));
        carry.text = carry.text.slice(end + 1);
        return msg;
      } catch {
        from = end + 1;
        end = carry.text.indexOf("}", from);
      }
    }
    const n = await f.read(buf);
    if (n === null) return undefined;
    carry.text += dec.decode(buf.subarray(0, n), { stream: true });
  }
}

/** Runs `runtime create` under conmon; resolves to the container's pid. */
export async function createWithConmon(sys: Syscalls, o: ConmonOptions): Promise<number> {
  const p = conmonPaths(o.workDir);
  Deno.mkdirSync(o.workDir, { recursive: true, mode: 0o700 });
  const spawned = spawnConmon(sys, {
    conmon: o.conmon,
    args: conmonArgs(o),
    fifos: { sync: p.syncFifo },
  });
  const fifo = spawned.pipes.sync!;
  const timeoutMs = o.timeoutMs ?? callTimeoutMs(60_000);
  let timedOut = false;
  let msg: ConmonMessage | undefined;
  let answered = false;
  const reading = (async () => {
    msg = await readConmonMessage(fifo);
    answered = true;
  })();
  reading.catch(() => {}); // a read cut off by the close below
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, timeoutMs);
  });
  let stderr = "";
  try {
    await Promise.race([reading, expired]);
    if (timedOut && !answered) {
      // conmon (and the runtime call it waits on) holds the FIFO's write end:
      // end its process group so the read sees EOF and nothing hangs on.
      killConmonGroup(p.conmonPidFile);
      await Promise.race([reading.catch(() => {}), new Promise((r) => setTimeout(r, 2_000))]);
    }
  } finally {
    clearTimeout(timer);
    spawned.close();
    await spawned.child.status;
    stderr = await spawned.stderr();
  }
  const argv = [o.conmon, ...conmonArgs(o)];
  if (!msg) {
    throw new RuntimeError(
      timedOut
        ? `Cannot create container: conmon gave no answer in ${timeoutMs} ms`
        : "Cannot create container: conmon exited without reporting",
      { argv, stderr, status: -1 },
    );
  }
  const m = msg as ConmonMessage;
  if (m.data < 0) {
    throw new RuntimeError(
      `Cannot create container ${JSON.stringify(o.name)}: ${o.runtime.name} create failed`,
      {
        argv,
        stderr: m.message ?? stderr,
        status: m.data,
      },
    );
  }
  return m.data;
}

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
    removeConmonLinks(o.socketDir, o.sessionId, o.dir);
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
 * Removes what conmon made for `id` in its socket directory: an entry named
 * `id`, or a link named by a prefix of it (at least 32 characters) that
 * points at `bundle`. Returns how many it removed.
 */
export function removeConmonLinks(socketDir: string, id: string, bundle: string): number {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(socketDir)];
  } catch {
    return 0;
  }
  let removed = 0;
  for (const e of entries) {
    const path = `${socketDir}/${e.name}`;
    if (
      e.name === id ||
      (e.isSymlink && e.name.length >= 32 && id.startsWith(e.name) && readLink(path) === bundle)
    ) {
      try {
        Deno.removeSync(path, { recursive: true });
        removed++;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }
  return removed;
}

function readLink(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined;
  }
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

/** SIGKILL to the process group of the conmon whose pid file this is (it leads its own). */
export function killConmonGroup(conmonPidFile: string): void {
  const pid = Number(readOr(conmonPidFile).trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch { /* gone */ }
}

/** A stream's text to its end ("" if it breaks off). */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  const dec = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  } catch { /* cut off: what came so far */ }
  return text + dec.decode();
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** The exit code conmon recorded for `id`, if the container has exited. */
export function readExitCode(exitDir: string, id: string): number | undefined {
  try {
    const t = Deno.readTextFileSync(`${exitDir}/${id}`).trim();
    return t === "" ? undefined : Number(t);
  } catch {
    return undefined;
  }
}
