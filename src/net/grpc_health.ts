/**
 * The gRPC health-checking protocol (grpc.health.v1.Health/Check), as a
 * Kubernetes `grpc` probe calls it: one unary call over HTTP/2 without TLS.
 * The two messages are small enough to encode by hand: the request's field 1
 * is the service name (a string), the response's field 1 its status (an enum,
 * SERVING = 1).
 */
import http2 from "node:http2";

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

/** True when the server at host:port reports `service` ("" = the whole server) SERVING. */
export function grpcHealthCheck(
  host: string,
  port: number,
  service: string,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const client = http2.connect(`http://${host.includes(":") ? `[${host}]` : host}:${port}`);
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    client.on("error", () => finish(false));
    const req = client.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Uint8Array[] = [];
    let status: number | undefined;
    req.on("response", (h: Record<string, string | string[] | undefined>) => {
      // A trailers-only reply carries grpc-status in its headers (an error).
      if (h["grpc-status"] !== undefined && String(h["grpc-status"]) !== "0") finish(false);
    });
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("trailers", (t: Record<string, string | string[] | undefined>) => {
      if (String(t["grpc-status"] ?? "") !== "0") finish(false);
    });
    req.on("end", () => {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      status = decodeHealthResponse(all);
      finish(status === SERVING);
    });
    req.on("error", () => finish(false));
    req.end(encodeHealthRequest(service));
  });
}
