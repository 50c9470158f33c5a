/**
 * Pods end to end on the FakeHost: create and teardown without root, each
 * step of the create failed in turn (and each step of rm -f), with the
 * host's census checked after each (src/testing/sweep.ts).
 */
import assert from "node:assert/strict";
import { loadPods } from "../spec/pod.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { type Scenario, sweep, type SweepResult } from "../testing/sweep.ts";
import { createPod, removePod, runPod, stopPod } from "./pod.ts";
import { eventLogPath } from "./event_log.ts";

const BUNDLE = "/fake/bundles/busybox";

function pod(name: string, o: { share?: boolean } = {}): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  shareProcessNamespace: ${o.share ?? false}
  containers:
  - name: app
    image: ${BUNDLE}
    args: ["sleep", "1000"]
    resources:
      limits: {cpu: 500m, memory: 64Mi}
  - name: side
    image: ${BUNDLE}
    args: ["sleep", "1000"]
    resources:
      limits: {cpu: 250m, memory: 32Mi}
`;
}

/** The event log's text ("" before anything was logged). */
function readLog(host: FakeHost): string {
  try {
    return host.fs.quietly(() => host.fs.readTextFile(eventLogPath(host.paths)));
  } catch {
    return "";
  }
}

const load = (name: string, o: { share?: boolean } = {}) =>
  loadPods(pod(name, o), `/fake/${name}.yaml`)[0];

/**
 * The bundles and an unrelated pod "other" of the same shape, running, that
 * must survive; it also makes the directories all pods share.
 */
async function withOther(host: FakeHost, o: { share?: boolean } = {}): Promise<void> {
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  await runPod(host, load("other", o), { network: null });
}

function report(what: string, r: SweepResult): void {
  console.log(
    `${what}: ${r.steps.length} create steps failed in turn (${r.tolerated.length} survived), ` +
      `${r.teardownSteps.length} teardown steps (${r.teardownTolerated.length} survived), ${r.ms} ms`,
  );
  if (r.tolerated.length) console.log(`  create survived: ${r.tolerated.join(", ")}`);
  if (r.teardownTolerated.length) {
    console.log(`  teardown survived: ${r.teardownTolerated.join(", ")}`);
  }
}

Deno.test("createPod() + rm -f on the FakeHost: rm undoes exactly what create made", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  await createPod(host, load("web"), { network: null });
  const made = diffSnapshots(before, host.snapshot());
  for (
    const want of [
      "+ records pods/web",
      "+ records containers/web_app created",
      "+ records containers/web_side created",
      "+ runtime fakert/web_app created",
      "+ runtime fakert/web_side created",
    ]
  ) assert.ok(made.some((d) => d.startsWith(want)), `${want}\n${made.join("\n")}`);
  assert.ok(made.some((d) => d.startsWith("+ cgroups ")), made.join("\n"));
  assert.ok(made.some((d) => d.startsWith("+ mounts ")), made.join("\n"));
  const logged = () => readLog(host).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(logged().filter((e) => e.action === "destroy"), [], "none before the removal");
  await removePod(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  // The history the records no longer tell: each member's destroy, then the pod's.
  const gone = logged().filter((e) => e.action === "destroy").map((e) => e.container ?? e.pod);
  assert.deepEqual(gone.slice(0, 2).sort(), ["web_app", "web_side"]);
  assert.deepEqual(gone.slice(2), ["web"]);
});

Deno.test("a pod create that fails and is undone logs no destroy: it was never reported made", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = readLog(host);
  host.failAt("runtime.create", 2); // the second member's: the first was made
  await assert.rejects(createPod(host, load("web"), { network: null }));
  assert.deepEqual(host.faults.pending(), []);
  assert.equal(readLog(host), before);
});

Deno.test("run, stop, rm of a pod on the FakeHost leaves the host as it was", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  await runPod(host, load("web"), { network: null });
  await assert.rejects(removePod(host, "web"), /running/);
  await stopPod(host, "web", 1);
  await removePod(host, "web");
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

const scenario = (o: { share?: boolean; run?: boolean }): Scenario => ({
  setup: (host) => withOther(host, o),
  create: (host) =>
    o.run
      ? runPod(host, load("web", o), { network: null })
      : createPod(host, load("web", o), { network: null }),
  teardown: (host) => removePod(host, "web", { force: true }),
});

Deno.test("createPod(): each step failed in turn leaves nothing; each step of rm -f failed leaves a retry that finishes", async () => {
  const r = await sweep(scenario({}), { teardownSweep: true });
  report("pod create (2 containers, pinned namespaces)", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.length >= 20, `${r.steps.length} steps`);
});

Deno.test("createPod() with a shared PID namespace (pause container): each step failed in turn leaves nothing", async () => {
  const r = await sweep(scenario({ share: true }), { teardownSweep: true });
  report("pod create (shareProcessNamespace, pause)", r);
  assert.deepEqual(r.problems, []);
});

Deno.test("runPod(): each step of create + start failed in turn leaves nothing", async () => {
  const r = await sweep(scenario({ run: true }), { teardownSweep: true });
  report("pod run", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.some((p) => p.op === "runtime.start"));
});
