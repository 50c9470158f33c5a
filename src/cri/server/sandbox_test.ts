import assert from "node:assert/strict";
import { sandboxHandlers } from "./sandbox.ts";
import { criContainer, criSandbox, failsWith, id64, never, testHost } from "./_testing.ts";
import { Status } from "../grpc.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import { sandboxInfo } from "../metadata.ts";

const OPTIONS = { network: "rkl0", version: "x", pauseImage: "" };

Deno.test("ListPodSandbox lists only CRI sandboxes, by id prefix, state and labels", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a")));
    t.store.put("pods", criSandbox(id64("b"), { labels: { app: "db" } }));
    t.store.put("pods", criSandbox(id64("c"), {}, { ready: false }));
    t.store.put("pods", { ...criSandbox("mine"), source: undefined }); // a user's pod
    const h = sandboxHandlers(t.host, OPTIONS);
    const ids = async (filter: unknown) =>
      (await h.ListPodSandbox({ filter }, never)).items.map((i: { id: string }) => i.id[0]);
    assert.deepEqual(await ids(null), ["a", "b", "c"]);
    assert.deepEqual(await ids({ id: "bb" }), ["b"]);
    assert.deepEqual(await ids({ state: { state: "SANDBOX_READY" } }), ["a", "b"]);
    assert.deepEqual(await ids({ state: { state: "SANDBOX_NOTREADY" } }), ["c"]);
    assert.deepEqual(await ids({ label_selector: { app: "db" } }), ["b"]);
    const [item] = (await h.ListPodSandbox({ filter: { id: "a" } }, never)).items;
    assert.deepEqual(item.metadata, {
      name: "pod-aaaa",
      uid: "uid-aaaa",
      namespace: "default",
      attempt: 0,
    });
    assert.equal(item.created_at, "1767323045000000000");
  } finally {
    t.cleanup();
  }
});

Deno.test("PodSandboxStatus: namespace modes, the IP only while ready, NOT_FOUND and ambiguous prefixes", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a"), { hostPID: true, shareProcessNamespace: false }));
    t.store.put("pods", criSandbox("a".repeat(63) + "b"));
    const h = sandboxHandlers(t.host, OPTIONS);
    const { status, info } = await h.PodSandboxStatus({ pod_sandbox_id: id64("a") }, never);
    assert.equal(status.state, "SANDBOX_READY");
    assert.deepEqual(status.linux.namespaces.options, { network: "POD", pid: "NODE", ipc: "POD" });
    assert.deepEqual(info, {});
    const verbose = await h.PodSandboxStatus({ pod_sandbox_id: id64("a"), verbose: true }, never);
    assert.equal(JSON.parse(verbose.info.info).cgroupPath, `rkl/pod-${id64("a")}`);
    await failsWith(
      () => h.PodSandboxStatus({ pod_sandbox_id: "aaa" }, never),
      Status.INVALID_ARGUMENT,
      /ambiguous/,
    );
    await failsWith(() => h.PodSandboxStatus({ pod_sandbox_id: "f" }, never), Status.NOT_FOUND);
    await failsWith(
      () => h.PodSandboxStatus({ pod_sandbox_id: "" }, never),
      Status.INVALID_ARGUMENT,
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("RunPodSandbox refuses another runtime handler, and a second sandbox of the same pod attempt", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a")));
    const h = sandboxHandlers(t.host, OPTIONS);
    const config = {
      metadata: { name: "pod-aaaa", namespace: "default", uid: "uid-aaaa", attempt: 0 },
      hostname: "",
      labels: {},
      annotations: {},
    };
    await failsWith(
      () => h.RunPodSandbox({ config, runtime_handler: "runc" }, never),
      Status.NOT_FOUND,
      /runtime handler "runc"/,
    );
    await failsWith(
      () => h.RunPodSandbox({ config }, never),
      Status.ALREADY_EXISTS,
      new RegExp(`exists: ${id64("a")}`),
    );
    await failsWith(
      () =>
        h.RunPodSandbox(
          { config: { ...config, metadata: { ...config.metadata, uid: "" } } },
          never,
        ),
      Status.INVALID_ARGUMENT,
      /config\.metadata\.uid/,
    );
    assert.equal(t.store.list("pods").length, 1); // nothing half-made
  } finally {
    t.cleanup();
  }
});

Deno.test("StopPodSandbox stops the members, marks the sandbox not ready and keeps it; gone is done", async () => {
  const t = testHost();
  try {
    const id = id64("a");
    t.store.put("pods", criSandbox(id));
    const h = sandboxHandlers(t.host, OPTIONS);
    assert.deepEqual(await h.StopPodSandbox({ pod_sandbox_id: id }, never), {});
    const rec = t.store.get<PodRecord>("pods", id)!;
    assert.equal(sandboxInfo(rec).ready, false);
    assert.equal(
      (await h.PodSandboxStatus({ pod_sandbox_id: id }, never)).status.state,
      "SANDBOX_NOTREADY",
    );
    // Unknown ids: done, as the kubelet's retries need.
    assert.deepEqual(await h.StopPodSandbox({ pod_sandbox_id: id64("f") }, never), {});
    assert.deepEqual(await h.RemovePodSandbox({ pod_sandbox_id: id64("f") }, never), {});
  } finally {
    t.cleanup();
  }
});

Deno.test("StopPodSandbox leaves other sandboxes' containers alone", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a")));
    t.store.put("pods", criSandbox(id64("b"), { containers: [id64("d")] }));
    t.store.put(
      "containers",
      criContainer(t, id64("d"), { sandboxId: id64("b"), status: "running" }),
    );
    await sandboxHandlers(t.host, OPTIONS).StopPodSandbox({ pod_sandbox_id: id64("a") }, never);
    assert.equal(sandboxInfo(t.store.get<PodRecord>("pods", id64("b"))!).ready, true);
  } finally {
    t.cleanup();
  }
});
