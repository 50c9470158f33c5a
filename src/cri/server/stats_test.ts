import assert from "node:assert/strict";
import { statsHandlers, statsReader } from "./stats.ts";
import { criContainer, criSandbox, id64, never, testHost } from "./_testing.ts";

Deno.test("ContainerStats: usage_nano_cores comes from two samples; memory, and the writable layer's use", async () => {
  const t = testHost();
  try {
    const c = criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" });
    t.store.put("containers", c);
    Deno.mkdirSync(c.dirs.upper, { recursive: true });
    Deno.writeTextFileSync(`${c.dirs.upper}/f`, "1234567");
    let clock = 1_000_000_000n;
    const h = statsHandlers(t.host, statsReader(t.host, () => clock));
    t.usage.set(c.cgroupPath, {
      cpuNs: 1_000_000,
      memoryBytes: 900,
      workingSetBytes: 800,
      memoryLimit: 1000,
      rssBytes: 700,
    });
    const first = (await h.ContainerStats({ container_id: id64("1") }, never)).stats;
    assert.equal(first.cpu.usage_nano_cores, null); // one sample: no rate yet
    assert.deepEqual(first.cpu.usage_core_nano_seconds, { value: "1000000" });
    assert.deepEqual(first.memory.available_bytes, { value: "200" });
    assert.deepEqual(first.memory.working_set_bytes, { value: "800" });
    // du's count: the blocks of the layer's dir and its file.
    const used =
      (Deno.lstatSync(c.dirs.upper).blocks! + Deno.lstatSync(`${c.dirs.upper}/f`).blocks!) * 512;
    assert.deepEqual(first.writable_layer.used_bytes, { value: String(used) });
    assert.deepEqual(first.attributes.labels, { tier: "front" });
    // Half a CPU over one second.
    clock += 1_000_000_000n;
    t.usage.set(c.cgroupPath, { cpuNs: 501_000_000 });
    const second = (await h.ContainerStats({ container_id: id64("1") }, never)).stats;
    assert.deepEqual(second.cpu.usage_nano_cores, { value: "500000000" });
    assert.equal(second.memory.usage_bytes, null); // no memory controller: no figure, not 0
  } finally {
    t.cleanup();
  }
});

Deno.test("ListContainerStats: only containers with a cgroup (created or running)", async () => {
  const t = testHost();
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" }),
    );
    t.store.put(
      "containers",
      criContainer(t, id64("2"), { sandboxId: id64("a"), status: "exited" }),
    );
    t.store.put(
      "containers",
      criContainer(t, id64("3"), { sandboxId: id64("a"), status: "created" }),
    );
    const res = await statsHandlers(t.host).ListContainerStats({ filter: null }, never);
    assert.deepEqual(res.stats.map((s: { attributes: { id: string } }) => s.attributes.id[0]), [
      "1",
      "3",
    ]);
  } finally {
    t.cleanup();
  }
});

Deno.test("PodSandboxStats counts the processes in its members' cgroups and lists their stats", async () => {
  const t = testHost();
  try {
    const p = criSandbox(id64("a"));
    t.store.put("pods", p);
    t.store.put("pods", criSandbox(id64("b"), { labels: { app: "db" } }));
    const c1 = criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" });
    const c2 = criContainer(t, id64("2"), { sandboxId: id64("a"), status: "running" });
    t.store.put("containers", c1);
    t.store.put("containers", c2);
    t.usage.set(p.cgroupPath, { cpuNs: 5 });
    t.pids.set(c1.cgroupPath, [10, 11]);
    t.pids.set(c2.cgroupPath, [12]);
    const h = statsHandlers(t.host);
    const { stats } = await h.PodSandboxStats({ pod_sandbox_id: id64("a") }, never);
    assert.deepEqual(stats.linux.process.process_count, { value: "3" });
    assert.equal(stats.linux.containers.length, 2);
    assert.equal(stats.attributes.metadata.name, "pod-aaaa");
    // No cgroup for the sandbox: no count at all.
    const other = await h.PodSandboxStats({ pod_sandbox_id: id64("b") }, never);
    assert.equal(other.stats.linux.process.process_count, null);
    const listed = await h.ListPodSandboxStats(
      { filter: { label_selector: { app: "db" } } },
      never,
    );
    assert.deepEqual(listed.stats.map((s: { attributes: { id: string } }) => s.attributes.id), [
      id64("b"),
    ]);
  } finally {
    t.cleanup();
  }
});
