/**
 * The one exec path of the core. Every process rkl runs in a running
 * container is built (execProcessFor) and started here, whoever asks: the
 * CLI's `exec`, the CRI's ExecSync, Exec and Attach, the daemon's probes,
 * lifecycle hooks and compose healthchecks.
 *
 * - execSync: the runtime's exec with pipes, to its end or its time limit;
 *   the exit code and the output. A process past its limit is killed with
 *   what it started (the runtime adapter holds its pid file).
 * - execAttached: the runtime's exec with this process's own stdio (CLI).
 * - execStream: the process joined to a client's streams. Without a
 *   terminal, the runtime's exec with pipes; with one, conmon in exec mode
 *   (`--exec --exec-attach -t`), as podman does, because youki gives a
 *   terminal only to a detached exec with a console socket: conmon takes the
 *   pty from the runtime, waits for the process as its subreaper, reports
 *   the exit code on its sync pipe, and the client joins the session through
 *   conmon's attach socket. A client that goes away takes the process along.
 * - attachStream: the container's main process, through its conmon's attach
 *   socket (SOCK_SEQPACKET: each packet is a byte naming the pipe, 2 stdout
 *   or 3 stderr, then the data; what is written goes to its stdin).
 *
 * A terminal's size goes to conmon's `ctl` FIFO as "1 HEIGHT WIDTH".
 */
import { ConflictError, NoExecutableError, NotFoundError, RklError } from "../errors.ts";
import { execConmonSession } from "../oci/conmon_exec.ts";
import { ctlResizer } from "../oci/conmon_ctl.ts";
import { type ExecCaptured, execProcess, killTree } from "../oci/runtime.ts";
import type { OciProcess } from "../oci/spec.ts";
import { hostBoundingCaps } from "../oci/generate.ts";
import { SeqPacketSocket } from "../sys/seqpacket.ts";
import type { ContainerRecord } from "./container/types.ts";
import type { HostFs } from "../sys/fs.ts";
import type { Host } from "./host.ts";

export interface TermSize {
  width: number;
  height: number;
}

/** The container an exec joins: a record, or as much of one as exec reads. */
export type ExecTarget = Pick<ContainerRecord, "id" | "name" | "runtime"> & {
  dirs: Pick<ContainerRecord["dirs"], "config" | "conmonDir">;
};

/** What to run: the command, and how it differs from the container's own process. */
export interface ExecRequest {
  /** The container: its name (looked up in the store) or its record. */
  container: string | ExecTarget;
  argv: string[];
  /** KEY=VALUE entries over the container's environment. */
  env?: string[];
  /** Working directory; the container's by default. */
  cwd?: string;
  /** User; the container's by default. */
  user?: OciProcess["user"];
  /** Every capability the runtime can give (`docker exec --privileged`). */
  privileged?: boolean;
  tty?: boolean;
  /** The process reads stdin (attached and streaming forms). */
  stdin?: boolean;
  /** Sync form: the process is killed after this long; absent for no limit. */
  timeoutMs?: number;
  /** With `tty`: the terminal's first size. */
  size?: TermSize;
}

export type ExecResult = ExecCaptured;

/** A client's side of a streaming exec or attach (the CRI's streaming server gives one). */
export interface ExecStreams {
  /** Bytes for the process's stdin, in order; null at the client's EOF. Absent: no stdin. */
  stdin?: { next(): Promise<Uint8Array | null>; end(): void; readonly whenEnded: Promise<void> };
  stdout?: (b: Uint8Array) => Promise<void>;
  stderr?: (b: Uint8Array) => Promise<void>;
  /** Terminal sizes the client sends. */
  onResize(listener: (s: TermSize) => void): void;
  /** Settles when the client has gone away. */
  gone: Promise<void>;
}

/** "No limit" for a sync exec: a day (the CRI's ExecSync with timeout 0). */
export const NO_EXEC_LIMIT_MS = 24 * 3600 * 1000;

const QUIET = { RUST_BACKTRACE: "0" };
const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;

function targetOf(host: Host, c: string | ExecTarget): ExecTarget {
  if (typeof c !== "string") return c;
  const rec = host.store.get<ContainerRecord>("containers", c);
  if (!rec) throw new NotFoundError(`Cannot exec: no container ${JSON.stringify(c)}`);
  return rec;
}

/**
 * The process an exec runs: the container's own (user, groups,
 * capabilities, no_new_privs, rlimits, env, cwd) from its config.json, with
 * the request's command line and overrides, as docker and podman exec do.
 */
export function execProcessFor(
  t: Pick<ExecTarget, "dirs">,
  req: Omit<ExecRequest, "container">,
): OciProcess & { consoleSize?: TermSize } {
  const p: OciProcess & { consoleSize?: TermSize } = execProcess(t.dirs.config, req.argv, {
    tty: req.tty ?? false,
    env: req.env,
    cwd: req.cwd,
  });
  if (req.user) p.user = req.user;
  if (req.privileged) {
    const all = [...hostBoundingCaps()];
    p.capabilities = { bounding: all, effective: all, permitted: all, inheritable: all };
  }
  if (req.tty && req.size) p.consoleSize = { height: req.size.height, width: req.size.width };
  return p;
}

