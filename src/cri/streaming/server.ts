/**
 * The CRI streaming server: Exec, Attach and PortForward answer a URL on
 * this server (127.0.0.1, a port the kernel picks) holding a one-time token
 * for the request, as the kubelet's own streaming server does. A client
 * then upgrades an HTTP/1.1 request on that URL to SPDY/3.1 or to a
 * WebSocket and speaks the Kubernetes channel protocols over it:
 *
 * - exec and attach: SPDY streams (`streamtype` error, stdin, stdout,
 *   stderr, resize; protocols v4/v3/v2/channel.k8s.io) or WebSocket
 *   channels 0-4 (v5/v4.channel.k8s.io, channel.k8s.io); the outcome is a
 *   metav1.Status on the error stream (v4 and later) or its text (earlier);
 * - port forward: SPDY stream pairs (`streamtype` data and error, `port`,
 *   `requestid`; portforward.k8s.io), over the upgraded connection or
 *   tunnelled in a WebSocket (SPDY/3.1+portforward.k8s.io).
 *
 * What runs behind a stream (the runtime's exec, conmon's attach socket,
 * a connection inside the sandbox's network namespace) is the backend's.
 *
 * Any local user can connect to 127.0.0.1, so a connection that has not
 * shown a valid token yet is held to limits: it has 10 s to send its whole
 * request head (Go's ReadHeaderTimeout, absolute: bytes trickled in do not
 * extend it), and at most 128 connections wait for theirs; the 129th closes
 * the oldest waiting one. A client that sends its request as soon as
 * it connects (every Kubernetes client does) is then only put off by a
 * flood of 128 new connections within that moment, and the descriptors the
 * whole flood holds stay at 128, whatever the daemon's limit. Upgraded
 * connections (a token was used) end after 4 h with no byte either way, the
 * kubelet's --streaming-connection-idle-timeout default. Accepting never
 * stops on EMFILE (src/sys/accept.ts).
 */
import { ChunkQueue, connDuplex, type Duplex } from "./bytes.ts";
import { RST, SpdySession, type SpdyStream } from "./spdy.ts";
import { messageDuplex, upgradeResponse, WebSocketConn } from "./websocket.ts";
import { acceptLoop } from "../../sys/accept.ts";

export interface TermSize {
  width: number;
  height: number;
}

/** What a backend gets for one exec or attach. */
export interface ProcessIO {
  /** Bytes for the process's stdin, in order; null at the client's EOF. Absent: no stdin. */
  stdin?: ChunkQueue;
  stdout?: (b: Uint8Array) => Promise<void>;
  stderr?: (b: Uint8Array) => Promise<void>;
  tty: boolean;
  /** Terminal sizes the client sends; the latest is replayed to a late listener. */
  onResize(listener: (s: TermSize) => void): void;
  /** Settles when the client has gone away. */
  gone: Promise<void>;
}

