import assert from "node:assert/strict";
import { watchPids } from "../../src/cri/server/pidfds.ts";
import { procStat } from "../../src/sys/procstat.ts";

Deno.test("a pidfd watch sees its processes alive until one of them ends", async () => {
  const kids = [0, 1].map(() =>
    new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn()
  );
  try {
    const procs = kids.map((k) => [k.pid, procStat(k.pid)!.startTime] as [number, number]);
    const w = watchPids(procs);
    assert.ok(w, "pidfd_open works here");
    try {
      assert.equal(w.allAlive(), true);
      assert.equal(w.allAlive(), true);
      kids[1].kill("SIGKILL");
      await kids[1].status;
      assert.equal(w.allAlive(), false);
    } finally {
      w.close();
    }
    assert.equal(w.allAlive(), false, "a closed watch vouches for nothing");
    // Another start time than the process's: not the process the caller knew.
    assert.equal(watchPids([[kids[0].pid, procs[0][1] + 1]]), undefined);
    // Gone already.
    assert.equal(watchPids([[kids[1].pid, procs[1][1]]]), undefined);
  } finally {
    for (const k of kids) {
      try {
        k.kill("SIGKILL");
      } catch { /* ended */ }
      await k.status;
    }
  }
});
