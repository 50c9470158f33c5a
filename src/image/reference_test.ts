import assert from "node:assert/strict";
import { defaultPullPolicy, formatReference, isBundlePath, parseReference } from "./reference.ts";

Deno.test("parseReference() applies Docker Hub's short-name rules", () => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["bitnami/redis:7", "docker.io/bitnami/redis:7"],
    ["index.docker.io/library/nginx", "docker.io/library/nginx:latest"],
    ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"],
    ["localhost/app", "localhost/app:latest"],
    ["127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"],
  ];
  for (const [text, want] of cases) assert.equal(formatReference(parseReference(text)), want, text);
  const d = `sha256:${"a".repeat(64)}`;
  const pinned = parseReference(`gcr.io/x/y@${d}`);
  assert.equal(pinned.digest, d);
  assert.equal(pinned.tag, undefined);
});

Deno.test("parseReference() refuses what no registry accepts, with the reason", () => {
  for (const bad of ["", "Busybox", "a b", "x@sha256:12", "x:-tag", "docker.io/", "a//b", "../x"]) {
    assert.throws(() => parseReference(bad), /invalid image reference/, bad);
  }
});

Deno.test("isBundlePath() and defaultPullPolicy() follow the user-visible rules", () => {
  assert.ok(isBundlePath("./bundles/busybox") && isBundlePath("/abs") && isBundlePath("../b"));
  assert.ok(!isBundlePath("busybox") && !isBundlePath("bundles/busybox"));
  assert.equal(defaultPullPolicy("busybox"), "Always");
  assert.equal(defaultPullPolicy("busybox:latest"), "Always");
  assert.equal(defaultPullPolicy("busybox:1.36"), "IfNotPresent");
  assert.equal(defaultPullPolicy(`busybox@sha256:${"b".repeat(64)}`), "IfNotPresent");
});
