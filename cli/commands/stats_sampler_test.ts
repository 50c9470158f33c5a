import assert from "node:assert/strict";
import { fromSampler, withReading } from "./stats.ts";
import type { Taken } from "./stats_frames.ts";
import type { ContainerRecord } from "../../src/workloads/container/types.ts";

const rec = { name: "web", id: "web", pidStart: 7 } as ContainerRecord;
const reading = (at: number, cpuNs: number): Taken => ({
  at,
  hostMemory: 1 << 30,
  samples: [{
    name: "web",
    id: "web",
    pidStart: 7,
    cgroup: { cpuNs },
    systemNs: at * 1e6,
    onlineCpus: 2,
  }],
});

Deno.test("served stats: a request's own reading is kept with the sampler's, so the next one needs no reading of its own", () => {
  const now = Date.now();
  // The sampler just started: one reading, no pair 100 ms apart.
  const cold = [reading(now - 110, 1_000)];
  assert.equal(fromSampler(cold, [rec]), undefined, "a cold sampler has no pair");
  // The first request read every cgroup itself (and waited for a pair): kept.
  const kept = withReading(cold, reading(now - 5, 2_000));
  const next = fromSampler(kept, [rec]);
  assert.equal(next?.at, now - 5, "the next request answers from the kept reading");
  // Another container, or a restarted one: not in the readings, read again.
  assert.equal(fromSampler(kept, [{ ...rec, pidStart: 8 }]), undefined);
  // An older reading is never put after a newer one; at most 8 are kept.
  assert.equal(withReading(kept, reading(now - 50, 1_500)), kept);
  let many = kept;
  for (let i = 0; i < 10; i++) many = withReading(many, reading(now + i, 3_000 + i));
  assert.equal(many.length, 8);
  assert.equal(many.at(-1)?.at, now + 9);
});
