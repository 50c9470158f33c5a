/** The CRI's gRPC server on a real unix socket, with grpc-js's own client (no runtime needed). */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { serveCri, serviceDefinition } from "../../src/cri/grpc.ts";
import { NotFoundError } from "../../src/errors.ts";

Deno.test({
  name:
    "the server answers on a 0600 unix socket; missing methods are UNIMPLEMENTED, throws keep it up",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const socket = `${dir}/cri.sock`;
    const server = await serveCri({
      runtime: {
        Version: () => Promise.resolve({ version: "0.1.0", runtime_name: "test" }),
        Status: () => {
          throw new NotFoundError("no such thing");
        },
      },
      image: {},
    }, { socket });
    try {
      assert.equal(Deno.statSync(socket).mode! & 0o777, 0o600);
      const Client = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
      const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
      const call = (m: string) =>
        new Promise<{ err: grpc.ServiceError | null; res: unknown }>((resolve) =>
          // deno-lint-ignore no-explicit-any
          (client as any)[m]({}, (err: grpc.ServiceError | null, res: unknown) =>
            resolve({ err, res }))
        );
      const v = await call("Version");
      assert.equal(v.err, null);
      assert.equal((v.res as { runtime_name: string }).runtime_name, "test");
      const s = await call("Status");
      assert.equal(s.err?.code, grpc.status.NOT_FOUND);
      assert.match(s.err!.details, /no such thing/);
      const u = await call("ListPodSandbox");
      assert.equal(u.err?.code, grpc.status.UNIMPLEMENTED);
      assert.equal((await call("Version")).err, null); // still serving
      // An oversized message is refused with RESOURCE_EXHAUSTED, and the server stays up.
      const big = await new Promise<grpc.ServiceError | null>((resolve) =>
        // deno-lint-ignore no-explicit-any
        (client as any).Version(
          { version: "x".repeat(17 * 1024 * 1024) },
          (err: grpc.ServiceError | null) => resolve(err),
        )
      );
      assert.equal(big?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal((await call("Version")).err, null);
      client.close();
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
    assert.throws(() => Deno.statSync(socket));
  },
});
