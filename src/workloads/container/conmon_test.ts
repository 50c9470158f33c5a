import assert from "node:assert/strict";
import { realFs } from "../../sys/fs.ts";
import type { Host, HostProc } from "../host.ts";
import { waitConmonGone } from "./conmon.ts";

/**
 * One process (pid 4242, start 7) that lives until its group gets SIGKILL;
 * with `reusedAfter`, the pid shows another start time after that many looks.
 */
function oneProcess(options: { reusedAfter?: number } = {}) {
  const kills: [number, string][] = [];
  let stats = 0;
  let alive = true;
  const proc: HostProc = {
    self: 1,
    stat: (pid) => {
      if (pid !== 4242 || !alive) return undefined;
      stats++;
      // A pid taken over by another process: same number, another start time.
      const start = options.reusedAfter !== undefined && stats > options.reusedAfter ? 8 : 7;
      return { state: "S", startTime: start };
    },
    kill: (pid, signal) => {
      kills.push([pid, signal]);
      if (pid === -4242 && signal === "SIGKILL") alive = false;
    },
    createWithConmon: () => Promise.reject(new Error("not here")),
  };
  return { proc, kills };
}

async function withConmonDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-conmon-test-" });
  try {
    Deno.writeTextFileSync(`${dir}/conmon.pid`, "4242\n");
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const hostWith = (proc: HostProc) =>
  ({ fs: realFs, proc, sleep: () => Promise.resolve() }) as unknown as Host;

Deno.test("waitConmonGone() with kill: a conmon still there after the wait gets SIGKILL to its process group, through host.proc", async () => {
  await withConmonDir(async (dir) => {
    const { proc, kills } = oneProcess();
    await waitConmonGone(hostWith(proc), dir, { kill: true });
    assert.deepEqual(kills, [[-4242, "SIGKILL"]]);
    assert.equal(proc.stat(4242), undefined);
  });
});

Deno.test("waitConmonGone() without kill only waits, and never signals a pid another process has taken", async () => {
  await withConmonDir(async (dir) => {
    const waiting = oneProcess();
    await waitConmonGone(hostWith(waiting.proc), dir);
    assert.deepEqual(waiting.kills, []);
    const reused = oneProcess({ reusedAfter: 1 });
    await waitConmonGone(hostWith(reused.proc), dir, { kill: true });
    assert.deepEqual(reused.kills, []);
  });
});

Deno.test("waitConmonGone() with no conmon pid file returns at once", async () => {
  const { proc, kills } = oneProcess();
  await waitConmonGone(hostWith(proc), "/nonexistent/rkl-conmon", { kill: true });
  assert.deepEqual(kills, []);
});
