import assert from "node:assert/strict";
import { IdleCollector } from "./memory.ts";

Deno.test("IdleCollector collects once the process has grown, then measures from after the collection", () => {
  let rss = 100;
  const calls: string[] = [];
  const c = new IdleCollector({
    rss: () => rss,
    gc: () => {
      calls.push("gc");
      rss -= 6;
    },
    trim: () => calls.push("trim"),
  }, 4);
  rss = 103;
  assert.equal(c.maybeCollect(), false, "grown by 3 of 4");
  rss = 104;
  assert.equal(c.maybeCollect(), true);
  assert.deepEqual(calls, ["gc", "trim"]);
  // 98 after the collection: 101 is growth of 3, no collection.
  rss = 101;
  assert.equal(c.maybeCollect(), false);
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