export interface ExecParams {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export type AttachParams = Omit<ExecParams, "cmd">;

export interface PortForwardParams {
  sandboxId: string;
  /** Ports the request allowed; empty allows any. */
  ports: number[];
}

/** A failure with the reason and message of the metav1.Status that reports it. */
export class StreamError extends Error {
  constructor(message: string, readonly reason = "InternalError", readonly exitCode?: number) {
    super(message);
  }
}

export interface StreamBackend {
  /** Runs `cmd`; resolves to its exit code. */
  exec(p: ExecParams, io: ProcessIO): Promise<number>;
  /** Joins the container's main process until the client's stdin ends or the process does. */
  attach(p: AttachParams, io: ProcessIO): Promise<void>;
  /** A connection to `port` inside the sandbox's network namespace. */
  dial(sandboxId: string, port: number): Promise<Duplex & { closeWrite(): Promise<void> }>;
}

type Pending =
  | { kind: "exec"; params: ExecParams; expires: number }
  | { kind: "attach"; params: AttachParams; expires: number }
  | { kind: "portforward"; params: PortForwardParams; expires: number };

/** A token's life: the kubelet's streaming server keeps requests for a minute. */
const TOKEN_TTL_MS = 60_000;
/** How long a client has to open the streams it asked for. */
const STREAM_CREATION_MS = 30_000;
const MAX_HEAD = 16 * 1024;

/** Limits on connections (the defaults are what the daemon uses; tests shorten them). */
export interface StreamingLimits {
  /** How long a connection has to send its whole request head (ms). */
  headerTimeoutMs: number;
  /** Connections waiting for their request head at once; a new one closes the oldest. */
  maxUnauthenticated: number;
  /** An upgraded connection with no byte read or written for this long is closed (ms). */
  idleTimeoutMs: number;
}

export const STREAMING_LIMITS: StreamingLimits = {
  headerTimeoutMs: 10_000,
  maxUnauthenticated: 128,
  idleTimeoutMs: 4 * 3600_000,
};

export interface StreamingOptions extends Partial<StreamingLimits> {
  /** 127.0.0.1's port (0, the default: the kernel picks one). */
  port?: number;
  log?: (line: string) => void;
}

/** What the server did to connections that showed no valid request (for tests and logs). */
export interface StreamingStats {
  /** Connections accepted in all. */
  accepted: number;
  /** Connections waiting for their request head now. */
  waiting: number;
  /** Closed to make room for a newer one. */
  evicted: number;
  /** Closed at the header deadline. */
  headerTimeouts: number;
  /** Upgraded connections closed for being idle. */
  idleTimeouts: number;
}

const REMOTECOMMAND_SPDY = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
const REMOTECOMMAND_WS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
const PORTFORWARD = "portforward.k8s.io";
const PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io";

interface Head {
  method: string;
  path: string;
  headers: Map<string, string[]>;
}

function header(h: Head, name: string): string {
  return (h.headers.get(name) ?? []).join(",");
}

/** A header's comma-separated values, in order. */
function listHeader(h: Head, name: string): string[] {
  return header(h, name).split(",").map((s) => s.trim()).filter(Boolean);
}

function parseHead(text: string): Head | undefined {
  const lines = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!m) return undefined;
  const headers = new Map<string, string[]>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i <= 0) return undefined;
    const k = l.slice(0, i).trim().toLowerCase();
    headers.set(k, [...headers.get(k) ?? [], l.slice(i + 1).trim()]);
  }
  return { method: m[1], path: m[2], headers };
}

/** Reads an HTTP/1.1 request head; what came after it is handed back. */
async function readHead(conn: Deno.Conn): Promise<{ head?: Head; rest: Uint8Array }> {
  const buf = new Uint8Array(MAX_HEAD);
  let len = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(len));
    if (n === null) return { rest: new Uint8Array(0) };
    len += n;
    const text = new TextDecoder("latin1").decode(buf.subarray(0, len));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      return { head: parseHead(text.slice(0, end)), rest: buf.slice(end + 4, len) };
    }
    if (len === MAX_HEAD) return { rest: new Uint8Array(0) };
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

async function respond(conn: Deno.Conn, code: number, reason: string, body: string) {
  const b = new TextEncoder().encode(body + "\n");
  const text = `HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${b.length}\r\nConnection: close\r\n\r\n`;
  const d = connDuplex(conn);
  await d.write(new TextEncoder().encode(text)).catch(() => {});
  await d.write(b).catch(() => {});
  d.close();
}

/** The metav1.Status JSON for an outcome (v4 and later). */
export function statusJson(err?: StreamError): string {
  if (!err) return JSON.stringify({ metadata: {}, status: "Success" });
  const s: Record<string, unknown> = {
    metadata: {},
    status: "Failure",
    message: err.message,
    reason: err.reason,
  };
  if (err.exitCode !== undefined) {
    s.details = { causes: [{ reason: "ExitCode", message: String(err.exitCode) }] };
  }
  return JSON.stringify(s);
}

