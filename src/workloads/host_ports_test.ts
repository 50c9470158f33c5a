/**
 * The side effects moved behind the Host's ports (issue 30 item 3): the
 * run root's epoch, the health monitor's start and its state files, and the
 * stats reader, each driven by a FakeHost with no real file or process.
 */
import assert from "node:assert/strict";
import { FakeHost } from "../testing/fake_host.ts";
import { readHealth, removeHealth } from "./health.ts";
import { ensureHealthMonitor, healthDir, healthFile } from "./health_spawn.ts";
import { runRootEpoch } from "./host.ts";
import { readTextFrom } from "./stats.ts";

Deno.test("runRootEpoch() makes the epoch once in the fs port, from its boot_id, and reads it back after", () => {
  const host = new FakeHost();
  host.fs.mkdir("/proc/sys/kernel/random", { recursive: true });
  host.fs.writeTextFile(
    "/proc/sys/kernel/random/boot_id",
    "0123abcd-ffff-4000-8000-000000000000\n",
  );
  const run = "/fake/run/epoch-test";
  const epoch = runRootEpoch(run, host.fs);
  assert.match(epoch, /^0123abcd-[0-9a-f]{8}$/);
  assert.equal(host.fs.readTextFile(`${run}/epoch`), `${epoch}\n`);
  assert.equal(host.fs.stat(run).mode! & 0o777, 0o711);
  assert.equal(runRootEpoch(run, host.fs), epoch, "a second call reads the first one's epoch");
});

Deno.test("ensureHealthMonitor() makes the health dir in the fs port and starts the monitor through proc.spawnDetached", () => {
  const host = new FakeHost();
  const h = { paths: host.paths, fs: host.fs, proc: host.proc, selfArgv: ["/usr/bin/rkl"] };
  ensureHealthMonitor(h);
  assert.ok(host.fs.stat(healthDir(host)).isDirectory);
  assert.equal(host.fs.stat(healthDir(host)).mode! & 0o777, 0o700);
  assert.deepEqual(host.detached, [[
    "/usr/bin/rkl",
    "--root",
    host.paths.root,
    "--run-root",
    host.paths.runRoot,
    "__health-monitor",
  ]]);
  // A host that cannot start helpers says so, and starts nothing.
  assert.throws(() => ensureHealthMonitor({ ...h, selfArgv: undefined }), /cannot start helper/);
  assert.throws(
    () => ensureHealthMonitor({ ...h, proc: { ...host.proc, spawnDetached: undefined } }),
    /cannot start helper/,
  );
  assert.equal(host.detached.length, 1);
});

Deno.test("readHealth() and removeHealth() use the fs port: the recorded state for this process, gone after", () => {
  const host = new FakeHost();
  host.fs.mkdir(healthDir(host), { recursive: true });
  const st = { status: "unhealthy", failingStreak: 3, pidStart: 42, log: [] };
  host.fs.writeTextFile(healthFile(host, "web"), JSON.stringify(st));
  assert.deepEqual(readHealth(host, { name: "web", pidStart: 42 }), st);
  // Another process of the same name starts afresh.
  assert.equal(readHealth(host, { name: "web", pidStart: 43 }).status, "starting");
  removeHealth(host, "web");
  assert.throws(() => host.fs.stat(healthFile(host, "web")), Deno.errors.NotFound);
  assert.equal(readHealth(host, { name: "web", pidStart: 42 }).status, "starting");
});

Deno.test("readTextFrom() reads a cgroup file through the fs port; a missing one is undefined", () => {
  const host = new FakeHost();
  host.fs.mkdir("/sys/fs/cgroup/pids/rkl/c1", { recursive: true });
  host.fs.writeTextFile("/sys/fs/cgroup/pids/rkl/c1/pids.current", "7\n");
  const read = readTextFrom(host.fs);
  assert.equal(read("/sys/fs/cgroup/pids/rkl/c1/pids.current"), "7\n");
  assert.equal(read("/sys/fs/cgroup/pids/rkl/c1/nope"), undefined);
});
