/**
 * gRPC over rkl's HTTP/2 server (src/cri/h2/connection.ts), as the gRPC
 * "PROTOCOL-HTTP2" document lays it out: a POST to /package.Service/Method
 * with content-type application/grpc; length-prefixed messages (one octet
 * compressed flag, four octets length) in DATA; the answer's status in
 * trailers (grpc-status, grpc-message percent-encoded), or in the headers of a
 * trailers-only answer when there is no message. grpc-timeout is a deadline:
 * past it the call is cancelled and answers DEADLINE_EXCEEDED. Compression is
 * not offered (grpc-accept-encoding: identity), so a compressed message is
 * answered UNIMPLEMENTED. Message coding is the caller's (src/cri/codec.ts).
 */
import type { ServerStream } from "./connection.ts";
import type { Header } from "../../net/h2/hpack.ts";

/** gRPC status codes (the numbers are the protocol's); Status[code] is its name. */
export enum Status {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** An answer with a status other than OK. */
export interface StatusError {
  code: Status;
  details: string;
}

export interface CallContext {
  /** The peer reset the stream, the connection went, or the deadline passed. */
  signal: AbortSignal;
  /** Sends one message of a server-streaming call (the headers go with the first). */
  send(bytes: Uint8Array): void;
}

/**
 * One method. A unary handler resolves to the answer's encoding; a streaming
 * one sends through `ctx.send` and resolves to end the call. Either may reject
 * with a StatusError-shaped value (`code`, `details`) or anything else (INTERNAL).
 */
export interface GrpcMethod {
  streaming: boolean;
  handle(request: Uint8Array, ctx: CallContext): Promise<Uint8Array | void>;
}

export interface GrpcServerOptions {
  /** Method by path, "/runtime.v1.RuntimeService/Version". */
  lookup(path: string): GrpcMethod | undefined;
  /** Largest message taken or sent (octets, its 5-octet prefix aside). */
  maxMessageBytes: number;
  /** Told once a call ends: its path, status, seconds. */
  onDone?(path: string, code: Status, details: string, seconds: number): void;
  /** Most octets a streaming call may have queued for a slow reader before it is reset. */
  maxQueuedBytes?: number;
}

const RESPONSE_HEADERS: Header[] = Object.freeze([
  [":status", "200"],
  ["content-type", "application/grpc"],
  ["grpc-accept-encoding", "identity"],
]) as Header[];
const OK_TRAILERS: Header[] = Object.freeze([["grpc-status", "0"]]) as Header[];

/** grpc-message's encoding: octets outside printable ASCII, and '%', as %XX of UTF-8. */
export function percentEncode(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** grpc-timeout ("1-8 digits" then H, M, S, m, u or n) in milliseconds; undefined if malformed. */
export function parseTimeout(v: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2]]!;
  return n * unit;
}

/** Prefix + message in one buffer. */
export function lengthPrefixed(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + msg.length);
  out[1] = msg.length >>> 24;
  out[2] = (msg.length >>> 16) & 0xff;
  out[3] = (msg.length >>> 8) & 0xff;
  out[4] = msg.length & 0xff;
  out.set(msg, 5);
  return out;
}

function statusOfRejection(e: unknown): StatusError {
  if (e && typeof e === "object" && typeof (e as StatusError).code === "number") {
    const code = (e as StatusError).code;
    if (Number.isInteger(code) && code > 0 && code <= 16) {
      return { code, details: String((e as StatusError).details ?? (e as Error).message ?? "") };
    }
  }
  return { code: Status.INTERNAL, details: e instanceof Error ? e.message : String(e) };
}

