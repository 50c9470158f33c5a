import assert from "node:assert/strict";
import { foldCheck, type HealthState, nextCheckAt } from "./health.ts";

const H = {
  test: ["true"],
  intervalMs: 10_000,
  timeoutMs: 1_000,
  retries: 3,
  startPeriodMs: 30_000,
  startIntervalMs: 2_000,
};
const fresh: HealthState = { status: "starting", failingStreak: 0, log: [] };
const run = (exitCode: number) => ({ exitCode, output: `rc ${exitCode}`, start: new Date(0) });

Deno.test("foldCheck(): failures inside the start period do not count; a success is healthy", () => {
  let st = foldCheck(fresh, H, run(1), 1_000);
  assert.equal(st.status, "starting");
  assert.equal(st.failingStreak, 0);
  st = foldCheck(st, H, run(0), 5_000);
  assert.equal(st.status, "healthy");
  assert.equal(st.log.length, 2);
});

Deno.test("foldCheck(): `retries` failures in a row make it unhealthy; the log keeps 5", () => {
  let st = foldCheck(fresh, H, run(0), 40_000);
  for (let i = 0; i < 2; i++) st = foldCheck(st, H, run(1), 50_000);
  assert.equal(st.status, "healthy");
  st = foldCheck(st, H, run(1), 60_000);
  assert.equal(st.status, "unhealthy");
  assert.equal(st.failingStreak, 3);
  for (let i = 0; i < 4; i++) st = foldCheck(st, H, run(2), 70_000);
  assert.equal(st.log.length, 5);
  st = foldCheck(st, H, run(0), 80_000);
  assert.deepEqual([st.status, st.failingStreak], ["healthy", 0]);
});

Deno.test("nextCheckAt(): start_interval while starting within the start period, then interval", () => {
  assert.equal(nextCheckAt(fresh, H, 1_000, 0), 3_000);
  assert.equal(nextCheckAt(fresh, H, 31_000, 0), 41_000);
  assert.equal(nextCheckAt({ ...fresh, status: "healthy" }, H, 1_000, 0), 11_000);
});
