import assert from "node:assert/strict";
import { containerInfo, isCri, markNotReady, sandboxInfo, sandboxSource } from "./metadata.ts";
import { sandboxHandlers } from "./server/sandbox.ts";
import { containerHandlers } from "./server/container.ts";
import { criContainer, criSandbox, id64, never, testHost } from "./server/_testing.ts";
import type { PodRecord } from "../workloads/pod.ts";

const OPTIONS = { network: "rkl0", version: "x", pauseImage: "" };

Deno.test("a CRI record keeps the CRI's metadata as its source: kind cri, NAMESPACE/NAME, no cri field", () => {
  const p = criSandbox(id64("a"));
  assert.equal(p.cri, undefined);
  assert.equal(p.source?.kind, "cri");
  assert.equal(p.source?.name, "default/pod-aaaa");
  assert.equal(sandboxInfo(p).uid, "uid-aaaa");
  assert.ok(isCri(p));
  // A user's pod, or one another front end made, is not the CRI's.
  assert.ok(!isCri({ ...p, source: undefined }));
  assert.ok(!isCri({ ...p, source: { kind: "yaml", name: "web" } }));
});

Deno.test("records written with the old cri field still list, answer status, and are rewritten when stopped", async () => {
  const t = testHost();
  try {
    const id = id64("a");
    t.store.put("pods", criSandbox(id, {}, { legacy: true }));
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id, status: "exited", legacy: true }),
    );
    const old = t.store.get<PodRecord>("pods", id)!;
    assert.equal(old.source, undefined);
    assert.equal((old.cri as { namespace: string }).namespace, "default");

    const sandboxes = sandboxHandlers(t.host, OPTIONS);
    const containers = containerHandlers(t.host);
    const items = (await sandboxes.ListPodSandbox({}, never)).items;
    assert.deepEqual(items.map((i: { id: string }) => i.id), [id]);
    assert.equal(items[0].metadata.uid, "uid-aaaa");
    const listed = (await containers.ListContainers({}, never)).containers;
    assert.deepEqual(listed.map((c: { pod_sandbox_id: string }) => c.pod_sandbox_id), [id]);
    const { status } = await containers.ContainerStatus({ container_id: id64("1") }, never);
    assert.equal(status.metadata.name, "c-1111");

    await sandboxes.StopPodSandbox({ pod_sandbox_id: id }, never);
    const now = t.store.get<PodRecord>("pods", id)!;
    assert.equal(now.cri, undefined);
    assert.deepEqual(now.source, sandboxSource({ ...sandboxInfo(old), ready: false }));
    assert.equal(
      (await sandboxes.PodSandboxStatus({ pod_sandbox_id: id }, never)).status.state,
      "SANDBOX_NOTREADY",
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("markNotReady() keeps every other field of the CRI's metadata", () => {
  const p = criSandbox(id64("b"), {}, { legacy: true });
  const before = sandboxInfo(p);
  markNotReady(p);
  assert.deepEqual(sandboxInfo(p), { ...before, ready: false });
  const c = criContainer({ root: "/x", states: new Map() } as never, id64("1"), {
    sandboxId: id64("b"),
    status: "exited",
    legacy: true,
  });
  assert.equal(containerInfo(c).sandboxId, id64("b"));
});
