import assert from "node:assert/strict";
import {
  dnsSubdomainError,
  envNameError,
  escapeControl,
  labelValueError,
  qualifiedNameError,
} from "./names.ts";

Deno.test("dnsSubdomainError() takes pod names the API server takes and refuses the rest", () => {
  for (const ok of ["a", "web-1", "a.b.c", "x".repeat(253)]) {
    assert.equal(dnsSubdomainError(ok), undefined, ok);
  }
  for (
    const bad of ["", "A", "a_b", "-a", "a-", "a..b", ".a", "a\nb", "a\x1b[2Jb", "x".repeat(254)]
  ) {
    assert.ok(dnsSubdomainError(bad), JSON.stringify(bad));
  }
});

Deno.test("qualifiedNameError() takes label and annotation keys with an optional DNS prefix", () => {
  for (
    const ok of [
      "app",
      "App_1.x",
      "example.com/app",
      "org.rkl.restart",
      "k8s.io/a-b",
      "x".repeat(63),
    ]
  ) {
    assert.equal(qualifiedNameError(ok), undefined, ok);
  }
  for (
    const bad of [
      "",
      "/a",
      "a/",
      "a/b/c",
      "Example.com/a",
      "a b",
      "-a",
      "a\n",
      "x".repeat(64),
      "\x1b[31m",
    ]
  ) {
    assert.ok(qualifiedNameError(bad), JSON.stringify(bad));
  }
});

Deno.test("labelValueError() takes '' and up to 63 safe characters", () => {
  for (const ok of ["", "v1", "a.b_c-d", "x".repeat(63)]) {
    assert.equal(labelValueError(ok), undefined, ok);
  }
  for (const bad of ["-a", "a b", "a\nb", "x".repeat(64), "é"]) {
    assert.ok(labelValueError(bad), bad);
  }
});

Deno.test("envNameError() is Kubernetes' relaxed rule: printable ASCII but '='", () => {
  for (const ok of ["PATH", "my.env-name", "1abc", "a b", "~!@#$%^&*()"]) {
    assert.equal(envNameError(ok), undefined, ok);
  }
  for (const bad of ["", "A=B", "A\nB", "A\rB", "A\tB", "A\x1bB", "A\x7fB", "É", "A\0"]) {
    assert.ok(envNameError(bad), JSON.stringify(bad));
  }
});

Deno.test("escapeControl() writes C0, DEL and C1 controls as escapes and leaves the rest", () => {
  assert.equal(escapeControl("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(escapeControl("\x1b[2J\x00\x7f\x9b"), "\\x1b[2J\\x00\\x7f\\x9b");
  assert.equal(escapeControl("héllo wörld ✓ ./x:1"), "héllo wörld ✓ ./x:1");
});