/** Runs the command to its end (or its time limit): exit code and output. */
export async function execSync(host: Host, req: ExecRequest): Promise<ExecResult> {
  const t = targetOf(host, req.container);
  const timeoutMs = req.timeoutMs ?? NO_EXEC_LIMIT_MS;
  return await host.runtimeFor(t.runtime).execCapture(t.id, execProcessFor(t, req), {
    timeoutMs,
    fileDir: t.dirs.conmonDir,
  });
}

/**
 * Runs the command with this process's stdio (stdin only with `req.stdin`);
 * returns its exit code. A command that is not in the container's root
 * filesystem is refused before the runtime is called, with why.
 */
export async function execAttached(
  host: Host,
  req: ExecRequest & { container: string | ContainerRecord },
): Promise<number> {
  const t = targetOf(host, req.container) as ContainerRecord;
  const process = execProcessFor(t, req);
  const missing = missingExecutable(host.fs, t.dirs.rootfs, t.dirs.config, process);
  if (missing) {
    throw new NoExecutableError(`Cannot exec in container ${JSON.stringify(t.name)}: ${missing}`);
  }
  return await host.runtimeFor(t.runtime).exec(t.id, process, {
    interactive: req.stdin ?? false,
    fileDir: t.dirs.conmonDir,
  });
}

/**
 * Why the runtime could not start `process.args[0]`, looked up as the
 * runtime will (PATH of the process env) in the container's rootfs, or
 * undefined when it may be there. Paths under a mount are not judged.
 */
