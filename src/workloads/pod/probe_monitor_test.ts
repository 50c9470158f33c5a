/**
 * The pod probe monitor: its pure rules, and its pass (tick) on the FakeHost,
 * whose runtime runs no exec, so that every exec probe fails: a liveness probe
 * gives up after failureThreshold periods, the container is stopped, and it is
 * restarted after the kubelet's 10 s back-off; readiness shows in `pod state`.
 */
import assert from "node:assert/strict";
import { loadPods } from "../../spec/pod.ts";
import { diffSnapshots, FakeHost } from "../../testing/fake_host.ts";
import { getContainer } from "../container.ts";
import { getPod, podView, removePod, runPod, stopPod } from "../pod.ts";
import {
  memberProbes,
  memberReady,
  type PodProbeState,
  restartBackoffMs,
  restartDue,
  tick,
} from "./probe_monitor.ts";

const BUNDLE = "/fake/bundles/busybox";

// After kubernetes.io's exec-liveness.yaml (a liveness exec probe every 5 s), with a
// readiness probe and shorter periods.
const POD = `apiVersion: v1
kind: Pod
metadata:
  name: liveness-exec
spec:
  restartPolicy: RESTART
  containers:
  - name: liveness
    image: ${BUNDLE}
    args: [/bin/sh, -c, "touch /tmp/healthy; sleep 600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
  - name: plain
    image: ${BUNDLE}
    args: [sleep, "600"]
`;

const load = (policy = "Always") =>
  loadPods(POD.replace("RESTART", policy), "/fake/liveness.yaml")[0];

Deno.test("restartDue(): the pod's policy, the kubelet's back-off, never after `stop`", () => {
  const t = Date.UTC(2026, 0, 1);
  const exited = { exitCode: 1, restarts: 0, finishedAt: new Date(t).toISOString() };
  assert.equal(restartDue(exited, "Always", t), t + 10_000);
  assert.equal(restartDue({ ...exited, restarts: 2 }, "OnFailure", t), t + 40_000);
  assert.equal(restartDue({ ...exited, exitCode: 0 }, "OnFailure", t), null);
  assert.equal(restartDue(exited, "Never", t), null);
  assert.equal(restartDue({ ...exited, stoppedByUser: true }, "Always", t), null);
  assert.deepEqual([0, 1, 5, 20].map(restartBackoffMs), [10_000, 20_000, 300_000, 300_000]);
});

Deno.test("memberProbes() keeps the members with a probe; memberReady() as the kubelet says ready", () => {
  const p = load();
  const probes = memberProbes("liveness-exec", p.spec.containers.map((c) => c.spec))!;
  assert.deepEqual(Object.keys(probes), ["liveness-exec_liveness"]);
  assert.equal(probes["liveness-exec_liveness"].liveness?.failureThreshold, 2);
  assert.equal(memberProbes("x", [{ name: "a", ports: [] }]), undefined);
  const m = probes["liveness-exec_liveness"];
  const ok = { lastAt: 1, failures: 0, successes: 1, ok: true };
  assert.equal(memberReady("running", m, { pid: 7, readiness: ok }, 7), true);
  assert.equal(memberReady("running", m, { pid: 7, readiness: ok }, 8), false, "another process");
  assert.equal(memberReady("running", m, undefined, 7), false, "readiness not run yet");
  assert.equal(
    memberReady("running", undefined, undefined, 7),
    true,
    "no probes: running is ready",
  );
  assert.equal(memberReady("exited", undefined, undefined, null), false);
});

