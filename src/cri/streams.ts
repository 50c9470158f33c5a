/**
 * What runs behind the CRI's streams (streaming/server.ts):
 *
 * - exec without a terminal: `runtime exec` with pipes for stdin, stdout and
 *   stderr; its exit code is the outcome;
 * - exec with a terminal: conmon in exec mode (`--exec --exec-attach -t`),
 *   as podman does, because youki gives a terminal only to a detached exec
 *   with a console socket: conmon takes the pty from the runtime, waits for
 *   the process as its subreaper and reports the exit code on its sync
 *   pipe, and rkl joins the session through conmon's attach socket;
 * - attach: the container's conmon attach socket (SOCK_SEQPACKET: each
 *   packet is a byte naming the pipe, 2 stdout or 3 stderr, then the data;
 *   what rkl writes goes to the container's stdin);
 * - port forward: `rkl __netns-connect` per connection, in the sandbox's
 *   network namespace (a host-network sandbox is dialled directly).
 *
 * A terminal's size goes to conmon's `ctl` FIFO as "1 HEIGHT WIDTH".
 */
import type { Host } from "../workloads/host.ts";
import { type ContainerRecord, quickRefresh, removeAttachLinks } from "../workloads/container.ts";
import type { PodRecord } from "../workloads/pod.ts";
import { execProcess, killTree } from "../oci/runtime.ts";
import { SeqPacketSocket } from "../sys/seqpacket.ts";
import { connDuplex, type Duplex } from "./streaming/bytes.ts";
import {
  type AttachParams,
  type ExecParams,
  type ProcessIO,
  type StreamBackend,
  StreamError,
  type TermSize,
} from "./streaming/server.ts";

const QUIET = { RUST_BACKTRACE: "0" };
const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;

export interface StreamLookup {
  /** The running CRI container `id` names (NotFound/FailedPrecondition as StreamError). */
  container(id: string): Promise<ContainerRecord>;
  sandbox(id: string): PodRecord;
}

export function streamBackend(host: Host, lookup: StreamLookup): StreamBackend {
  return {
    async exec(p, io) {
      const c = await lookup.container(p.containerId);
      return p.tty ? await execTerminal(host, c, p, io) : await execPiped(host, c, p, io);
    },
    async attach(p, io) {
      const c = await lookup.container(p.containerId);
      await attach(c, p, io);
    },
    dial(sandboxId, port) {
      const pod = lookup.sandbox(sandboxId);
      if (pod.hostNetwork || !pod.netns) return dialHost(port);
      return dialInNetns(host, pod.netns, port);
    },
  };
}

