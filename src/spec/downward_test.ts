import assert from "node:assert/strict";
import { expandRefs, fieldPathError, fieldValue, type PodInfo, resourceValue } from "./downward.ts";

const INFO: PodInfo = {
  name: "web",
  namespace: "default",
  uid: "u-1",
  labels: { app: "web", tier: "front" },
  annotations: { note: 'a "quoted" one' },
  nodeName: "node1",
  serviceAccountName: "default",
  hostIP: "192.0.2.1",
  podIP: "10.88.0.5",
};

Deno.test("expandRefs() follows Kubernetes: defined refs replaced, undefined kept, $$ escapes", () => {
  const vars = new Map([["A", "1"], ["B", "two"]]);
  assert.equal(expandRefs("x$(A)y$(B)", vars), "x1ytwo");
  assert.equal(expandRefs("$(MISSING)/$(A)", vars), "$(MISSING)/1");
  assert.equal(expandRefs("$$(A) costs $$5", vars), "$(A) costs $5");
  assert.equal(expandRefs("$A ${A} $(A", vars), "$A ${A} $(A");
  assert.equal(expandRefs("end$", vars), "end$");
});

Deno.test('fieldValue() reads the pod\'s fields; labels are sorted key="value" lines', () => {
  assert.equal(fieldValue("metadata.name", INFO), "web");
  assert.equal(fieldValue("status.podIP", INFO), "10.88.0.5");
  assert.equal(fieldValue("metadata.labels['tier']", INFO), "front");
  assert.equal(fieldValue("metadata.labels", INFO), 'app="web"\ntier="front"');
  assert.equal(fieldValue("metadata.annotations", INFO), 'note="a \\"quoted\\" one"');
});

Deno.test("fieldPathError() knows which paths go where", () => {
  assert.equal(fieldPathError("status.podIP", "env"), undefined);
  assert.match(fieldPathError("status.podIP", "volume")!, /env only/);
  assert.match(fieldPathError("metadata.labels", "env")!, /volumes only/);
  assert.equal(fieldPathError("metadata.labels", "volume"), undefined);
  assert.match(fieldPathError("spec.containers[0].image", "env")!, /not supported/);
});

Deno.test("resourceValue() rounds up by the divisor and falls back to the node's capacity", () => {
  const node = { cpus: 2, memoryBytes: 8 * 2 ** 30 };
  const r = { limits: { cpu: "250m", memory: "64Mi" }, requests: { cpu: "100m" } };
  assert.equal(resourceValue({ resource: "limits.cpu" }, r, node), "1");
  assert.equal(resourceValue({ resource: "limits.cpu", divisor: "1m" }, r, node), "250");
  assert.equal(resourceValue({ resource: "limits.memory", divisor: "1Mi" }, r, node), "64");
  assert.equal(resourceValue({ resource: "requests.cpu", divisor: "1m" }, r, node), "100");
  assert.equal(resourceValue({ resource: "limits.cpu" }, {}, node), "2");
  assert.equal(resourceValue({ resource: "limits.memory" }, {}, node), String(8 * 2 ** 30));
  assert.equal(resourceValue({ resource: "requests.memory" }, {}, node), "0");
});
