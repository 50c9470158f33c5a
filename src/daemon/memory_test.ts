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

Deno.test("codeRanges picks the executable's clean r-xp mappings only", async () => {
  const { codeRanges } = await import("./memory.ts");
  const smaps = [
    "5600000000-5600001000 r--p 00000000 08:01 42    /usr/bin/deno",
    "Rss:                   4 kB",
    "Private_Dirty:         0 kB",
    "5600001000-5600005000 r-xp 00001000 08:01 42    /usr/bin/deno",
    "Rss:                  16 kB",
    "Private_Dirty:         0 kB",
    "Anonymous:             0 kB",
    "Swap:                  0 kB",
    // written to (a debugger's breakpoint, text relocations): left alone
    "5600005000-5600006000 r-xp 00005000 08:01 42    /usr/bin/deno",
    "Private_Dirty:         4 kB",
    "Anonymous:             4 kB",
    "5600006000-5600007000 rw-p 00006000 08:01 42    /usr/bin/deno",
    "Private_Dirty:         4 kB",
    "7f00000000-7f00001000 r-xp 00000000 08:01 43    /usr/lib/x86_64-linux-gnu/libc.so.6",
    "Private_Dirty:         0 kB",
    "7f00002000-7f00003000 r-xp 00000000 00:00 0 ",
    "Private_Dirty:         0 kB",
  ].join("\n");
  assert.deepEqual(codeRanges(smaps, "/usr/bin/deno"), [{
    start: 0x5600001000n,
    length: 0x4000n,
  }]);
});
