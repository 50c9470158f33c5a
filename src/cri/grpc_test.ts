import assert from "node:assert/strict";
import protoText from "./proto/api.proto" with { type: "text" };
import source from "./proto/source.json" with { type: "json" };
import { invalid, serviceDefinition, Status, statusOf } from "./grpc.ts";
import { criRoot } from "./proto/reference.ts";
import { ConflictError, NotFoundError, SpecError } from "../errors.ts";

Deno.test("the vendored api.proto is the file source.json names, byte for byte", async () => {
  const bytes = new TextEncoder().encode(protoText);
  const hex = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(hex, source.fileSha256);
  assert.equal(source.module, "k8s.io/cri-api");
  assert.match(protoText, /^package runtime\.v1;$/m);
});

Deno.test("both CRI services come from the proto with every method", () => {
  const rt = serviceDefinition("RuntimeService");
  const img = serviceDefinition("ImageService");
  assert.equal(Object.keys(rt).length, 35);
  assert.deepEqual(Object.keys(img).sort(), [
    "ImageFsInfo",
    "ImageStatus",
    "ListImages",
    "PullImage",
    "RemoveImage",
    "StreamImages",
  ]);
  assert.equal(rt.Version.path, "/runtime.v1.RuntimeService/Version");
  // int64 as decimal strings (nanosecond timestamps overflow a double), enums by name.
  const t = criRoot().lookupType("runtime.v1.PodSandbox");
  const big = "1764763200123456789";
  const bytes = t.encode(t.fromObject({ id: "x", created_at: big, state: "SANDBOX_NOTREADY" }))
    .finish();
  const back = rt.ListPodSandbox.responseDeserialize(
    criRoot().lookupType("runtime.v1.ListPodSandboxResponse").encode({
      items: [t.decode(bytes)],
    }).finish() as Uint8Array,
  ) as { items: { created_at: string; state: string }[] };
  assert.equal(back.items[0].created_at, big);
  assert.equal(back.items[0].state, "SANDBOX_NOTREADY");
});

Deno.test("rkl errors map to gRPC codes", () => {
  assert.equal(statusOf(new NotFoundError("x")).code, Status.NOT_FOUND);
  assert.equal(statusOf(new ConflictError("x")).code, Status.ALREADY_EXISTS);
  assert.equal(statusOf(new SpecError({ file: "f" }, "bad")).code, Status.INVALID_ARGUMENT);
  assert.equal(statusOf(invalid("x")).code, Status.INVALID_ARGUMENT);
  assert.equal(statusOf(new Error("boom")).code, Status.INTERNAL);
});
