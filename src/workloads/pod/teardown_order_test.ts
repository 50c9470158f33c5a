/**
 * The order a pod's teardown starts its parts in. CNI DEL (the longest: the
 * bridge plugin deletes the veth, then runs iptables) is started before the
 * members' runtime deletes, whose synchronous steps (the runtime's sealed
 * copy, cgroup reads) would otherwise hold back DEL's spawn; and a pod's
 * create starts CNI ADD before its members' creates, for the same reason.
 */
import assert from "node:assert/strict";
import { loadPods } from "../../spec/pod.ts";
import { FakeHost } from "../../testing/fake_host.ts";
import { removePod, runPod } from "../pod.ts";

const BUNDLE = "/fake/bundles/busybox";

const seed = () =>
  loadPods(
    `apiVersion: v1
kind: Pod
metadata: {name: seed}
spec:
  containers:
  - name: app
    image: ${BUNDLE}
    args: ["sleep", "3600"]
`,
    "/fake/seed.yaml",
  )[0];

/** Where `op` is first seen in the host's calls since `from`. */
function firstAt(host: FakeHost, op: string, from: number): number {
  const i = host.faults.seen.slice(from).findIndex((p) => p.op === op);
  assert.ok(i >= 0, `${op} was never called`);
  return i;
}

Deno.test("pod run starts CNI ADD before its container's runtime create", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const from = host.faults.seen.length;
  await runPod(host, seed(), { network: "rkl0" });
  assert.ok(
    firstAt(host, "cni.add", from) < firstAt(host, "runtime.create", from),
    "ADD comes first",
  );
});

Deno.test("pod rm -f starts CNI DEL before its members' runtime deletes", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  await runPod(host, seed(), { network: "rkl0" });
  const from = host.faults.seen.length;
  await removePod(host, "seed", { force: true });
  assert.ok(
    firstAt(host, "cni.del", from) < firstAt(host, "runtime.delete", from),
    "DEL comes first",
  );
  assert.equal(host.store.get("pods", "seed"), undefined);
});
