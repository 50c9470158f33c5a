import assert from "node:assert/strict";
import { imageFsInfo, pullAuths } from "./image.ts";
import { CriError, Status } from "../grpc.ts";

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

Deno.test("ImageFsInfo names a mountpoint that exists before any pull, and counts what is there", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-imagefs-" });
  try {
    const root = `${dir}/root/images`;
    const a = imageFsInfo(root, 1_700_000_000_000);
    const fs = a.image_filesystems[0];
    assert.equal(fs.fs_id.mountpoint, root);
    // The kubelet stats this path: it must be a directory now, not after the first pull.
    assert.ok(Deno.statSync(fs.fs_id.mountpoint).isDirectory);
    assert.equal(Deno.statSync(root).mode! & 0o777, 0o700);
    assert.equal(fs.timestamp, "1700000000000000000");
    // du's count: allocated blocks and inodes, the root itself included.
    const blocks = (...ps: string[]) =>
      String(ps.reduce((n, p) => n + Deno.lstatSync(p).blocks! * 512, 0));
    assert.deepEqual([fs.used_bytes.value, fs.inodes_used.value], [blocks(root), "1"]);
    Deno.mkdirSync(`${root}/blobs`);
    Deno.writeTextFileSync(`${root}/blobs/x`, "12345");
    const b = imageFsInfo(root, 1_700_000_000_000).image_filesystems[0];
    assert.deepEqual([b.used_bytes.value, b.inodes_used.value], [
      blocks(root, `${root}/blobs`, `${root}/blobs/x`),
      "3",
    ]);
    assert.deepEqual(a.container_filesystems, []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
