/**
 * removePods(): several pods on one bridge network torn down side by side
 * (kube down). The bridge is the network's: it stays, idle, when none but
 * them used it; when their network is gone (its conflist removed), the
 * bridge goes with them, once; one that another pod still uses stays; each
 * teardown step failed in turn leaves a retry that finishes
 * (src/testing/sweep.ts).
 */
import assert from "node:assert/strict";
import { loadPods } from "../../spec/pod.ts";
import { diffSnapshots, FakeHost } from "../../testing/fake_host.ts";
import { sweep } from "../../testing/sweep.ts";
import { createPod, removePods } from "../pod.ts";

const BUNDLE = "/fake/bundles/busybox";

const pod = (name: string) =>
  loadPods(
    `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  containers:
  - name: app
    image: ${BUNDLE}
    args: ["sleep", "1000"]
`,
    `/fake/${name}.yaml`,
  )[0];

const REPLICAS = ["web-0", "web-1", "web-2"];

/** The bundles, an unrelated pod on no network, and rkl0 made once before (its conflist, claim). */
async function setup(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  await createPod(host, pod("other"), { network: null });
  await createPod(host, pod("earlier"), { network: "rkl0" });
  await removePods(host, ["earlier"]);
}

const bridgeDeletes = (host: FakeHost) =>
  host.cmd.calls.filter((c) =>
    c.cmd === "ip" && c.args.join(" ") === "link delete rkl0 type bridge"
  )
    .length;

Deno.test("removePods() of every pod on rkl0 removes them all and leaves the network's bridge, idle", async () => {
  const host = new FakeHost();
  await setup(host);
  const before = host.snapshot();
  const deletesBefore = bridgeDeletes(host);
  for (const n of REPLICAS) await createPod(host, pod(n), { network: "rkl0" });
  assert.ok(host.fs.exists("/sys/class/net/rkl0"));
  assert.deepEqual(await removePods(host, [...REPLICAS, "never-made"]), REPLICAS);
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  assert.deepEqual(host.fs.readDir("/sys/class/net/rkl0/brif"), [], "idle");
  assert.equal(bridgeDeletes(host), deletesBefore);
});

Deno.test("removePods() of every pod on a network that is gone removes them all and its bridge, once", async () => {
  const host = new FakeHost();
  await setup(host);
  for (const n of REPLICAS) await createPod(host, pod(n), { network: "rkl0" });
  const deletesBefore = bridgeDeletes(host);
  host.fs.remove(`${host.paths.cniConfDir}/rkl0.conflist`); // the network removed under its pods
  assert.deepEqual(await removePods(host, REPLICAS), REPLICAS);
  assert.ok(!host.fs.exists("/sys/class/net/rkl0"), "the bridge went with its network's last pods");
  assert.equal(bridgeDeletes(host) - deletesBefore, 1);
});

Deno.test("removePods() of some pods on rkl0 keeps the bridge the others still use", async () => {
  const host = new FakeHost();
  await setup(host);
  const before = host.snapshot();
  for (const n of REPLICAS) await createPod(host, pod(n), { network: "rkl0" });
  const deletesBefore = bridgeDeletes(host);
  await removePods(host, REPLICAS.slice(0, 2));
  assert.ok(host.fs.exists("/sys/class/net/rkl0"), "web-2 still uses the bridge");
  assert.equal(bridgeDeletes(host), deletesBefore);
  assert.ok(host.store.get("pods", "web-2"));
  await removePods(host, ["web-2"]);
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

Deno.test("removePods() of three pods on rkl0: each teardown step failed in turn leaves a retry that finishes", async () => {
  const r = await sweep({
    setup,
    create: async (host) => {
      for (const n of REPLICAS) await createPod(host, pod(n), { network: "rkl0" });
    },
    teardown: (host) => removePods(host, REPLICAS),
    // A failed third create leaves the first two whole (this scenario makes them one by one).
  }, { teardownSweep: true, downAfterFailedCreate: true });
  assert.deepEqual(r.problems, []);
  assert.ok(r.teardownSteps.some((p) => p.op === "cni.del"), "the sweep reached the DELs");
});
