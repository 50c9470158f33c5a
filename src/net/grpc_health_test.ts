import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  decodeHealthResponse,
  encodeHealthRequest,
  grpcHealthCheck,
  SERVING,
} from "./grpc_health.ts";

Deno.test("the health request and response frames are protobuf in gRPC framing", () => {
  assert.deepEqual([...encodeHealthRequest("")], [0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeHealthRequest("db")], [0, 0, 0, 0, 4, 0x0a, 2, 0x64, 0x62]);
  assert.equal(decodeHealthResponse(new Uint8Array([0, 0, 0, 0, 2, 0x08, 1])), SERVING);
  assert.equal(decodeHealthResponse(new Uint8Array([0, 0, 0, 0, 2, 0x08, 2])), 2);
  assert.equal(decodeHealthResponse(new Uint8Array([0, 0, 0, 0, 0])), 0);
  assert.equal(decodeHealthResponse(new Uint8Array([0, 0, 0, 0, 9, 0x08])), undefined);
});

/** A real HTTP/2 server speaking the health protocol: "" and "db" SERVING, "cache" NOT_SERVING. */
async function withServer(fn: (port: number) => Promise<void>): Promise<void> {
  const server = http2.createServer();
  server.on("stream", (s, headers) => {
    // @types/node (as grpc-js brings it) types the event's stream as the base class.
    const stream = s as http2.ServerHttp2Stream;
    const chunks: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => chunks.push(c));
    stream.on("end", () => {
      const req = new Uint8Array(chunks.flatMap((c) => [...c]));
      const service = new TextDecoder().decode(req.subarray(7));
      if (headers[":path"] !== "/grpc.health.v1.Health/Check" || service === "missing") {
        stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "5" }, {
          endStream: true,
        });
        return;
      }
      const status = service === "cache" ? 2 : 1;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
        waitForTrailers: true,
      });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(new Uint8Array([0, 0, 0, 0, 2, 0x08, status]));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    await fn((server.address() as AddressInfo).port);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

Deno.test("grpcHealthCheck() asks a real HTTP/2 server and reads SERVING, NOT_SERVING and errors", async () => {
  await withServer(async (port) => {
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "", 2000), true);
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "db", 2000), true);
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "cache", 2000), false);
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "missing", 2000), false);
  });
  // Nothing listening there any more.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = (l.addr as Deno.NetAddr).port;
  l.close();
  assert.equal(await grpcHealthCheck("127.0.0.1", free, "", 2000), false);
});
