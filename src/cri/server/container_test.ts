import assert from "node:assert/strict";
import { containerHandlers, resourceUpdateOf, statusImage } from "./container.ts";
import { criContainer, criSandbox, failsWith, id64, never, testHost } from "./_testing.ts";
import { Status } from "../grpc.ts";
import type { ContainerRecord } from "../../workloads/container.ts";

Deno.test("ListContainers filters by id prefix, sandbox, state and labels; user containers are not listed", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a")));
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" }),
    );
    t.store.put(
      "containers",
      criContainer(t, id64("2"), { sandboxId: id64("b"), status: "exited" }),
    );
    t.store.put(
      "containers",
      criContainer(t, id64("3"), { sandboxId: id64("a"), status: "created", labels: {} }),
    );
    t.store.put("containers", {
      ...criContainer(t, "mine", { sandboxId: "", status: "exited" }),
      source: undefined,
    });
    const h = containerHandlers(t.host);
    const ids = async (filter: unknown) =>
      (await h.ListContainers({ filter }, never)).containers.map((c: { id: string }) => c.id[0]);
    assert.deepEqual(await ids(null), ["1", "2", "3"]);
    assert.deepEqual(await ids({ id: "22" }), ["2"]);
    assert.deepEqual(await ids({ pod_sandbox_id: "aa" }), ["1", "3"]);
    assert.deepEqual(await ids({ state: { state: "CONTAINER_EXITED" } }), ["2"]);
    assert.deepEqual(await ids({ state: { state: "CONTAINER_CREATED" } }), ["3"]);
    assert.deepEqual(await ids({ label_selector: { tier: "front" } }), ["1", "2"]);
  } finally {
    t.cleanup();
  }
});

Deno.test("ContainerStatus reports exit code, times, limits and the mounts as asked for", async () => {
  const t = testHost();
  try {
    const mounts = [{
      container_path: "/data",
      host_path: "/srv",
      readonly: true,
      propagation: "PROPAGATION_PRIVATE",
    }];
    const rec = criContainer(t, id64("1"), { sandboxId: id64("a"), status: "exited", mounts }, {
      limits: { cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimit: 64 << 20 },
    });
    t.store.put("containers", rec);
    const h = containerHandlers(t.host);
    const { status, info } = await h.ContainerStatus({ container_id: "111" }, never);
    assert.equal(status.id, id64("1"));
    assert.equal(status.state, "CONTAINER_EXITED");
    assert.equal(status.exit_code, 3);
    assert.equal(status.finished_at, "1767323100000000000");
    assert.deepEqual(status.mounts, mounts);
    assert.deepEqual(status.resources.linux, {
      cpu_period: "100000",
      cpu_quota: "50000",
      cpu_shares: "0",
      memory_limit_in_bytes: String(64 << 20),
    });
    assert.deepEqual(status.metadata, { name: "c-1111", attempt: 0 });
    assert.deepEqual(info, {});
    await failsWith(() => h.ContainerStatus({ container_id: id64("9") }, never), Status.NOT_FOUND);
  } finally {
    t.cleanup();
  }
});

Deno.test("UpdateContainerResources writes the cgroup and the record; 0 leaves a setting; bad values name the proto field", async () => {
  const t = testHost();
  try {
    const id = id64("1");
    t.store.put(
      "containers",
      criContainer(t, id, { sandboxId: id64("a"), status: "running" }, {
        limits: { cpuShares: 2, memoryLimit: 64 << 20 },
      }),
    );
    const h = containerHandlers(t.host);
    await h.UpdateContainerResources({
      container_id: id,
      linux: {
        cpu_period: "100000",
        cpu_quota: "20000",
        cpu_shares: "0",
        memory_limit_in_bytes: "0",
      },
    }, never);
    assert.deepEqual(t.applied, [{
      rel: `rkl/pod-${id64("a")}/${id}`,
      limits: { cpuPeriod: 100_000, cpuQuota: 20_000 },
    }]);
    assert.deepEqual(t.store.get<ContainerRecord>("containers", id)!.limits, {
      cpuShares: 2,
      memoryLimit: 64 << 20,
      cpuPeriod: 100_000,
      cpuQuota: 20_000,
    });
    await failsWith(
      () => h.UpdateContainerResources({ container_id: id, linux: { cpu_period: "10" } }, never),
      Status.INVALID_ARGUMENT,
      /^linux\.cpu_period: must be from 1000 to 1000000 µs$/,
    );
    await failsWith(
      () =>
        h.UpdateContainerResources(
          { container_id: id, linux: { memory_limit_in_bytes: "4096" } },
          never,
        ),
      Status.INVALID_ARGUMENT,
      /^linux\.memory_limit_in_bytes: must be at least 4 MiB$/,
    );
    await failsWith(
      () => h.UpdateContainerResources({ container_id: id, linux: { cpu_shares: "-1" } }, never),
      Status.INVALID_ARGUMENT,
      /linux: -1 is not a count/,
    );
    assert.equal(t.applied.length, 1); // nothing written for a refused update
  } finally {
    t.cleanup();
  }
});