function missingExecutable(
  fs: HostFs,
  rootfs: string,
  configPath: string,
  process: { args: string[]; env?: string[] },
): string | undefined {
  const cmd = process.args[0];
  let mounts: string[] = [];
  try {
    const cfg = JSON.parse(fs.readTextFile(configPath)) as {
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
      fs.lstat(`${rootfs}${p}`);
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

/** Runs the command joined to a client's streams; resolves to its exit code. */
export async function execStream(
  host: Host,
  req: ExecRequest & { container: string | ContainerRecord },
  io: ExecStreams,
): Promise<number> {
  const c = targetOf(host, req.container) as ContainerRecord;
  return req.tty ? await execTerminal(host, c, req, io) : await execPiped(host, c, req, io);
}

/** A running exec's process, killed (with what it started) when its client goes. */
function killExec(host: Host, p: { pidFile?: string; pid?: number }): void {
  if (p.pidFile) killTree(p.pidFile);
  if (p.pid) {
    try {
      host.proc.kill(p.pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** Copies the client's stdin into `write`, then calls `end` at its EOF. */
async function pumpStdin(
  io: ExecStreams,
  write: (b: Uint8Array) => Promise<unknown>,
  end: () => unknown,
): Promise<void> {
  if (!io.stdin) return;
  try {
    for (;;) {
      const b = await io.stdin.next();
      if (b === null) break;
      await write(b);
    }
  } catch { /* the process went away */ }
  await end();
}

async function pumpOut(r: ReadableStream<Uint8Array>, to?: (b: Uint8Array) => Promise<void>) {
  for await (const b of r) if (to) await to(b);
}

/** `runtime exec` with pipes; its exit code. */
async function execPiped(
  host: Host,
  c: ContainerRecord,
  req: ExecRequest,
  io: ExecStreams,
): Promise<number> {
  const runtime = host.runtimeFor(c.runtime);
  const file = `${c.dirs.conmonDir}/exec-${crypto.randomUUID()}.json`;
  const pidFile = `${file}.pid`;
  // The process goes as a 0600 file, never as --env arguments `ps` shows.
  host.fs.writeTextFile(file, JSON.stringify(execProcessFor(c, { ...req, tty: false })), {
    createNew: true,
    mode: 0o600,
  });
  try {
    // Direct: a child with live pipes to stream both ways; the command port runs to completion.
    const child = new Deno.Command(runtime.exe, {
      args: [...runtime.globalArgs(), "exec", "--pid-file", pidFile, "--process", file, c.id],
      env: QUIET,
      stdin: io.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let done = false;
    void io.gone.then(() => {
      if (!done) killExec(host, { pidFile }); // the client left: so does the process
    });
    const w = io.stdin ? child.stdin.getWriter() : undefined;
    const stdin = w
      ? pumpStdin(io, (b) => w.write(b), () => w.close().catch(() => {}))
      : Promise.resolve();
    const [status] = await Promise.all([
      child.status,
      pumpOut(child.stdout, io.stdout),
      pumpOut(child.stderr, io.stderr),
    ]);
    done = true;
    io.stdin?.end();
    await stdin;
    return status.code;
  } finally {
    for (const f of [file, pidFile]) {
      try {
        host.fs.remove(f);
      } catch { /* gone */ }
    }
  }
}

/** How long a terminal exec's last output may trail its exit (see joinSocket). */
const EXEC_DRAIN_MS = 1000;

/**
 * The client's output and input through an attach socket, until `until` settles or it ends.
 * With `drainMs`, output still on its way when `until` settles (a process that printed and
 * exited at once: conmon forwards what it left in the terminal after the exit) is read until
 * conmon closes the socket, for at most that long.
 */
async function joinSocket(
  sock: SeqPacketSocket,
  io: ExecStreams,
  until: Promise<unknown>,
  drainMs = 0,
): Promise<void> {
  const output = (async () => {
    for (;;) {
      const pkt = await sock.read();
      if (pkt === null) return;
      if (pkt.length < 2) continue;
      const data = pkt.slice(1);
      if (pkt[0] === STDOUT_PIPE) await io.stdout?.(data);
      else if (pkt[0] === STDERR_PIPE) await (io.stderr ?? io.stdout)?.(data);
    }
  })();
  const input = pumpStdin(io, (b) => sock.write(b), () => sock.shutdownWrite());
  const first = await Promise.race([
    output.then(() => "output", () => "output"),
    until.then(() => "until", () => "until"),
    io.gone.then(() => "gone"),
  ]);
  if (first === "until" && drainMs > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      output.catch(() => {}),
      io.gone,
      new Promise((r) => timer = setTimeout(r, drainMs)),
    ]);
    clearTimeout(timer);
  }
  sock.close();
  io.stdin?.end();
  await Promise.allSettled([output, input]);
}

/** exec with a terminal through conmon; its exit code. */
async function execTerminal(
  host: Host,
  c: ContainerRecord,
  req: ExecRequest,
  io: ExecStreams,
): Promise<number> {
  const sid = crypto.randomUUID().replaceAll("-", "");
  const dir = `${c.dirs.conmonDir}/exec-${sid}`;
  // The client's sizes: one known now (a terminal's, or one a CRI client sent with its streams)
  // makes the PTY at that size (consoleSize), so the process never sees 0x0; later ones go to
  // conmon's control FIFO once the process runs.
  let size = req.size;
  let resize: ((s: TermSize) => void) | undefined;
  io.onResize((s) => {
    if (resize) resize(s);
    else size = s;
  });
  host.fs.mkdir(dir, { mode: 0o700 });
  try {
    const processFile = `${dir}/process.json`;
    const writeProcess = () =>
      host.fs.writeTextFile(
        processFile,
        JSON.stringify(execProcessFor(c, { ...req, tty: true, size })),
        { mode: 0o600 },
      );
    writeProcess();
    const written = size;
    const session = await execConmonSession(host.sys, {
      conmon: host.conmon,
      runtime: host.runtimeFor(c.runtime),
      id: c.id,
      name: c.name,
      sessionId: sid,
      dir,
      socketDir: c.dirs.socketDir,
      processFile,
      stdin: req.stdin ?? false,
    });
    try {
      const sock = SeqPacketSocket.connect(session.attachSocket);
      // A CRI client's first size comes on its resize stream, often while conmon was starting;
      // the runtime reads the file only once start() lets it run.
      if (size !== written) writeProcess();
      let pid: number;
      try {
        pid = await session.start();
      } catch (e) {
        sock.close();
        throw new RklError(
          "EEXEC",
          `cannot exec ${JSON.stringify(req.argv)} in container ${c.name}: ${(e as Error).message}`,
          { cause: e },
        );
      }
      resize = ctlResizer(host.sys, session.ctl);
      // Sent again as well: a runtime that ignores consoleSize still gets the size at once.
      if (size) resize(size);
      const exited = session.exited();
      await joinSocket(sock, io, exited, EXEC_DRAIN_MS);
      // The client may have gone first: the process goes with it.
      const gone = await Promise.race([exited.then(() => false), io.gone.then(() => true)]);
      if (gone) killExec(host, { pid });
      const code = await exited;
      if (code === undefined) {
        throw new RklError(
          "EEXEC",
          `the exec session in container ${c.name} ended without an exit code`,
        );
      }
      return code;
    } finally {
      await session.close();
    }
  } finally {
    try {
      host.fs.remove(dir, { recursive: true });
    } catch { /* gone */ }
  }
}

/** Joins the container's main process through its conmon (what CRI Attach streams). */
export async function attachStream(
  host: Host,
  c: ContainerRecord,
  req: { tty: boolean },
  io: ExecStreams,
): Promise<void> {
  if (c.status !== "running") {
    throw new ConflictError(`container ${c.name} is ${c.status}, not running`);
  }
  if (req.tty !== !!c.terminal) {
    throw new ConflictError(
      `container ${c.name} was created with tty ${!!c.terminal}; attach asked for tty ${req.tty}`,
    );
  }
  let sock: SeqPacketSocket;
  try {
    sock = SeqPacketSocket.connect(`${c.dirs.bundle}/attach`);
  } catch (e) {
    throw new RklError("EEXEC", `cannot attach to container ${c.name}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (c.terminal) io.onResize(ctlResizer(host.sys, `${c.dirs.bundle}/ctl`));
  // Attach ends when the client's stdin does (kubelet), or with the container's output.
  const stdinDone = io.stdin ? io.stdin.whenEnded : new Promise<void>(() => {});
  await joinSocket(sock, io, stdinDone);
}
