/**
 * A container that exits as it starts: the runtime's `state` may still see
 * its process (a zombie conmon has not reaped yet) while conmon writes the
 * exit file right after. The exit file, read after the state, decides: the
 * CRI reported such a container RUNNING with no start time, and the kubelet
 * kept that for good (node e2e "runAsNonRoot … image specified user ID",
 * `id -u` in the nonroot image, timed out waiting for the pod to succeed).
 */
import assert from "node:assert/strict";
import { loadContainer } from "../../spec/container.ts";
import { FakeHost } from "../../testing/fake_host.ts";
import { getContainer, runContainer } from "../container.ts";
import { killContainer, stopContainer } from "./lifecycle.ts";
import { exitTime, refresh } from "./status.ts";

Deno.test("refresh(): an exit file written after the runtime said running makes the container exited", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  const spec = `name: quick\nimage: /fake/bundles/busybox\nargs: ["id", "-u"]\n`;
  await runContainer(host, loadContainer(spec, "/fake/quick.yaml"), { network: null });
  const rec = getContainer(host, "quick");
  assert.equal(rec.status, "running");
  const rt = host.runtime;
  const state = rt.state.bind(rt);
  rt.state = async (id) => {
    const st = await state(id); // the runtime saw the process …
    // … and conmon reaped it and wrote its exit file just after.
    host.fs.writeTextFile(`${rec.dirs.exitDir}/${rec.id}`, "0");
    return st;
  };
  const now = await refresh(host, rec);
  assert.equal(now.status, "exited");
  assert.equal(now.exitCode, 0);
});

Deno.test("exitTime(): the exit file's mtime, but never before the start (the kernel's coarse file clock)", () => {
  const started = "2026-01-01T00:00:00.944Z";
  assert.equal(exitTime(new Date("2026-01-01T00:00:00.943Z"), started)?.toISOString(), started);
  assert.equal(
    exitTime(new Date("2026-01-01T00:00:01.000Z"), started)?.toISOString(),
    "2026-01-01T00:00:01.000Z",
  );
  assert.equal(
    exitTime(new Date("2026-01-01T00:00:00.5Z"))?.toISOString(),
    "2026-01-01T00:00:00.500Z",
  );
  assert.equal(exitTime(null, started), undefined);
});

/**
 * The exit file's mtime comes from the kernel's coarse clock: a process
 * killed at once can seem to have exited a tick before rkl sent the kill.
 * The fake runtime's kill here writes the exit file 3 ms in the past.
 */
function coarseKills(host: FakeHost): void {
  const rt = host.runtime;
  const kill = rt.kill.bind(rt);
  rt.kill = async (id, sig, options) => {
    host.clock -= 3;
    try {
      await kill(id, sig, options);
    } finally {
      host.clock += 3;
    }
  };
}

/** `quick` running `sleep`, its kills coarse; 50 ms later, the time a kill now is sent at. */
async function sleeperWithCoarseKills(): Promise<{ host: FakeHost; killedAt: string }> {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  const spec = `name: quick\nimage: /fake/bundles/busybox\nargs: ["sleep", "100"]\n`;
  await runContainer(host, loadContainer(spec, "/fake/quick.yaml"), { network: null });
  coarseKills(host);
  host.clock += 50;
  return { host, killedAt: host.now().toISOString() };
}

Deno.test("stop: the exit is never timed before the kill that ended it (docker's kill, then die)", async () => {
  const { host, killedAt } = await sleeperWithCoarseKills();
  const rec = await stopContainer(host, "quick", 1);
  assert.equal(rec.status, "exited");
  assert.equal(rec.finishedAt, killedAt);
  assert.equal(getContainer(host, "quick").finishedAt, killedAt);
});

Deno.test("kill: a later look at the exit times it no earlier than the kill, and a hostile signaledAt is ignored", async () => {
  const { host, killedAt } = await sleeperWithCoarseKills();
  await killContainer(host, "quick", "SIGKILL");
  const later = await refresh(host, getContainer(host, "quick"));
  assert.equal(later.status, "exited");
  assert.equal(later.finishedAt, killedAt);
  // A record read back from disk: a signaledAt that is no time leaves the file's time.
  assert.equal(
    exitTime(new Date("2026-01-01T00:00:01.000Z"), "not a time", undefined)?.toISOString(),
    "2026-01-01T00:00:01.000Z",
  );
  assert.equal(exitTime(new Date(NaN), "2026-01-01T00:00:01.000Z"), undefined);
});
