import assert from "node:assert/strict";
import { deleteWithRetry, exitReason } from "./container.ts";
import type { Host } from "./host.ts";
import type { OciRuntime } from "../oci/runtime.ts";
import type { CgroupManager } from "../sys/cgroups/mod.ts";
import { CgroupV1Manager } from "../sys/cgroups/v1.ts";
import { CgroupV2Manager } from "../sys/cgroups/v2.ts";

const ref = { name: "youki", binary: "/bin/false", root: "/run/x" };

/** A runtime whose delete rmdirs the container's own cgroup only, as youki 0.7.0 does. */
function rmdirRuntime(dir: string, calls: string[]): OciRuntime {
  return {
    delete: () => {
      calls.push("delete");
      Deno.removeSync(dir); // ENOTEMPTY (cgroupfs: EBUSY) while a child is there
      return Promise.resolve();
    },
  } as unknown as OciRuntime;
}

Deno.test("deleteWithRetry() removes sub-cgroups before the runtime's delete, so the first delete succeeds (v2 tree)", async () => {
  const root = await Deno.makeTempDir({ prefix: "rkl-cgtd-test-" });
  try {
    const cgroups = new CgroupV2Manager(root);
    for (const d of ["a/b", "c"]) Deno.mkdirSync(`${root}/rkl/web/${d}`, { recursive: true });
    const calls: string[] = [];
    const host = {
      cgroups,
      runtimeFor: () => rmdirRuntime(`${root}/rkl/web`, calls),
      sleep: () => {
        calls.push("sleep");
        return Promise.resolve();
      },
    } as unknown as Host;
    await deleteWithRetry(host, { id: "web", runtime: ref, cgroupPath: "rkl/web" });
    assert.deepEqual(calls, ["delete"]);
    assert.deepEqual(cgroups.dirs("rkl/web"), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deleteWithRetry(): a child still holding tasks goes after the runtime's kill, before the retry", async () => {
  const calls: string[] = [];
  let busy = true;
  const cgroups = {
    removeChildren: (rel: string) => {
      calls.push(`children ${rel}`);
      if (busy) throw new Deno.errors.Busy("tasks still there");
    },
  } as unknown as CgroupManager;
  const rt = {
    delete: () => {
      calls.push("delete");
      if (busy) {
        busy = false; // its kill reached the child's tasks; its rmdir failed on the child
        return Promise.reject(new Error("failed to delete container"));
      }
      return Promise.resolve();
    },
  } as unknown as OciRuntime;
  const host = {
    cgroups,
    runtimeFor: () => rt,
    sleep: () => {
      calls.push("sleep");
      return Promise.resolve();
    },
  } as unknown as Host;
  await deleteWithRetry(host, { id: "web", runtime: ref, cgroupPath: "rkl/web" });
  assert.deepEqual(calls, [
    "children rkl/web",
    "delete",
    "sleep",
    "children rkl/web",
    "delete",
  ]);
});

Deno.test("exitReason() says OOMKilled for 137 with an OOM kill counted in the memory cgroup, as the CRI does", async () => {
  const root = await Deno.makeTempDir({ prefix: "rkl-oom-test-" });
  try {
    const cgroups = new CgroupV1Manager({ memory: `${root}/memory` });
    Deno.mkdirSync(`${root}/memory/rkl/web`, { recursive: true });
    const oom = (n: number) =>
      Deno.writeTextFileSync(
        `${root}/memory/rkl/web/memory.oom_control`,
        `oom_kill_disable 0\nunder_oom 0\noom_kill ${n}\n`,
      );
    const host = { cgroups } as unknown as Host;
    const c = (status: "exited" | "running", exitCode?: number) => ({
      status,
      exitCode,
      cgroupPath: "rkl/web",
    });
    oom(0);
    assert.equal(exitReason(host, c("exited", 137)), "Error");
    assert.equal(exitReason(host, c("exited", 0)), "Completed");
    oom(1);
    assert.equal(exitReason(host, c("exited", 137)), "OOMKilled");
    assert.equal(exitReason(host, c("exited", 1)), "Error");
    assert.equal(exitReason(host, c("running")), undefined);
    Deno.removeSync(`${root}/memory/rkl/web`, { recursive: true });
    assert.equal(exitReason(host, c("exited", 137)), "Error", "no cgroup left: no OOM evidence");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