/** Decodes a stream of concatenated JSON objects ({"Width":…,"Height":…}) as it arrives. */
export class ResizeDecoder {
  #text = "";
  push(bytes: Uint8Array, emit: (s: TermSize) => void): void {
    this.#text += new TextDecoder().decode(bytes);
    if (this.#text.length > 64 * 1024) this.#text = "";
    for (;;) {
      const end = this.#text.indexOf("}");
      if (end < 0) return;
      const obj = this.#text.slice(0, end + 1);
      this.#text = this.#text.slice(end + 1);
      try {
        const v = JSON.parse(obj.slice(obj.indexOf("{"))) as { Width?: unknown; Height?: unknown };
        const width = Number(v.Width), height = Number(v.Height);
        if (
          Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0 &&
          width < 65536 && height < 65536
        ) emit({ width, height });
      } catch { /* not a size: skipped */ }
    }
  }
}

class Resizes {
  #last?: TermSize;
  #listener?: (s: TermSize) => void;
  emit = (s: TermSize) => {
    this.#last = s;
    this.#listener?.(s);
  };
  on = (l: (s: TermSize) => void) => {
    this.#listener = l;
    if (this.#last) l(this.#last);
  };
}

export class StreamingServer {
  readonly #pending = new Map<string, Pending>();
  readonly #listener: Deno.TcpListener;
  readonly #serving: Promise<void>;
  readonly #conns = new Set<Deno.Conn>();
  /** Connections that have not shown a valid request yet, oldest first, with their deadline. */
  readonly #waiting = new Map<Deno.Conn, ReturnType<typeof setTimeout>>();
  readonly #limits: StreamingLimits;
  readonly #stats: Omit<StreamingStats, "waiting"> = {
    accepted: 0,
    evicted: 0,
    headerTimeouts: 0,
    idleTimeouts: 0,
  };

