import assert from "node:assert/strict";
import { pullAuths } from "./service.ts";
import { CriError, Status } from "./grpc.ts";

Deno.test("PullImage auth: credentials for the image's own registry only", () => {
  assert.equal(pullAuths("busybox", null), undefined);
  assert.equal(pullAuths("busybox", { username: "", password: "" }), undefined);
  assert.deepEqual(pullAuths("registry.example:5000/app:1", { username: "u", password: "p" }), {
    "registry.example:5000": { username: "u", password: "p" },
  });
  const hub = pullAuths("busybox:1.36", { auth: btoa("me:s3:cret") })!;
  assert.deepEqual(Object.keys(hub).sort(), ["docker.io", "registry-1.docker.io"]);
  assert.deepEqual(hub["docker.io"], { username: "me", password: "s3:cret" });
});

Deno.test("PullImage auth: bad auth is InvalidArgument, tokens are UNIMPLEMENTED", () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof CriError);
      return e.code;
    }
    assert.fail("no error");
  };
  assert.equal(code(() => pullAuths("busybox", { auth: "%%%" })), Status.INVALID_ARGUMENT);
  assert.equal(
    code(() => pullAuths("busybox", { auth: btoa("nocolon") })),
    Status.INVALID_ARGUMENT,
  );
  assert.equal(code(() => pullAuths("busybox", { password: "p" })), Status.INVALID_ARGUMENT);
  assert.equal(code(() => pullAuths("busybox", { registry_token: "t" })), Status.UNIMPLEMENTED);
});
