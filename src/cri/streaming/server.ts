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
import { connDuplex, type Duplex } from "./bytes.ts";
import { messageDuplex, upgradeResponse, WebSocketConn } from "./websocket.ts";
import { acceptLoop } from "../../sys/accept.ts";
import { closeQuietly, type Head, header, listHeader, readHead, respond } from "./http.ts";
import { PORTFORWARD, portForward, PORTFORWARD_TUNNEL } from "./port_forward.ts";
import {
  REMOTECOMMAND_SPDY,
  REMOTECOMMAND_WS,
  spdyRemoteCommand,
  wsRemoteCommand,
} from "./remote_command.ts";
import {
  type AttachParams,
  type ExecParams,
  type PortForwardParams,
  type ProcessIO,
  type StreamBackend,
  STREAMING_LIMITS,
  type StreamingLimits,
  type StreamingOptions,
  type StreamingStats,
} from "./types.ts";

export { ResizeDecoder, statusJson } from "./remote_command.ts";
export {
  type AttachParams,
  type ExecParams,
  type PortForwardParams,
  type ProcessIO,
  type StreamBackend,
  StreamError,
  STREAMING_LIMITS,
  type StreamingLimits,
  type StreamingOptions,
  type StreamingStats,
  type TermSize,
} from "./types.ts";

type Pending =
  | { kind: "exec"; params: ExecParams; expires: number }
  | { kind: "attach"; params: AttachParams; expires: number }
  | { kind: "portforward"; params: PortForwardParams; expires: number };

/** A token's life: the kubelet's streaming server keeps requests for a minute. */
const TOKEN_TTL_MS = 60_000;

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
        return await portForward(this.backend, messageDuplex(w), pending.params);
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
      return await portForward(this.backend, d, pending.params);
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