  private constructor(
    private readonly backend: StreamBackend,
    listener: Deno.TcpListener,
    options: StreamingOptions,
  ) {
    this.#listener = listener;
    this.#limits = {
      headerTimeoutMs: options.headerTimeoutMs ?? STREAMING_LIMITS.headerTimeoutMs,
      maxUnauthenticated: Math.max(
        1,
        options.maxUnauthenticated ?? STREAMING_LIMITS.maxUnauthenticated,
      ),
      idleTimeoutMs: options.idleTimeoutMs ?? STREAMING_LIMITS.idleTimeoutMs,
    };
    this.#serving = acceptLoop(listener, (conn) => this.#admit(conn), {
      label: "CRI streaming",
      log: options.log,
    });
  }

  /** Listens on 127.0.0.1 (port 0: the kernel picks one). */
  static start(backend: StreamBackend, options: StreamingOptions = {}): StreamingServer {
    return new StreamingServer(
      backend,
      Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 }),
      options,
    );
  }

  stats(): StreamingStats {
    return { ...this.#stats, waiting: this.#waiting.size };
  }

  get address(): string {
    const a = this.#listener.addr as Deno.NetAddr;
    return `http://${a.hostname}:${a.port}`;
  }

  #register(kind: Pending["kind"], params: unknown): string {
    const now = Date.now();
    for (const [t, p] of this.#pending) if (p.expires < now) this.#pending.delete(t);
    const b = crypto.getRandomValues(new Uint8Array(18));
    const token = btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_");
    this.#pending.set(token, { kind, params, expires: now + TOKEN_TTL_MS } as Pending);
    return `${this.address}/${kind}/${token}`;
  }

  exec(p: ExecParams): string {
    return this.#register("exec", p);
  }

  attach(p: AttachParams): string {
    return this.#register("attach", p);
  }

  portForward(p: PortForwardParams): string {
    return this.#register("portforward", p);
  }

  /** Serves `conn`; a promise when it closed another one, to be awaited before the next accept. */
  #admit(conn: Deno.Conn): Promise<void> | undefined {
    this.#stats.accepted++;
    let evicted = false;
    if (this.#waiting.size >= this.#limits.maxUnauthenticated) {
      const [oldest] = this.#waiting.keys();
      this.#stats.evicted++;
      this.#drop(oldest);
      evicted = true;
    }
    this.#waiting.set(
      conn,
      setTimeout(() => {
        this.#stats.headerTimeouts++;
        this.#drop(conn);
      }, this.#limits.headerTimeoutMs),
    );
    this.#conns.add(conn);
    this.#handle(conn).catch(() => {}).finally(() => {
      this.#admitted(conn);
      this.#conns.delete(conn);
      closeQuietly(conn);
    });
    // A flood accepted back to back never returns to the event loop, and the evicted
    // sockets' descriptors stay taken until it does (measured: EMFILE at a 200 limit
    // with 128 waiting; none with this).
    return evicted ? new Promise((r) => setTimeout(r, 0)) : undefined;
  }

  /** `conn` showed a valid request (or is done): no header deadline, no eviction. */
  #admitted(conn: Deno.Conn): void {
    clearTimeout(this.#waiting.get(conn));
    this.#waiting.delete(conn);
  }

  /** Ends a connection that is still waiting for its request head (its reader then fails). */
  #drop(conn: Deno.Conn): void {
    this.#admitted(conn);
    closeQuietly(conn);
  }

  /**
   * `conn` after its upgrade, closed once no byte went either way for the idle
   * timeout. `stop` ends the watch.
   */
  #watched(conn: Deno.Conn, rest: Uint8Array): { d: Duplex; stop(): void } {
    const inner = connDuplex(conn, rest);
    const idle = this.#limits.idleTimeoutMs;
    let last = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      const left = last + idle - Date.now();
      if (left > 0) {
        timer = setTimeout(check, left);
        return;
      }
      this.#stats.idleTimeouts++;
      inner.close();
    };
    timer = setTimeout(check, idle);
    const touch = () => last = Date.now();
    return {
      d: {
        read: async () => {
          const b = await inner.read();
          touch();
          return b;
        },
        write: async (b) => {
          touch();
          await inner.write(b);
          touch();
        },
        close: () => inner.close(),
      },
      stop: () => clearTimeout(timer),
    };
  }

  async #handle(conn: Deno.Conn): Promise<void> {
    const { head, rest } = await readHead(conn);
    if (!head) return await respond(conn, 400, "Bad Request", "malformed request");
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)(\?.*)?$/.exec(head.path);
    const pending = m ? this.#pending.get(m[2]) : undefined;
    if (!m || !pending || pending.kind !== m[1] || pending.expires < Date.now()) {
      return await respond(conn, 404, "Not Found", "unknown or expired streaming request");
    }
    this.#pending.delete(m[2]); // one use
    this.#admitted(conn);
    const watch = this.#watched(conn, rest);
    try {
      return await this.#serveUpgrade(conn, head, watch.d, pending);
    } finally {
      watch.stop();
    }
  }

  /** A request with a valid token: the upgrade and the protocol over it, on `d`. */
  async #serveUpgrade(conn: Deno.Conn, head: Head, d: Duplex, pending: Pending): Promise<void> {
    const upgrade = header(head, "upgrade").toLowerCase();
    const ws = upgrade === "websocket";
    if (!ws && upgrade !== "spdy/3.1") {
      return await respond(
        conn,
        400,
        "Bad Request",
        "this URL needs an upgrade to SPDY/3.1 or a WebSocket",
      );
    }
    if (pending.kind === "portforward") {
      if (ws) {
        if (!listHeader(head, "sec-websocket-protocol").includes(PORTFORWARD_TUNNEL)) {
          return await respond(
            conn,
            400,
            "Bad Request",
            `port forward over a WebSocket needs protocol ${PORTFORWARD_TUNNEL}`,
          );
        }
        const w = await this.#acceptWebSocket(conn, head, d, PORTFORWARD_TUNNEL);
        if (!w) return;
        return await this.#portForward(messageDuplex(w), pending.params);
      }
      const version = listHeader(head, "x-stream-protocol-version");
      if (!version.includes(PORTFORWARD)) {
        return await respond(
          conn,
          403,
          "Forbidden",
          `unsupported protocol ${version.join(", ") || "(none)"}; supports ${PORTFORWARD}`,
        );
      }
      await d.write(new TextEncoder().encode(
        `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${PORTFORWARD}\r\n\r\n`,
      ));
      return await this.#portForward(d, pending.params);
    }
    const params = pending.params;
    const run = (io: ProcessIO) =>
      pending.kind === "exec"
        ? this.backend.exec(pending.params, io)
        : this.backend.attach(pending.params, io).then(() => 0);
    if (ws) {
      const offered = listHeader(head, "sec-websocket-protocol");
      const protocol = offered.find((p) => REMOTECOMMAND_WS.includes(p));
      if (!protocol) {
        return await respond(
          conn,
          400,
          "Bad Request",
          `requested protocol(s) ${offered.join(", ") || "(none)"} are not supported; supports ${
            REMOTECOMMAND_WS.join(", ")
          }`,
        );
      }
      const w = await this.#acceptWebSocket(conn, head, d, protocol);
      if (!w) return;
      return await wsRemoteCommand(w, protocol, params, run);
    }
    const offered = listHeader(head, "x-stream-protocol-version");
    const version = offered.find((p) => REMOTECOMMAND_SPDY.includes(p)) ??
      (offered.length === 0 ? "channel.k8s.io" : undefined);
    if (!version) {
      return await respond(
        conn,
        403,
        "Forbidden",
        `unsupported protocol(s) ${offered.join(", ")}; supports ${REMOTECOMMAND_SPDY.join(", ")}`,
      );
    }
    await d.write(new TextEncoder().encode(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${version}\r\n\r\n`,
    ));
    await spdyRemoteCommand(d, version, params, run);
  }

  async #acceptWebSocket(
    conn: Deno.Conn,
    head: Head,
    d: Duplex,
    protocol: string,
  ): Promise<WebSocketConn | undefined> {
    const key = header(head, "sec-websocket-key");
    if (head.method !== "GET" || !key || header(head, "sec-websocket-version") !== "13") {
      await respond(conn, 400, "Bad Request", "not a WebSocket version 13 handshake");
      return undefined;
    }
    await d.write(new TextEncoder().encode(upgradeResponse(key, protocol)));
    return new WebSocketConn(d);
  }

  async #portForward(d: Duplex, params: PortForwardParams): Promise<void> {
    const pairs = new Map<
      string,
      { data?: SpdyStream; error?: SpdyStream; timer: ReturnType<typeof setTimeout> }
    >();
    const work: Promise<void>[] = [];
    const session = new SpdySession(d, (s) => {
      const type = s.header("streamtype");
      if (type !== "data" && type !== "error") return void s.resetStream(RST.REFUSED_STREAM);
      // Pairs are matched by requestid; a client without one pairs by stream id.
      const rid = s.header("requestid") ?? String(type === "data" ? s.id - 2 : s.id);
      let pair = pairs.get(rid);
      if (!pair) {
        const timer = setTimeout(() => {
          const p = pairs.get(rid);
          pairs.delete(rid);
          void p?.data?.resetStream();
          void p?.error?.resetStream();
        }, STREAM_CREATION_MS);
        pair = { timer };
        pairs.set(rid, pair);
      }
      pair[type] = s;
      if (pair.data && pair.error) {
        clearTimeout(pair.timer);
        pairs.delete(rid);
        work.push(this.#forwardPair(params, pair.data, pair.error));
      }
    });
    await session.serve();
    for (const p of pairs.values()) clearTimeout(p.timer);
    await Promise.allSettled(work);
  }

  async #forwardPair(params: PortForwardParams, data: SpdyStream, error: SpdyStream) {
    const text = data.header("port") ?? "";
    const port = Number(text);
    const fail = async (msg: string) => {
      await error.write(new TextEncoder().encode(msg)).catch(() => {});
      await error.close();
      await data.close();
    };
    if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
      return await fail(`invalid port ${JSON.stringify(text)}`);
    }
    if (params.ports.length > 0 && !params.ports.includes(port)) {
      return await fail(`port ${port} is not one this request forwards`);
    }
    let target: Awaited<ReturnType<StreamBackend["dial"]>>;
    try {
      target = await this.backend.dial(params.sandboxId, port);
    } catch (e) {
      return await fail(
        `error forwarding port ${port} to pod ${params.sandboxId}: ${(e as Error).message}`,
      );
    }
    const up = (async () => {
      for (;;) {
        const b = await data.incoming.next();
        if (b === null) break;
        await target.write(b);
      }
      await target.closeWrite().catch(() => {});
    })().catch(() => target.close());
    const down = (async () => {
      for (;;) {
        const b = await target.read();
        if (b === null) break;
        await data.write(b);
      }
    })().catch(() => {});
    await down;
    await data.close();
    await Promise.race([up, new Promise((r) => setTimeout(r, 1_000))]);
    target.close();
    await error.close();
  }

  /** Stops listening and ends every open connection. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      this.#admitted(c);
      closeQuietly(c);
    }
    await this.#serving;
  }
}

/** exec/attach over SPDY streams. */
async function spdyRemoteCommand(
  d: Duplex,
  version: string,
  p: AttachParams,
  run: (io: ProcessIO) => Promise<number>,
): Promise<void> {
  // A terminal has no separate stderr (kubelet drops it from v2 on).
  const stderrWanted = p.stderr && !(p.tty && version !== "channel.k8s.io");
  const want = new Set(["error"]);
  if (p.stdin) want.add("stdin");
  if (p.stdout) want.add("stdout");
  if (stderrWanted) want.add("stderr");
  if (p.tty && (version === "v3.channel.k8s.io" || version === "v4.channel.k8s.io")) {
    want.add("resize");
  }
  const got = new Map<string, SpdyStream>();
  let ready!: () => void;
  const allThere = new Promise<void>((r) => ready = r);
  const session = new SpdySession(d, (s) => {
    const type = s.header("streamtype") ?? "";
    if (!want.has(type) || got.has(type)) return void s.resetStream(RST.REFUSED_STREAM);
    got.set(type, s);
    if (got.size === want.size) ready();
  });
  const serving = session.serve();
  const timedOut = await Promise.race([
    allThere.then(() => false),
    serving.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(true), STREAM_CREATION_MS)),
  ]);
  if (timedOut) {
    session.close();
    return;
  }
  const resizes = new Resizes();
  const resize = got.get("resize");
  if (resize) {
    const dec = new ResizeDecoder();
    void (async () => {
      for (;;) {
        const b = await resize.incoming.next();
        if (b === null) return;
        dec.push(b, resizes.emit);
      }
    })();
  }
  const writer = (s?: SpdyStream) => s ? (b: Uint8Array) => s.write(b).catch(() => {}) : undefined;
  const io: ProcessIO = {
    stdin: got.get("stdin")?.incoming,
    stdout: writer(got.get("stdout")),
    stderr: writer(got.get("stderr")),
    tty: p.tty,
    onResize: resizes.on,
    gone: serving,
  };
  const outcome = await outcomeOf(run(io));
  const errStream = got.get("error")!;
  if (version === "v4.channel.k8s.io") {
    await errStream.write(new TextEncoder().encode(statusJson(outcome))).catch(() => {});
  } else if (outcome) {
    await errStream.write(new TextEncoder().encode(outcome.message)).catch(() => {});
  }
  for (const s of got.values()) await s.close();
  await session.goAway();
}

/** exec/attach over WebSocket channels. */
async function wsRemoteCommand(
  w: WebSocketConn,
  protocol: string,
  p: AttachParams,
  run: (io: ProcessIO) => Promise<number>,
): Promise<void> {
  const send = (ch: number) => (b: Uint8Array) => {
    const m = new Uint8Array(b.length + 1);
    m[0] = ch;
    m.set(b, 1);
    return w.sendBinary(m).catch(() => {});
  };
  // The lowest channel rkl writes gets an empty message: the client then knows it is open.
  await send(p.stdout ? 1 : p.stderr ? 2 : 3)(new Uint8Array(0));
  const stdin = p.stdin ? new ChunkQueue() : undefined;
  const resizes = new Resizes();
  const dec = new ResizeDecoder();
  const reading = (async () => {
    for (;;) {
      const m = await w.receive();
      if (!m) break;
      if (m.data.length === 0) continue;
      const ch = m.data[0], body = m.data.subarray(1);
      if (ch === 0) stdin?.push(body);
      else if (ch === 4) dec.push(body, resizes.emit);
      else if (ch === 255 && protocol === "v5.channel.k8s.io" && body[0] === 0) stdin?.end();
    }
    stdin?.end();
  })();
  const io: ProcessIO = {
    stdin,
    stdout: p.stdout ? send(1) : undefined,
    stderr: p.stderr && !p.tty ? send(2) : undefined,
    tty: p.tty,
    onResize: resizes.on,
    gone: reading,
  };
  const outcome = await outcomeOf(run(io));
  if (protocol === "channel.k8s.io") {
    if (outcome) await send(3)(new TextEncoder().encode(outcome.message));
  } else {
    await send(3)(new TextEncoder().encode(statusJson(outcome)));
  }
  await w.close(1000);
}

/** undefined for exit code 0; the StreamError that reports anything else. */
async function outcomeOf(running: Promise<number>): Promise<StreamError | undefined> {
  try {
    const code = await running;
    if (code === 0) return undefined;
    return new StreamError(
      `command terminated with non-zero exit code: exit status ${code}`,
      "NonZeroExitCode",
      code,
    );
  } catch (e) {
    return e instanceof StreamError ? e : new StreamError((e as Error).message);
  }
}