/** Copies the client's stdin into `write`, then calls `end` at its EOF. */
async function pumpStdin(
  io: ProcessIO,
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

/** `runtime exec` of p.cmd with pipes; its exit code. */
async function execPiped(
  host: Host,
  c: ContainerRecord,
  p: ExecParams,
  io: ProcessIO,
): Promise<number> {
  const runtime = host.runtimeFor(c.runtime);
  const file = `${c.dirs.conmonDir}/exec-${crypto.randomUUID()}.json`;
  const pidFile = `${file}.pid`;
  Deno.writeTextFileSync(file, JSON.stringify(execProcess(c.dirs.config, p.cmd)), {
    createNew: true,
    mode: 0o600,
  });
  try {
    const child = new Deno.Command(runtime.exe, {
      args: [...runtime.globalArgs(), "exec", "--pid-file", pidFile, "--process", file, c.id],
      env: QUIET,
      stdin: io.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let done = false;
    void io.gone.then(() => {
      if (!done) killTree(pidFile); // the client left: so does the process
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
        Deno.removeSync(f);
      } catch { /* gone */ }
    }
  }
}

/** Reads one `{"data": N, "message": "…"}` line from a conmon pipe. */
async function readSync(
  f: Deno.FsFile,
  carry: { text: string },
): Promise<{ data: number; message?: string } | undefined> {
  const buf = new Uint8Array(4096);
  const dec = new TextDecoder();
  for (;;) {
    const end = carry.text.indexOf("}");
    if (end >= 0) {
      const line = carry.text.slice(carry.text.indexOf("{"), end + 1);
      carry.text = carry.text.slice(end + 1);
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    }
    const n = await f.read(buf);
    if (n === null) return undefined;
    carry.text += dec.decode(buf.subarray(0, n), { stream: true });
  }
}

/** Sends terminal sizes to conmon's control FIFO. */
function resizer(ctlPath: string): (s: TermSize) => void {
  let ctl: Promise<Deno.FsFile | undefined> | undefined;
  return (s) => {
    ctl ??= Deno.open(ctlPath, { write: true }).catch(() => undefined);
    const h = Math.min(s.height, 1000), w = Math.min(s.width, 1000);
    void ctl.then((f) => f?.write(new TextEncoder().encode(`1 ${h} ${w}\n`))).catch(() => {});
  };
}

/** The client's output and input through an attach socket, until `until` settles or it ends. */
async function joinSocket(
  sock: SeqPacketSocket,
  io: ProcessIO,
  until: Promise<unknown>,
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
  await Promise.race([output, until, io.gone]);
  sock.close();
  io.stdin?.end();
  await Promise.allSettled([output, input]);
}

/** exec with a terminal through conmon; its exit code. */
async function execTerminal(
  host: Host,
  c: ContainerRecord,
  p: ExecParams,
  io: ProcessIO,
): Promise<number> {
  const runtime = host.runtimeFor(c.runtime);
  const sid = crypto.randomUUID().replaceAll("-", "");
  const dir = `${c.dirs.conmonDir}/exec-${sid}`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  const [syncFifo, startFifo, attachFifo] = ["sync", "start", "attached"].map((n) =>
    `${dir}/${n}.fifo`
  );
  const opened: Deno.FsFile[] = [];
  let conmonPid: number | undefined;
  let execPid: number | undefined;
  try {
    for (const f of [syncFifo, startFifo, attachFifo]) host.sys.mkfifo(f, 0o600);
    const process = execProcess(c.dirs.config, p.cmd, { tty: true });
    Deno.writeTextFileSync(`${dir}/process.json`, JSON.stringify(process), { mode: 0o600 });
    const args = [
      "--api-version",
      "1",
      "-c",
      c.id,
      "-u",
      sid,
      "-n",
      c.name,
      "-r",
      runtime.exe,
      "-b",
      dir,
      "-p",
      `${dir}/pid`,
      "-P",
      `${dir}/conmon.pid`,
      "-l",
      "none",
      "--exit-dir",
      dir,
      "--socket-dir-path",
      c.dirs.socketDir,
      "--exec",
      "--exec-process-spec",
      `${dir}/process.json`,
      "--exec-attach",
      "--terminal",
      "--syslog",
      "--log-level",
      "error",
    ]; // deno-fmt-ignore
    if (p.stdin) args.push("--stdin");
    for (const a of runtime.globalArgs()) args.push("--runtime-arg", a);
    // Fixed shell line (no user text): the three FIFOs become fds 3, 4 and 5.
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec 3<>"$0" 4<>"$1" 5<>"$2" 2>>"$3"; shift 3; exec "$@"',
        syncFifo,
        startFifo,
        attachFifo,
        `${dir}/conmon.err`,
        host.conmon,
        ...args,
      ], // deno-fmt-ignore
      cwd: dir,
      env: { ...QUIET, _OCI_SYNCPIPE: "3", _OCI_STARTPIPE: "4", _OCI_ATTACHPIPE: "5" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const start = await Deno.open(startFifo, { write: true });
    opened.push(start);
    const attached = await Deno.open(attachFifo, { read: true });
    opened.push(attached);
    const sync = await Deno.open(syncFifo, { read: true });
    opened.push(sync);
    const go = new TextEncoder().encode("0");
    await start.write(go); // conmon may fork and set up its attach socket
    await child.status; // the first conmon exits once it has forked
    conmonPid = Number(Deno.readTextFileSync(`${dir}/conmon.pid`).trim()) || undefined;
    const ready = await readSync(attached, { text: "" });
    if (!ready || ready.data !== 0) {
      throw new StreamError(`conmon did not start the exec session: ${errText(dir)}`);
    }
    const sock = SeqPacketSocket.connect(`${dir}/attach`);
    await start.write(go); // now the runtime may exec the process
    const carry = { text: "" };
    const pidMsg = await readSync(sync, carry);
    if (!pidMsg || pidMsg.data <= 0) {
      sock.close();
      throw new StreamError(
        `cannot exec ${JSON.stringify(p.cmd)} in container ${c.name}: ${
          pidMsg?.message?.trim() || errText(dir)
        }`,
      );
    }
    execPid = pidMsg.data;
    io.onResize(resizer(`${dir}/ctl`));
    const exited = readSync(sync, carry);
    await joinSocket(sock, io, exited);
    // The client may have gone first: the process goes with it.
    const gone = await Promise.race([exited.then(() => false), io.gone.then(() => true)]);
    if (gone) {
      try {
        Deno.kill(execPid, "SIGKILL");
      } catch { /* gone */ }
    }
    const exit = await exited;
    if (!exit) {
      throw new StreamError(`the exec session in container ${c.name} ended without an exit code`);
    }
    return exit.data;
  } finally {
    for (const f of opened) {
      try {
        f.close();
      } catch { /* closed */ }
    }
    if (conmonPid) {
      await waitGone(conmonPid, 2_000);
      try {
        Deno.kill(conmonPid, "SIGKILL");
      } catch { /* gone */ }
    }
    removeAttachLinks(host, c.dirs.socketDir, sid, dir);
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* gone */ }
  }
}

function errText(dir: string): string {
  try {
    return Deno.readTextFileSync(`${dir}/conmon.err`).trim() || "no message from conmon";
  } catch {
    return "no message from conmon";
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

/** Attach to the container's main process through its conmon. */
async function attach(c: ContainerRecord, p: AttachParams, io: ProcessIO): Promise<void> {
  if (c.status !== "running") {
    throw new StreamError(`container ${c.name} is ${c.status}, not running`, "BadRequest");
  }
  if (p.tty !== !!c.terminal) {
    throw new StreamError(
      `container ${c.name} was created with tty ${!!c.terminal}; attach asked for tty ${p.tty}`,
      "BadRequest",
    );
  }
  let sock: SeqPacketSocket;
  try {
    sock = SeqPacketSocket.connect(`${c.dirs.bundle}/attach`);
  } catch (e) {
    throw new StreamError(`cannot attach to container ${c.name}: ${(e as Error).message}`);
  }
  if (c.terminal) io.onResize(resizer(`${c.dirs.bundle}/ctl`));
  // Attach ends when the client's stdin does (kubelet), or with the container's output.
  const stdinDone = io.stdin ? io.stdin.whenEnded : new Promise<void>(() => {});
  await joinSocket(sock, io, stdinDone);
}

async function dialHost(port: number): Promise<Duplex & { closeWrite(): Promise<void> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return { ...connDuplex(conn), closeWrite: () => conn.closeWrite() };
}

/** A connection to 127.0.0.1:port in `netns`, through the `__netns-connect` helper. */
async function dialInNetns(
  host: Host,
  netns: string,
  port: number,
): Promise<Duplex & { closeWrite(): Promise<void> }> {
  const argv = host.selfArgv;
  if (!argv) throw new StreamError("this host cannot start helper processes");
  // The path comes from a record on disk: only a pin rkl makes is entered.
  const pins = `${host.paths.runRoot}/netns/`;
  if (!netns.startsWith(pins) || netns.slice(pins.length).includes("/")) {
    throw new StreamError(`sandbox netns ${JSON.stringify(netns)} is not under ${pins}`);
  }
  const child = new Deno.Command(argv[0], {
    args: [...argv.slice(1), "__netns-connect", netns, String(port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const writer = child.stdin.getWriter();
  // Its first stderr line says "connected", or why not.
  const err = await new Response(child.stderr).body!.pipeThrough(new TextDecoderStream())
    .getReader().read();
  const said = (err.value ?? "").trim();
  if (said !== "connected") {
    const status = await child.status;
    throw new StreamError(said || `the connect helper exited with ${status.code}`);
  }
  return {
    async read() {
      const r = await reader.read().catch(() => ({ done: true, value: undefined }));
      return r.done ? null : r.value!;
    },
    write: (b) => writer.write(b),
    closeWrite: () => writer.close().catch(() => {}),
    close() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      void child.status.catch(() => {});
    },
  };
}

export { quickRefresh };