Deno.test("UpdateContainerResources on an exited container is FAILED_PRECONDITION and writes nothing", async () => {
  const t = testHost();
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "exited" }),
    );
    await failsWith(
      () =>
        containerHandlers(t.host).UpdateContainerResources({
          container_id: id64("1"),
          linux: { cpu_shares: "512" },
        }, never),
      Status.FAILED_PRECONDITION,
      /has exited/,
    );
    assert.deepEqual(t.applied, []);
  } finally {
    t.cleanup();
  }
});

Deno.test("resourceUpdateOf() maps LinuxContainerResources to the core's update, dropping zeros", () => {
  assert.deepEqual(resourceUpdateOf(null), {});
  assert.deepEqual(
    resourceUpdateOf({
      cpu_period: "0",
      cpu_quota: "1",
      cpu_shares: "2",
      memory_limit_in_bytes: "3",
    }),
    { cpuQuota: 1, cpuShares: 2, memoryLimit: 3 },
  );
});

Deno.test("CreateContainer: a sandbox not ready, no image, a missing image or a taken name is refused first", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a"), {}, { ready: false }));
    t.store.put("pods", criSandbox(id64("b")));
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("b"), status: "running", name: "web" }),
    );
    const h = containerHandlers(t.host);
    const config = { metadata: { name: "web", attempt: 0 }, image: { image: "busybox" } };
    await failsWith(
      () => h.CreateContainer({ pod_sandbox_id: id64("a"), config }, never),
      Status.FAILED_PRECONDITION,
      /is not ready/,
    );
    await failsWith(
      () =>
        h.CreateContainer({ pod_sandbox_id: id64("b"), config: { ...config, image: {} } }, never),
      Status.INVALID_ARGUMENT,
      /config\.image\.image/,
    );
    await failsWith(
      () => h.CreateContainer({ pod_sandbox_id: id64("b"), config }, never),
      Status.FAILED_PRECONDITION,
      /no image store/,
    );
    const image = { id: "sha256:abc" };
    (t.host as { images?: unknown }).images = {
      store: { find: (ref: string) => ref === "busybox" ? image : undefined },
    };
    await failsWith(
      () =>
        h.CreateContainer({
          pod_sandbox_id: id64("b"),
          config: { ...config, image: { image: "nginx" } },
        }, never),
      Status.NOT_FOUND,
      /image "nginx" is not present/,
    );
    await failsWith(
      () => h.CreateContainer({ pod_sandbox_id: id64("b"), config }, never),
      Status.ALREADY_EXISTS,
      new RegExp(`container web \\(attempt 0\\) exists in sandbox ${id64("b")}: ${id64("1")}`),
    );
    assert.equal(t.store.list("containers").length, 1);
  } finally {
    t.cleanup();
  }
});

Deno.test("StartContainer needs a created container; Stop and Remove of an unknown id are done", async () => {
  const t = testHost();
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" }),
    );
    const h = containerHandlers(t.host);
    await failsWith(
      () => h.StartContainer({ container_id: id64("1") }, never),
      Status.FAILED_PRECONDITION,
      /is running, not created/,
    );
    assert.deepEqual(await h.StopContainer({ container_id: id64("9"), timeout: 1 }, never), {});
    assert.deepEqual(await h.RemoveContainer({ container_id: id64("9") }, never), {});
  } finally {
    t.cleanup();
  }
});

Deno.test("ReopenContainerLog needs a running container", async () => {
  const t = testHost();
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "exited" }),
    );
    await failsWith(
      () => containerHandlers(t.host).ReopenContainerLog({ container_id: id64("1") }, never),
      Status.FAILED_PRECONDITION,
      /is exited, not running/,
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("statusImage names the pod's image, not the id the kubelet creates the container from", () => {
  const id = `sha256:${"ab".repeat(32)}`;
  const tags = (i: string) =>
    i === id ? ["registry.k8s.io/e2e-test-images/agnhost:2.63.0", "x:1"] : [];
  // The kubelet (1.30+): image = the id PullImage answered, user_specified_image = the pod's.
  assert.equal(
    statusImage(
      { image: id, user_specified_image: "registry.k8s.io/e2e-test-images/agnhost:2.63.0" },
      id,
      tags,
    ),
    "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
  );
  // An older kubelet or crictl: the id alone (with or without sha256:) gives the first tag.
  assert.equal(
    statusImage({ image: id }, id, tags),
    "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
  );
  assert.equal(
    statusImage({ image: id.slice(7) }, id, tags),
    "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
  );
  // A name stays as asked; an untagged image keeps the id.
  assert.equal(statusImage({ image: "busybox:1.36" }, id, tags), "busybox:1.36");
  const other = `sha256:${"cd".repeat(32)}`;
  assert.equal(statusImage({ image: other }, other, tags), other);
});
