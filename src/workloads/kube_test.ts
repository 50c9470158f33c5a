import assert from "node:assert/strict";
import { foldJob, jobBackoffMs, type JobStatus } from "./kube.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function job(over: Partial<JobStatus> = {}): JobStatus {
  return {
    name: "j",
    file: "/k.yaml",
    configmaps: [],
    network: null,
    hash: "h",
    completions: 1,
    parallelism: 1,
    backoffLimit: 2,
    backoffSeconds: 10,
    startedAt: new Date(T0).toISOString(),
    succeeded: 0,
    failed: 0,
    active: [],
    pods: [],
    condition: "Running",
    ...over,
  };
}

Deno.test("jobBackoffMs(): 10 s doubled after each failure, at most 6 minutes", () => {
  const st = { backoffSeconds: 10 };
  assert.deepEqual([1, 2, 3, 4, 6, 7].map((f) => jobBackoffMs(st, f)), [
    10_000,
    20_000,
    40_000,
    80_000,
    320_000,
    360_000,
  ]);
});

Deno.test("foldJob(): fails twice with backoff, then succeeds within backoffLimit", () => {
  let r = foldJob(job(), {}, T0, 0);
  assert.equal(r.start, true);
  let st = { ...r.st, active: ["j-pod-0"], pods: ["j-pod-0"] };
  r = foldJob(st, { "j-pod-0": "failed" }, T0 + 1000, r.notBefore);
  assert.deepEqual([r.st.failed, r.st.active, r.start, r.notBefore], [1, [], false, T0 + 11_000]);
  // Not before the delay has passed.
  assert.equal(foldJob(r.st, {}, T0 + 10_999, r.notBefore).start, false);
  r = foldJob(r.st, {}, T0 + 11_000, r.notBefore);
  assert.equal(r.start, true);
  st = { ...r.st, active: ["j-pod-1"], pods: ["j-pod-0", "j-pod-1"] };
  r = foldJob(st, { "j-pod-1": "failed" }, T0 + 12_000, r.notBefore);
  assert.deepEqual([r.st.failed, r.st.condition, r.notBefore], [2, "Running", T0 + 32_000]);
  st = { ...foldJob(r.st, {}, T0 + 32_000, r.notBefore).st, active: ["j-pod-2"] };
  r = foldJob(st, { "j-pod-2": "succeeded" }, T0 + 33_000, r.notBefore);
  assert.deepEqual([r.st.condition, r.st.succeeded, r.st.failed, r.start], [
    "Complete",
    1,
    2,
    false,
  ]);
});

Deno.test("foldJob(): one failure past backoffLimit fails the job", () => {
  const r = foldJob(job({ failed: 2, active: ["p"] }), { p: "failed" }, T0, 0);
  assert.deepEqual([r.st.condition, r.st.reason, r.stop], ["Failed", "BackoffLimitExceeded", []]);
});

Deno.test("foldJob(): past activeDeadlineSeconds the active pods are stopped and the job fails", () => {
  const r = foldJob(job({ activeDeadlineSeconds: 5, active: ["a", "b"] }), {}, T0 + 5000, 0);
  assert.deepEqual([r.st.condition, r.st.reason, r.stop, r.st.active], [
    "Failed",
    "DeadlineExceeded",
    ["a", "b"],
    [],
  ]);
  assert.equal(
    foldJob(job({ activeDeadlineSeconds: 5 }), {}, T0 + 4999, 0).st.condition,
    "Running",
  );
});

Deno.test("foldJob(): parallelism bounds the active pods; completions bound the total", () => {
  const st = job({ completions: 3, parallelism: 2 });
  assert.equal(foldJob({ ...st, active: ["a"] }, {}, T0, 0).start, true);
  assert.equal(foldJob({ ...st, active: ["a", "b"] }, {}, T0, 0).start, false);
  // Two succeeded and one runs: no fourth pod.
  assert.equal(foldJob({ ...st, succeeded: 2, active: ["c"] }, {}, T0, 0).start, false);
  const done = foldJob({ ...st, succeeded: 2, active: ["c"] }, { c: "succeeded" }, T0, 0);
  assert.equal(done.st.condition, "Complete");
  // A pod the job no longer counts as active (already folded) changes nothing.
  assert.deepEqual(foldJob(st, { zzz: "failed" }, T0, 0).st.failed, 0);
});
