import assert from "node:assert/strict";
import { type ExitedContainer, parseRestartLabel, restartAt } from "./restart.ts";

const B = { baseMs: 10_000, maxMs: 300_000 };
const c = (over: Partial<ExitedContainer>): ExitedContainer => ({
  policy: "Always",
  exitCode: 0,
  restarts: 0,
  finishedAt: 1_000_000,
  stoppedByUser: false,
  ...over,
});

Deno.test("restartAt() follows the Kubernetes restart policies", () => {
  assert.equal(restartAt(c({ policy: "Always", exitCode: 0 }), B), 1_010_000);
  assert.equal(restartAt(c({ policy: "OnFailure", exitCode: 0 }), B), null);
  assert.equal(restartAt(c({ policy: "OnFailure", exitCode: 1 }), B), 1_010_000);
  assert.equal(restartAt(c({ policy: "Never", exitCode: 1 }), B), null);
});

Deno.test("restartAt() follows the compose restart policies, and stop means stop", () => {
  assert.equal(restartAt(c({ policy: "no", exitCode: 1 }), B), null);
  assert.equal(restartAt(c({ policy: "on-failure", exitCode: 137 }), B), 1_010_000);
  assert.equal(restartAt(c({ policy: "unless-stopped" }), B), 1_010_000);
  assert.equal(restartAt(c({ policy: "unless-stopped", stoppedByUser: true }), B), null);
  assert.equal(restartAt(c({ policy: "always", stoppedByUser: true }), B), null);
});

Deno.test("restartAt() backs off exponentially up to the cap", () => {
  const delays = [0, 1, 2, 3, 4, 5, 6, 40].map((restarts) =>
    restartAt(c({ restarts }), B)! - 1_000_000
  );
  assert.deepEqual(delays, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
});

Deno.test("restartAt() stops restarting on-failure:N after N restarts (docker's retry count)", () => {
  const p = { policy: "on-failure" as const, exitCode: 1, maxRetries: 2 };
  assert.notEqual(restartAt(c({ ...p, restarts: 1 }), B), null);
  assert.equal(restartAt(c({ ...p, restarts: 2 }), B), null);
  assert.equal(restartAt(c({ ...p, restarts: 0, exitCode: 0 }), B), null);
});

Deno.test("parseRestartLabel() reads on-failure:N and refuses counts on other policies", () => {
  assert.deepEqual(parseRestartLabel("on-failure:3"), { policy: "on-failure", maxRetries: 3 });
  assert.deepEqual(parseRestartLabel("on-failure"), { policy: "on-failure" });
  assert.deepEqual(parseRestartLabel("on-failure:0"), { policy: "on-failure" });
  assert.deepEqual(parseRestartLabel("always"), { policy: "always" });
  assert.equal(parseRestartLabel("always:3"), undefined);
  assert.equal(parseRestartLabel("on-failure:x"), undefined);
  assert.equal(parseRestartLabel("sometimes"), undefined);
});
