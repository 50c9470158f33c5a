import assert from "node:assert/strict";
import { resourceUpdateError, updateContainerResources } from "./update_resources.ts";
import type { Host } from "./host.ts";
import type { ContainerRecord } from "./container.ts";
import type { CgroupLimits } from "../sys/cgroups/mod.ts";
import { MemoryStore } from "../store/store.ts";
import { ConflictError, NotFoundError, SpecError } from "../errors.ts";

function setup(status: "running" | "exited") {
  const store = new MemoryStore();
  const applied: { rel: string; limits: CgroupLimits }[] = [];
  const host = {
    store,
    cgroups: { apply: (rel: string, limits: CgroupLimits) => applied.push({ rel, limits }) },
    // The runtime agrees with the record, so a refresh keeps it as it is.
    runtimeFor: () => ({
      state: (id: string) =>
        Promise.resolve(status === "running" ? { id, status, pid: 0 } : undefined),
    }),
  } as unknown as Host;
  store.put("containers", {
    schemaVersion: 1,
    kind: "container",
    name: "web",
    id: "web",
    status,
    cgroupPath: "rkl/web",
    limits: { cpuShares: 512, memoryLimit: 64 << 20 },
    runtime: { name: "youki", binary: "/bin/false", root: "/run/x" },
    dirs: { exitDir: "/nonexistent/exits" },
  } as unknown as ContainerRecord);
  return { host, store, applied };
}

Deno.test("updateContainerResources() writes only the fields given, to the cgroup and the record", async () => {
  const { host, store, applied } = setup("running");
  const rec = await updateContainerResources(host, "web", { cpuQuota: 50_000, cpuPeriod: 100_000 });
  assert.deepEqual(applied, [{ rel: "rkl/web", limits: { cpuQuota: 50_000, cpuPeriod: 100_000 } }]);
  const want = { cpuShares: 512, memoryLimit: 64 << 20, cpuQuota: 50_000, cpuPeriod: 100_000 };
  assert.deepEqual(rec.limits, want);
  assert.deepEqual(store.get<ContainerRecord>("containers", "web")!.limits, want);
});

Deno.test("updateContainerResources(): a value the kernel refuses is a SpecError naming the field, and nothing is written", async () => {
  const { host, store, applied } = setup("running");
  for (
    const [update, path] of [
      [{ cpuPeriod: 999 }, "cpuPeriod"],
      [{ cpuPeriod: 1_000_001 }, "cpuPeriod"],
      [{ memoryLimit: 4 * 1024 * 1024 - 1 }, "memoryLimit"],
      [{ cpuShares: 0 }, "cpuShares"],
      [{ cpuQuota: 1.5 }, "cpuQuota"],
    ] as const
  ) {
    await assert.rejects(
      () => updateContainerResources(host, "web", update),
      (e) => e instanceof SpecError && e.path === path,
    );
  }
  assert.deepEqual(applied, []);
  assert.deepEqual(store.get<ContainerRecord>("containers", "web")!.limits, {
    cpuShares: 512,
    memoryLimit: 64 << 20,
  });
  assert.equal(resourceUpdateError({ cpuPeriod: 1000, memoryLimit: 4 * 1024 * 1024 }), undefined);
});

Deno.test("updateContainerResources(): an exited container is a ConflictError; a missing one NotFoundError", async () => {
  const { host, applied } = setup("exited");
  await assert.rejects(
    () => updateContainerResources(host, "web", { cpuShares: 2 }),
    ConflictError,
  );
  await assert.rejects(
    () => updateContainerResources(host, "nope", { cpuShares: 2 }),
    NotFoundError,
  );
  assert.deepEqual(applied, []);
});
