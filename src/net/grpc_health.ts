/**
 * The gRPC health-checking protocol (grpc.health.v1.Health/Check), as a
 * Kubernetes `grpc` probe calls it: one unary call over HTTP/2 without TLS,
 * on one connection made for it (the frames and HPACK of src/net/h2/; no
 * node:http2). The two messages are small enough to encode by hand: the
 * request's field 1 is the service name (a string), the response's field 1
 * its status (an enum, SERVING = 1).
 */
import {
  DEFAULT_MAX_FRAME,
  Flag,
  frame,
  FrameType,
  PREFACE,
  readFrameHeader,
  Setting,
  settingsPayload,
} from "./h2/frames.ts";
import { HpackDecoder, hpackEncode } from "./h2/hpack.ts";

/** HealthCheckRequest { string service = 1; } in a gRPC length-prefixed frame. */
export function encodeHealthRequest(service: string): Uint8Array {
  const name = new TextEncoder().encode(service);
  const msg = name.length > 0 ? [0x0a, ...varint(name.length), ...name] : [];
  const out = new Uint8Array(5 + msg.length);
  new DataView(out.buffer).setUint32(1, msg.length);
  out.set(msg, 5);
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** The status of a HealthCheckResponse frame, or undefined when it is not one. */
export function decodeHealthResponse(frame: Uint8Array): number | undefined {
  if (frame.length < 5 || frame[0] !== 0) return undefined; // compressed: not asked for
  const len = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
  const msg = frame.subarray(5, 5 + len);
  if (msg.length !== len) return undefined;
  let status = 0; // proto3: an absent field is its zero value (UNKNOWN)
  for (let i = 0; i < msg.length;) {
    const tag = msg[i++];
    const wire = tag & 7;
    let v = 0;
    if (wire === 0) {
      for (let shift = 0; i < msg.length; shift += 7) {
        const b = msg[i++];
        v |= (b & 0x7f) << shift;
        if (!(b & 0x80)) break;
      }
      if (tag >> 3 === 1) status = v;
    } else if (wire === 2) {
      let n = 0;
      for (let shift = 0; i < msg.length; shift += 7) {
        const b = msg[i++];
        n |= (b & 0x7f) << shift;
        if (!(b & 0x80)) break;
      }
      i += n;
    } else return undefined;
  }
  return status;
}

export const SERVING = 1;

/** Most octets of answer (headers and DATA) a probe reads before it calls the server unhealthy. */
const MAX_ANSWER = 64 * 1024;

/** True when the server at host:port reports `service` ("" = the whole server) SERVING. */
export async function grpcHealthCheck(
  host: string,
  port: number,
  service: string,
  timeoutMs: number,
): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      try {
        conn?.close();
      } catch { /* closed */ }
      resolve(false);
    }, timeoutMs);
  });
  const check = async (): Promise<boolean> => {
    conn = await Deno.connect({ hostname: host, port });
    const authority = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const headers = hpackEncode([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", "/grpc.health.v1.Health/Check"],
      [":authority", authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ]);
    await writeAll(
      conn,
      concat([
        PREFACE,
        frame(FrameType.SETTINGS, 0, 0, settingsPayload([[Setting.ENABLE_PUSH, 0]])),
        frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headers),
        frame(FrameType.DATA, Flag.END_STREAM, 1, encodeHealthRequest(service)),
      ]),
    );
    const decoder = new HpackDecoder();
    let buf: Uint8Array = new Uint8Array(0);
    let block: Uint8Array[] = [];
    let blockEnds = false;
    let grpcStatus: string | undefined;
    const data: Uint8Array[] = [];
    let seen = 0;
    const chunk = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) return false;
      buf = concat([buf, chunk.subarray(0, n)]);
      seen += n;
      if (seen > MAX_ANSWER + 1024) return false;
      while (buf.length >= 9) {
        const h = readFrameHeader(buf, 0);
        if (h.length > DEFAULT_MAX_FRAME) return false;
        if (buf.length < 9 + h.length) break;
        const p = buf.subarray(9, 9 + h.length);
        buf = buf.subarray(9 + h.length);
        if (h.type === FrameType.SETTINGS && !(h.flags & Flag.ACK)) {
          await writeAll(conn, frame(FrameType.SETTINGS, Flag.ACK, 0));
        } else if (h.type === FrameType.PING && !(h.flags & Flag.ACK) && p.length === 8) {
          await writeAll(conn, frame(FrameType.PING, Flag.ACK, 0, p));
        } else if (h.type === FrameType.GOAWAY) {
          return false; // stream 1 is the only one: not answered, or it would have ended first
        } else if (h.stream !== 1) {
          continue;
        } else if (h.type === FrameType.RST_STREAM) {
          return false;
        } else if (h.type === FrameType.DATA) {
          data.push(unpad(h.flags, p, 0).slice());
        } else if (h.type === FrameType.HEADERS || h.type === FrameType.CONTINUATION) {
          if (h.type === FrameType.HEADERS) {
            block = [];
            blockEnds = (h.flags & Flag.END_STREAM) !== 0;
            block.push(unpad(h.flags, p, h.flags & Flag.PRIORITY ? 5 : 0).slice());
          } else block.push(p.slice());
          if (!(h.flags & Flag.END_HEADERS)) continue;
          // Decoded in order, as the dynamic table needs; grpc-status ends the call.
          const list = decoder.decode(concat(block), MAX_ANSWER);
          for (const [name, value] of list) {
            if (name === "grpc-status") grpcStatus = value;
            if (name === ":status" && value !== "200") return false;
          }
          if (blockEnds) {
            return grpcStatus === "0" && decodeHealthResponse(concat(data)) === SERVING;
          }
          continue;
        }
        if (h.type === FrameType.DATA && h.flags & Flag.END_STREAM) {
          // Ended without trailers: no grpc-status, not a gRPC answer.
          return false;
        }
      }
    }
  };
  try {
    return await Promise.race([check().catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

function unpad(flags: number, p: Uint8Array, extra: number): Uint8Array {
  if (!(flags & Flag.PADDED)) return p.subarray(extra);
  const pad = p[0] ?? 0;
  if (1 + extra + pad > p.length) throw new Error("padding longer than the frame");
  return p.subarray(1 + extra, p.length - pad);
}

async function writeAll(conn: Deno.Conn, b: Uint8Array) {
  for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
