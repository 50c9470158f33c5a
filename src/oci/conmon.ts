/**
 * Container creation through conmon, the per-container monitor podman and
 * CRI-O use: it runs `<runtime> create`, holds the container's stdio, writes
 * the CRI log file and the exit code, and outlives the rkl command.
 *
 * conmon reports the container's pid (or the runtime's error) as JSON on a
 * "sync pipe" given as an inherited fd number. Deno hands a child only its
 * stdio and opens every fd of its own close-on-exec, so the pipe is a FIFO
 * that rkl opens through libc without that flag just for the spawn.
 * spawnConmon() is the one place that does it, for a container's create
 * (createWithConmon) and for an exec session (conmon_exec.ts) alike.
 */
import { callTimeoutMs } from "../timeouts.ts";
import { trace } from "../trace.ts";
import { RuntimeError } from "../errors.ts";
import { O_RDWR, type Syscalls } from "../sys/syscalls.ts";
import { cloexecInheritedFds } from "../sys/cloexec.ts";
import { type HostFs, realFs } from "../sys/fs.ts";
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
export function readExitCode(
  exitDir: string,
  id: string,
  fs: Pick<HostFs, "readTextFile"> = realFs,
): number | undefined {
  try {
    const t = fs.readTextFile(`${exitDir}/${id}`).trim();
    return t === "" ? undefined : Number(t);
  } catch {
    return undefined;
  }
}
