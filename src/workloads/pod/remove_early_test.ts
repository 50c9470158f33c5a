/**
 * removePod() with `early` (a served `pod rm`): it answers once the pod's
 * containers are gone and the pod is marked removing; the rest ends after.
 * A removal cut short (a dead remover) is finished by `pod run` of the name
 * and by `pod rm -f`.
 */
import assert from "node:assert/strict";
import { loadPods } from "../../spec/pod.ts";
import { diffSnapshots, FakeHost } from "../../testing/fake_host.ts";
import { createPod, getPod, listPods, type PodRecord, removePod } from "../pod.ts";
import { removalsSettled } from "./lifecycle.ts";

const BUNDLE = "/fake/bundles/busybox";

const pod = (name: string) =>
  loadPods(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers:\n  - {name: app, image: ${BUNDLE}, args: ["sleep", "1000"]}\n`,
    `/fake/${name}.yaml`,
  )[0];

async function setup(): Promise<FakeHost> {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  // rkl0 made once before (its conflist), so that the snapshots compare.
  await createPod(host, pod("earlier"), { network: "rkl0" });
  await removePod(host, "earlier", { force: true });
  return host;
}

Deno.test("removePod(early): answers with the members gone and the pod hidden; the rest then ends", async () => {
  const host = await setup();
  const before = host.snapshot();
  await createPod(host, pod("web"), { network: "rkl0" });
  await removePod(host, "web", { force: true, early: true });
  assert.equal(host.store.get("containers", "web_app"), undefined, "members go before the answer");
  assert.throws(() => getPod(host, "web"), /Cannot find pod "web"/);
  assert.deepEqual(await listPods(host), []);
  await removalsSettled();
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

Deno.test("a removal cut short is hidden, and pod run of the name or rm -f finishes it", async () => {
  const host = await setup();
  const before = host.snapshot();
  for (const finish of ["run", "rm"] as const) {
    await createPod(host, pod("cut"), { network: "rkl0" });
    const rec = host.store.get<PodRecord>("pods", "cut")!;
    host.store.put("pods", { ...rec, removing: true, remover: { pid: 999_999, start: 1 } });
    assert.throws(() => getPod(host, "cut"), /Cannot find pod "cut"/);
    assert.deepEqual(await listPods(host), []);
    if (finish === "run") {
      const again = await createPod(host, pod("cut"), { network: "rkl0" });
      assert.equal(again.removing, undefined);
      assert.equal((await listPods(host)).length, 1);
    }
    await removePod(host, "cut", { force: true });
    assert.deepEqual(diffSnapshots(before, host.snapshot()), [], finish);
  }
});
