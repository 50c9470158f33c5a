import assert from "node:assert/strict";
import { IdleCollector } from "./memory.ts";

Deno.test("IdleCollector collects once the process has grown, trims at the next call, and measures from there", () => {
  let rss = 100;
  const calls: string[] = [];
  const c = new IdleCollector({
    rss: () => rss,
    gc: () => {
      calls.push("gc");
      rss -= 2;
    },
    trim: () => {
      calls.push("trim");
      rss -= 4;
    },
  }, 4);
  rss = 103;
  assert.equal(c.maybeCollect(), false, "grown by 3 of 4");
  rss = 104;
  assert.equal(c.maybeCollect(), true);
  assert.deepEqual(calls, ["gc"], "the trim waits: V8 frees native memory while it sweeps");
  // 102 after the collection; the next call trims (98), and growth counts from there.
  assert.equal(c.maybeCollect(), false);
  assert.deepEqual(calls, ["gc", "trim"]);
  rss = 101;
  assert.equal(c.maybeCollect(), false, "grown by 3 since the trim");
  // Shrunk by itself to 90: growth counts from there.
  rss = 90;
  assert.equal(c.maybeCollect(), false);
  rss = 94;
  assert.equal(c.maybeCollect(), true);
  assert.equal(c.collections, 2);
});

Deno.test("IdleCollector does nothing without a gc function (V8 without --expose-gc)", () => {
  let rss = 0;
  const c = new IdleCollector({ rss: () => rss }, 1);
  rss = 1000;
  assert.equal(c.maybeCollect(), false);
  assert.equal(c.collections, 0);
});
