/**
 * serve.ts over a real socket (TCP on 127.0.0.1): rkl's gRPC health probe client
 * (src/net/grpc_health.ts) against rkl's server, both written from the RFCs.
 */
import assert from "node:assert/strict";
import { serveH2Connection } from "./serve.ts";
import { serveGrpcStream, Status } from "./grpc_server.ts";
import { decodeHealthResponse, grpcHealthCheck } from "../../net/grpc_health.ts";

Deno.test("serveH2Connection() answers rkl's own gRPC health probe; unknown services and methods are errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served: ReturnType<typeof serveH2Connection>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push(serveH2Connection(conn, (s) =>
        serveGrpcStream(s, {
          lookup: (path) =>
            path !== "/grpc.health.v1.Health/Check" ? undefined : {
              streaming: false,
              handle: (req) => {
                // HealthCheckRequest: field 1, the service name.
                const name = new TextDecoder().decode(req.subarray(2));
                if (name === "missing") {
                  return Promise.reject({ code: Status.NOT_FOUND, details: "unknown service" });
                }
                return Promise.resolve(new Uint8Array([0x08, name === "db" ? 2 : 1]));
              },
            },
          maxMessageBytes: 1024,
        })));
    }
  })();
  try {
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "", 2000), true);
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "web", 2000), true);
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "db", 2000), false); // NOT_SERVING
    assert.equal(await grpcHealthCheck("127.0.0.1", port, "missing", 2000), false);
    assert.equal(decodeHealthResponse(new Uint8Array([0, 0, 0, 0, 2, 0x08, 1])), 1);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const s of served) s.destroy();
    await Promise.all(served.map((s) => s.closed));
  }
});
