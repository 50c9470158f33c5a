import assert from "node:assert/strict";
import { recordSource } from "./record_source.ts";

Deno.test("recordSource() answers a record's source as stored", () => {
  const source = { kind: "cri" as const, name: "default/web", meta: { anything: [1, 2] } };
  assert.equal(recordSource({ source }), source);
  assert.equal(recordSource({}), undefined);
});

Deno.test("recordSource() reads a record written with the old `cri` field as a CRI source", () => {
  const cri = { name: "web", namespace: "default", uid: "u", attempt: 0, ready: true };
  assert.deepEqual(recordSource({ cri }), { kind: "cri", name: "default/web", meta: cri });
  // A container's: no namespace.
  assert.deepEqual(recordSource({ cri: { sandboxId: "a", name: "app" } }), {
    kind: "cri",
    name: "app",
    meta: { sandboxId: "a", name: "app" },
  });
  assert.equal(recordSource({ cri: "junk" }), undefined);
});