Deno.test("pod run starts the probe monitor; a liveness probe that fails stops the container, restarted after 10 s", async () => {
  const host = new FakeHost();
  Object.assign(host, { selfArgv: ["/fake/rkl"] });
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  const before = host.snapshot();
  await runPod(host, load(), { network: null });
  assert.deepEqual(host.detached, [[
    "/fake/rkl",
    "--root",
    host.paths.root,
    "--run-root",
    host.paths.runRoot,
    "__pod-probes",
  ]]);
  assert.ok(
    host.fs.readDir(`${host.paths.runRoot}/probes`).some((e) => e.name === "liveness-exec.wake"),
  );
  const rec = getPod(host, "liveness-exec");
  const states: PodProbeState = { pod: rec.name, updatedAt: "", containers: {} };
  // Every exec probe fails here: two periods, and liveness gives up.
  for (let i = 0; i < 3; i++) {
    assert.equal(await tick(host, rec, states), true);
    await host.sleep(1000);
  }
  const c = getContainer(host, "liveness-exec_liveness");
  assert.equal(c.status, "exited");
  assert.equal(c.stoppedByUser ?? false, false);
  assert.equal(states.containers.liveness.lastFailure?.probe, "liveness");
  assert.equal(states.containers.liveness.readiness?.ok, false);
  assert.equal(getContainer(host, "liveness-exec_plain").status, "running");
  // The restart waits the back-off from its exit.
  await tick(host, rec, states);
  assert.ok(states.containers.liveness.restartAt, "a restart is due");
  assert.equal(getContainer(host, "liveness-exec_liveness").status, "exited");
  await host.sleep(10_000);
  await tick(host, rec, states);
  const again = getContainer(host, "liveness-exec_liveness");
  assert.equal(again.status, "running");
  assert.equal(again.restarts, 1);
  const view = await podView(host, getPod(host, "liveness-exec"));
  const live = view.containers.find((x) => x.name === "liveness")!;
  assert.equal(live.restarts, 1);
  assert.equal(live.ready, false, "its readiness probe has not passed");
  assert.equal(view.containers.find((x) => x.name === "plain")!.ready, true);
  // `pod stop` means stop: nothing is restarted, and the monitor has nothing left to do.
  await stopPod(host, "liveness-exec", 1);
  await host.sleep(60_000);
  assert.equal(await tick(host, rec, states), false);
  assert.equal(getContainer(host, "liveness-exec_liveness").status, "exited");
  await removePod(host, "liveness-exec", { force: true });
  // Shared dirs made on first use stay (as with any first pod); nothing of this pod does.
  assert.deepEqual(
    diffSnapshots(before, host.snapshot()).filter((d) => /liveness|probes\/./.test(d)),
    [],
  );
});

Deno.test("restartPolicy Never: a container a liveness probe stopped stays stopped", async () => {
  const host = new FakeHost();
  Object.assign(host, { selfArgv: ["/fake/rkl"] });
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  await runPod(host, load("Never"), { network: null });
  const rec = getPod(host, "liveness-exec");
  const states: PodProbeState = { pod: rec.name, updatedAt: "", containers: {} };
  for (let i = 0; i < 3; i++) {
    await tick(host, rec, states);
    await host.sleep(1000);
  }
  await host.sleep(20_000);
  await tick(host, rec, states);
  assert.equal(getContainer(host, "liveness-exec_liveness").status, "exited");
  assert.equal(getContainer(host, "liveness-exec_liveness").restarts ?? 0, 0);
  await removePod(host, "liveness-exec", { force: true });
});

Deno.test("a Job's pod is not restarted in place: its job monitor decides", async () => {
  const host = new FakeHost();
  Object.assign(host, { selfArgv: ["/fake/rkl"] });
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  const p = load("OnFailure");
  p.spec.annotations = { ...p.spec.annotations, "kube.rkl.dev/owner": "Job/batch" };
  await runPod(host, p, { network: null });
  const rec = getPod(host, "liveness-exec");
  const states: PodProbeState = { pod: rec.name, updatedAt: "", containers: {} };
  for (let i = 0; i < 3; i++) {
    await tick(host, rec, states);
    await host.sleep(1000);
  }
  assert.equal(getContainer(host, "liveness-exec_liveness").status, "exited");
  await host.sleep(20_000);
  await tick(host, rec, states);
  assert.equal(getContainer(host, "liveness-exec_liveness").restarts ?? 0, 0);
  assert.equal(states.containers.liveness.restartAt, undefined);
  await removePod(host, "liveness-exec", { force: true });
});
