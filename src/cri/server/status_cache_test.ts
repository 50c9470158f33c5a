/**
 * ContainerStatus from memory (src/cri/server/status_cache.ts): kept only
 * for records this process wrote, and never given once the record changed on
 * disk (another rkl's write or removal) or the container's process ended.
 */
import assert from "node:assert/strict";
import { containerHandlers } from "./container.ts";
import { criContainer, criSandbox, failsWith, id64, never, testHost } from "./_testing.ts";
import { Status } from "../grpc.ts";
import { FsStore } from "../../store/store.ts";
import { realFs } from "../../sys/fs.ts";
import type { Host } from "../../workloads/host.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import { Removals } from "./removals.ts";
import { settle, StatusCache } from "./status_cache.ts";
import type { PidWatch } from "./pidfds.ts";

interface Proc {
  state: string;
  startTime: number;
}

/** A CRI host on a real FsStore, a second store on its root (another rkl), fake processes and pidfds. */
function fsHost() {
  const t = testHost();
  const records = `${t.root}/root/records`;
  const store = new FsStore(records, `${t.root}/root/rkl.lock`);
  const other = new FsStore(records, `${t.root}/root/rkl.lock`);
  const procs = new Map<number, Proc>();
  const watches: { pids: [number, number][]; closed: boolean }[] = [];
  const host = {
    ...t.host,
    store,
    fs: realFs,
    proc: { self: Deno.pid, stat: (pid: number) => procs.get(pid) },
  } as unknown as Host;
  const alive = (pid: number, start: number) => {
    const s = procs.get(pid);
    return s !== undefined && s.state !== "Z" && s.startTime === start;
  };
  // A pidfd per watch: opened only on the process the record names, alive.
  const watch = (ps: [number, number][]): PidWatch | undefined => {
    if (!ps.every(([p, s]) => alive(p, s))) return undefined;
    const w = { pids: ps, closed: false };
    watches.push(w);
    return {
      allAlive: () => !w.closed && ps.every(([p, s]) => alive(p, s)),
      close: () => w.closed = true,
    };
  };
  const statuses = new StatusCache(host, watch);
  const h = containerHandlers(host, new Removals(host), statuses);
  Deno.mkdirSync(`${t.root}/root/exits`, { recursive: true });
  return { t, host, store, other, procs, watches, statuses, h };
}

const running = (
  f: ReturnType<typeof fsHost>,
  id: string,
  pid: number,
  over: Partial<ContainerRecord> = {},
) =>
  criContainer(f.t, id, { sandboxId: id64("a"), status: "running" }, {
    pid,
    pidStart: 1000 + pid,
    startedAt: "2026-01-02T03:04:06.000Z",
    ...over,
  });

Deno.test("ContainerStatus answers its own write from memory; another rkl's write and removal are seen at once", async () => {
  const f = fsHost();
  try {
    const id = id64("1");
    f.store.put("pods", criSandbox(id64("a")));
    f.procs.set(100, { state: "S", startTime: 1100 });
    f.store.put("containers", running(f, id, 100));
    const first = await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(first.status.state, "CONTAINER_RUNNING");
    assert.equal(f.statuses.size, 1);
    const again = await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(f.statuses.hits, 1);
    assert.deepEqual(again, first);
    // Another rkl process writes the record (a CLI's stop): read from disk at once.
    f.other.put("containers", {
      ...running(f, id, 100),
      status: "exited",
      exitCode: 7,
      pid: undefined,
      finishedAt: "2026-01-02T03:05:00.000Z",
    });
    const stopped = await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(stopped.status.state, "CONTAINER_EXITED");
    assert.equal(stopped.status.exit_code, 7);
    assert.equal(f.statuses.hits, 1);
    assert.ok(f.watches.every((w) => w.closed), "the running answer's pidfd is let go");
    // Not this process's write: nothing kept, every call reads the record.
    assert.equal(f.statuses.size, 0);
    await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(f.statuses.hits, 1);
    // Its own write again, then removed by the other process: NOT_FOUND at once.
    f.store.put("containers", running(f, id, 100));
    await f.h.ContainerStatus({ container_id: id }, never);
    await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(f.statuses.hits, 2);
    f.other.delete("containers", id);
    await failsWith(() => f.h.ContainerStatus({ container_id: id }, never), Status.NOT_FOUND);
    // Marked removing by the other process: gone for the CRI too.
    f.store.put("containers", running(f, id, 100));
    await f.h.ContainerStatus({ container_id: id }, never);
    f.other.put("containers", { ...running(f, id, 100), removing: true });
    await failsWith(() => f.h.ContainerStatus({ container_id: id }, never), Status.NOT_FOUND);
  } finally {
    f.t.cleanup();
  }
});

