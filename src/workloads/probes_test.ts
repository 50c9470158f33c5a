import assert from "node:assert/strict";
import { initialState, probeDue, probePort, recordResult } from "./probes.ts";

const P = {
  exec: { command: ["true"] },
  periodSeconds: 2,
  initialDelaySeconds: 5,
  failureThreshold: 3,
  successThreshold: 2,
};

Deno.test("probeDue() waits for the initial delay, then every period", () => {
  const st = initialState("liveness");
  assert.equal(probeDue(P, st, 0, 4_999), false);
  assert.equal(probeDue(P, st, 0, 5_000), true);
  const ran = { ...st, lastAt: 5_000 };
  assert.equal(probeDue(P, ran, 0, 6_999), false);
  assert.equal(probeDue(P, ran, 0, 7_000), true);
});

Deno.test("recordResult(): liveness fails after failureThreshold consecutive failures", () => {
  let st = initialState("liveness");
  for (
    const [passed, ok, changed] of [
      [false, true, false],
      [false, true, false],
      [true, true, false],
      [false, true, false],
      [false, true, false],
      [false, false, true],
    ] as const
  ) {
    const r = recordResult(P, st, passed, 1);
    assert.deepEqual([r.state.ok, r.changed], [ok, changed]);
    st = r.state;
  }
});

Deno.test("recordResult(): readiness starts not ready and needs successThreshold passes", () => {
  let st = initialState("readiness");
  let r = recordResult(P, st, true, 1);
  assert.deepEqual([r.state.ok, r.changed], [false, false]);
  st = r.state;
  r = recordResult(P, st, true, 2);
  assert.deepEqual([r.state.ok, r.changed], [true, true]);
});

Deno.test("probePort() resolves named ports", () => {
  const ports = [{ name: "http", containerPort: 8080 }];
  assert.equal(probePort("http", ports), 8080);
  assert.equal(probePort(80, ports), 80);
  assert.equal(probePort("8081", ports), 8081);
  assert.equal(probePort("nope", ports), undefined);
});