/** Serves one request stream (called from the connection's onStream). */
export function serveGrpcStream(s: ServerStream, options: GrpcServerOptions): void {
  const t0 = performance.now();
  const path = s.headers.get(":path") ?? "";
  if (s.headers.get(":method") !== "POST") return s.respond([[":status", "405"]], true);
  const type = s.headers.get("content-type") ?? "";
  if (!/^application\/grpc($|[+;])/.test(type)) return s.respond([[":status", "415"]], true);

  // The call's signal, made when a handler asks for it (an abort makes a
  // DOMException, with its stack: not worth it for every call).
  let abort: AbortController | undefined;
  let aborted = false;
  const cancel = () => {
    aborted = true;
    abort?.abort();
  };
  const signal = () => {
    if (!abort) {
      abort = new AbortController();
      if (aborted) abort.abort();
    }
    return abort.signal;
  };
  let finished = false;
  let headersSent = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finish = (code: Status, details: string) => {
    if (finished) return;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    const trailers: Header[] = code === Status.OK && !details
      ? OK_TRAILERS
      : [["grpc-status", String(code)]];
    if (details) trailers.push(["grpc-message", percentEncode(details)]);
    if (headersSent) s.end(trailers);
    else s.respond([...RESPONSE_HEADERS, ...trailers], true);
    options.onDone?.(path, code, details, (performance.now() - t0) / 1000);
    if (code !== Status.OK) cancel(); // the deadline, or a reset: the handler may still run
  };
  s.onreset = () => {
    if (timer !== undefined) clearTimeout(timer);
    if (!finished) {
      finished = true;
      options.onDone?.(path, Status.CANCELLED, "cancelled", (performance.now() - t0) / 1000);
    }
    cancel();
  };

  const method = options.lookup(path);
  if (!method) return finish(Status.UNIMPLEMENTED, `unknown method ${path}`);
  const timeout = s.headers.get("grpc-timeout");
  if (timeout !== undefined) {
    const ms = parseTimeout(timeout);
    if (ms !== undefined) {
      timer = setTimeout(() => finish(Status.DEADLINE_EXCEEDED, "deadline exceeded"), ms);
    }
  }

  // The request: one length-prefixed message, gathered as it comes.
  let head = new Uint8Array(5);
  let headLen = 0;
  let body: Uint8Array | undefined;
  let bodyLen = 0;
  s.ondata = (chunk, end) => {
    if (finished) return;
    let at = 0;
    while (at < chunk.length) {
      if (body !== undefined && bodyLen === body.length) {
        return finish(Status.UNIMPLEMENTED, "more than one request message (client streaming)");
      }
      if (body === undefined) {
        const n = Math.min(5 - headLen, chunk.length - at);
        head.set(chunk.subarray(at, at + n), headLen);
        headLen += n;
        at += n;
        if (headLen < 5) break;
        if (head[0] !== 0) {
          return finish(
            Status.UNIMPLEMENTED,
            "compressed messages are not supported (identity only)",
          );
        }
        const len = ((head[1] << 24) | (head[2] << 16) | (head[3] << 8) | head[4]) >>> 0;
        if (len > options.maxMessageBytes) {
          return finish(
            Status.RESOURCE_EXHAUSTED,
            `received message larger than max (${len} vs. ${options.maxMessageBytes})`,
          );
        }
        body = new Uint8Array(len);
        bodyLen = 0;
      }
      const n = Math.min(body.length - bodyLen, chunk.length - at);
      body.set(chunk.subarray(at, at + n), bodyLen);
      bodyLen += n;
      at += n;
    }
    if (!end) return;
    if (body === undefined || bodyLen < body.length) {
      return finish(
        Status.INTERNAL,
        headLen === 0 ? "no request message" : "truncated request message",
      );
    }
    const request = body;
    head = new Uint8Array(0);
    call(request);
  };

  const call = (request: Uint8Array) => {
    const maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    const ctx: CallContext = {
      get signal() {
        return signal();
      },
      send: (bytes) => {
        if (finished) return;
        if (!headersSent) {
          s.respond(RESPONSE_HEADERS);
          headersSent = true;
        }
        s.write(lengthPrefixed(bytes));
        if (s.queued > maxQueued) {
          // A reader that does not read: the call ends rather than growing without bound.
          s.reset(0x8 /* CANCEL */);
        }
      },
    };
    Promise.resolve().then(() => method.handle(request, ctx)).then(
      (answer) => {
        if (finished) return;
        if (answer) {
          if (answer.length > options.maxMessageBytes) {
            return finish(
              Status.RESOURCE_EXHAUSTED,
              `sent message larger than max (${answer.length} vs. ${options.maxMessageBytes})`,
            );
          }
          s.respond(RESPONSE_HEADERS);
          headersSent = true;
          s.write(lengthPrefixed(answer));
        }
        finish(Status.OK, "");
      },
      (e) => {
        const st = statusOfRejection(e);
        finish(st.code, st.details);
      },
    );
  };
}