Deno.test("ContainerStatus: the first answer after the process ends says exited, with conmon's code", async () => {
  const f = fsHost();
  try {
    const id = id64("2");
    f.store.put("pods", criSandbox(id64("a")));
    f.procs.set(200, { state: "S", startTime: 1200 });
    // conmon, still running when its container ends; it writes the code a moment later.
    f.procs.set(300, { state: "S", startTime: 5 });
    const rec = running(f, id, 200);
    Deno.mkdirSync(rec.dirs.conmonDir, { recursive: true });
    Deno.writeTextFileSync(`${rec.dirs.conmonDir}/conmon.pid`, "300\n");
    f.store.put("containers", rec);
    await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(
      (await f.h.ContainerStatus({ container_id: id }, never)).status.state,
      "CONTAINER_RUNNING",
    );
    assert.equal(f.statuses.hits, 1);
    // Killed: a zombie until conmon reaps it; the runtime already calls it stopped.
    f.procs.set(200, { state: "Z", startTime: 1200 });
    f.t.states.set(id, "stopped");
    const exitFile = `${rec.dirs.exitDir}/${id}`;
    const wrote = new Promise<void>((r) =>
      setTimeout(() => {
        Deno.writeTextFileSync(exitFile, "137");
        f.procs.delete(200);
        f.procs.delete(300);
        r();
      }, 30)
    );
    const next = await f.h.ContainerStatus({ container_id: id }, never);
    await wrote;
    assert.equal(next.status.state, "CONTAINER_EXITED");
    assert.equal(next.status.exit_code, 137);
    assert.equal(next.status.reason, "Error");
    // The exited answer is final: kept (the record on disk is unchanged).
    const later = await f.h.ContainerStatus({ container_id: id }, never);
    assert.equal(f.statuses.hits, 2);
    assert.equal(later.status.exit_code, 137);
  } finally {
    f.t.cleanup();
  }
});

Deno.test("ContainerStatus keeps nothing it cannot watch: a process not the record's, a verbose call, a state the runtime gave", async () => {
  const f = fsHost();
  try {
    f.store.put("pods", criSandbox(id64("a")));
    // The pid is another process now (another start time): answered anew each time.
    f.procs.set(400, { state: "S", startTime: 1 });
    f.t.states.set(id64("4"), "running");
    f.store.put("containers", running(f, id64("4"), 400));
    await f.h.ContainerStatus({ container_id: id64("4") }, never);
    await f.h.ContainerStatus({ container_id: id64("4") }, never);
    assert.equal(f.statuses.hits, 0);
    assert.equal(f.statuses.size, 0);
    // Verbose: made anew, with its info.
    f.procs.set(500, { state: "S", startTime: 1500 });
    f.store.put("containers", running(f, id64("5"), 500));
    const v = await f.h.ContainerStatus({ container_id: id64("5"), verbose: true }, never);
    assert.equal(JSON.parse(v.info.info).pid, 500);
    assert.equal(f.statuses.size, 0);
    // A prefix finds it, and keeps nothing either.
    await f.h.ContainerStatus({ container_id: "5555" }, never);
    assert.equal(f.statuses.size, 0);
  } finally {
    f.t.cleanup();
  }
});

Deno.test("settle waits for the exit file while conmon runs, and not once conmon is gone", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-settle-" });
  try {
    const c = { id: "x", dirs: { exitDir: dir, conmonDir: dir } } as ContainerRecord;
    Deno.writeTextFileSync(`${dir}/conmon.pid`, "77");
    const procs = new Map<number, Proc>([[77, { state: "S", startTime: 9 }]]);
    const host = { fs: realFs, proc: { stat: (p: number) => procs.get(p) } } as unknown as Host;
    let slept = 0;
    let onSleep = () => {
      if (slept === 5) Deno.writeTextFileSync(`${dir}/x`, "1");
    };
    const sleep = (_ms: number) => {
      slept++;
      onSleep();
      return Promise.resolve();
    };
    await settle(host, c, sleep);
    assert.equal(slept, 5);
    Deno.removeSync(`${dir}/x`);
    // conmon ends (or its pid is another process's) meanwhile: no longer waited for.
    slept = 0;
    onSleep = () => procs.set(77, { state: "S", startTime: 10 });
    await settle(host, c, sleep);
    assert.equal(slept, 1);
    slept = 0;
    procs.set(77, { state: "S", startTime: 9 });
    onSleep = () => procs.set(77, { state: "Z", startTime: 9 });
    await settle(host, c, sleep);
    assert.equal(slept, 1);
    procs.delete(77);
    slept = 0;
    await settle(host, c, sleep);
    assert.equal(slept, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("StatusCache without pidfds reads /proc/PID/stat at each reuse, and an ended process is told", async () => {
  const f = fsHost();
  try {
    const id = id64("6");
    f.store.put("pods", criSandbox(id64("a")));
    f.procs.set(600, { state: "S", startTime: 1600 });
    let probes = 0;
    const statuses = new StatusCache(f.host, () => undefined, (pid) => {
      probes++;
      return f.procs.get(pid);
    });
    const h = containerHandlers(f.host, new Removals(f.host), statuses);
    f.store.put("containers", running(f, id, 600));
    await h.ContainerStatus({ container_id: id }, never);
    await h.ContainerStatus({ container_id: id }, never);
    assert.equal(statuses.hits, 1);
    assert.equal(probes, 1);
    f.procs.set(600, { state: "Z", startTime: 1600 });
    assert.deepEqual(statuses.answer(id), { ended: true });
    assert.equal(statuses.size, 0);
  } finally {
    f.t.cleanup();
  }
});
