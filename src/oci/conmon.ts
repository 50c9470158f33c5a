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

/** Runs `runtime create` under conmon; resolves to the container's pid. */
export async function createWithConmon(sys: Syscalls, o: ConmonOptions): Promise<number> {
  const p = conmonPaths(o.workDir);
  // conmon lives as long as the container: it must take no fd of this
  // process's caller along (done once per process; cli/main.ts did it already).
  cloexecInheritedFds();
  Deno.mkdirSync(o.workDir, { recursive: true, mode: 0o700 });
  try {
    Deno.removeSync(p.syncFifo);
  } catch { /* not there */ }
  sys.mkfifo(p.syncFifo, 0o600);
  // The write end conmon inherits: opened without O_CLOEXEC, and closed here
  // right after the spawn, with no await between, so no other child of this
  // process can be started while it is open and take it along. Read-write, so
  // that neither this open nor the read end's below waits for the other side.
  const inherited = sys.open(p.syncFifo, O_RDWR);
  let fifo: Deno.FsFile | undefined;
  let child: Deno.ChildProcess;
  try {
    fifo = Deno.openSync(p.syncFifo, { read: true });
    child = new Deno.Command(o.conmon, {
      args: conmonArgs(o),
      // RUST_BACKTRACE=0: youki's errors are then one line, not a backtrace.
      env: { _OCI_SYNCPIPE: String(inherited), RUST_BACKTRACE: "0" },
      stdin: "null",
      stdout: "null",
      // conmon's own complaints (bad options, a runtime it cannot run), said
      // before it forks away from this pipe and points its stdio at /dev/null.
      stderr: "piped",
    }).spawn();
  } catch (e) {
    fifo?.close();
    throw e;
  } finally {
    sys.close(inherited);
  }
  trace("conmon: spawned");
  const stderrText = readAll(child.stderr);
  const timeoutMs = o.timeoutMs ?? callTimeoutMs(60_000);
  let timedOut = false;
  let text = "";
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    const dec = new TextDecoder();
    while (!text.includes("}")) {
      const n = await fifo.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  })();
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
    if (timedOut) {
      // conmon (and the runtime call it waits on) holds the FIFO's write end:
      // end its process group so the read sees EOF and nothing hangs on.
      killConmonGroup(p.conmonPidFile);
      await Promise.race([reading.catch(() => {}), new Promise((r) => setTimeout(r, 2_000))]);
    }
  } finally {
    clearTimeout(timer);
    try {
      fifo.close();
    } catch { /* closed */ }
    await child.status;
    // The pipe ends when conmon's daemonised half points its stderr at
    // /dev/null, just after its fork; never waited on for long.
    let late: ReturnType<typeof setTimeout> | undefined;
    stderr = await Promise.race([
      stderrText,
      new Promise<string>((r) => late = setTimeout(() => r(""), 1_000)),
    ]);
    clearTimeout(late);
    try {
      Deno.removeSync(p.syncFifo);
    } catch { /* gone */ }
  }
  const argv = [o.conmon, ...conmonArgs(o)];
  const line = text.split("\n").find((l) => l.trim().startsWith("{"));
  if (!line) {
    throw new RuntimeError(
      timedOut
        ? `Cannot create container: conmon gave no answer in ${timeoutMs} ms`
        : "Cannot create container: conmon exited without reporting",
      { argv, stderr, status: -1 },
    );
  }
  const msg = JSON.parse(line) as { data: number; message?: string };
  if (msg.data < 0) {
    throw new RuntimeError(
      `Cannot create container ${JSON.stringify(o.name)}: ${o.runtime.name} create failed`,
      {
        argv,
        stderr: msg.message ?? stderr,
        status: msg.data,
      },
    );
  }
  return msg.data;
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
