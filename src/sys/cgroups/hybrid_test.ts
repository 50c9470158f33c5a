import assert from "node:assert/strict";
import { hybridUnifiedRoot, joinUnified } from "./hybrid.ts";
import { CgroupV1Manager } from "./v1.ts";
import { CgroupV2Manager } from "./v2.ts";
import { pathExists as exists } from "../fsutil.ts";
import { joinUnifiedTwin } from "../../workloads/container/conmon.ts";
import type { Host } from "../../workloads/host.ts";

/**
 * A fake hybrid cgroupfs: v1 cpu, memory and pids, a named systemd
 * hierarchy, and a cgroup2 `unified` with its root's interface files; the
 * kubelet's pod dir exists in every hierarchy, as on the real host.
 */
async function fakeHybrid(
  fn: (root: string, m: CgroupV1Manager) => void | Promise<void>,
  options: { unified?: boolean } = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "rkl-hybrid-test-" });
  try {
    const mounts: Record<string, string> = {};
    for (const c of ["cpu", "memory", "pids"]) {
      mounts[c] = `${root}/${c}`;
      Deno.mkdirSync(`${root}/${c}/kubepods/burstable/podA`, { recursive: true });
    }
    Deno.mkdirSync(`${root}/systemd/kubepods/burstable/podA`, { recursive: true });
    Deno.mkdirSync(`${root}/unified/kubepods/burstable/podA`, { recursive: true });
    if (options.unified !== false) Deno.writeTextFileSync(`${root}/unified/cgroup.controllers`, "");
    const m = new CgroupV1Manager(mounts, [`${root}/systemd`, `${root}/unified`]);
    await fn(root, m);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("joinUnified() on a hybrid host makes the cgroup's twin in unified/ (not in name=systemd) and writes the pid to its cgroup.procs", async () => {
  await fakeHybrid((root, m) => {
    assert.equal(hybridUnifiedRoot(m), `${root}/unified`);
    const rel = "kubepods/burstable/podA/c1";
    assert.equal(joinUnified(m, rel, 4242), `${root}/unified/${rel}`);
    assert.equal(Deno.readTextFileSync(`${root}/unified/${rel}/cgroup.procs`), "4242");
    assert.ok(!exists(`${root}/systemd/${rel}`), "only the cgroup2 hierarchy");
    // Missing parents are made too (rkl's own `rkl/<id>` has none there yet).
    assert.equal(joinUnified(m, "rkl/web", 77), `${root}/unified/rkl/web`);
    assert.equal(Deno.readTextFileSync(`${root}/unified/rkl/web/cgroup.procs`), "77");
  });
});

Deno.test("the twin goes with the container's cgroup: remove() rmdirs it in unified/ too, and leaves the pod's", async () => {
  await fakeHybrid((root, m) => {
    const rel = "kubepods/burstable/podA/c1";
    for (const c of ["cpu", "memory", "pids"]) Deno.mkdirSync(`${root}/${c}/${rel}`);
    joinUnified(m, rel, 4242);
    // cgroupfs has only directories to rmdir; the fake's cgroup.procs file goes first.
    Deno.removeSync(`${root}/unified/${rel}/cgroup.procs`);
    m.remove(rel);
    assert.ok(!exists(`${root}/unified/${rel}`));
    assert.ok(!exists(`${root}/memory/${rel}`));
    assert.ok(exists(`${root}/unified/kubepods/burstable/podA`));
  });
});

Deno.test("joinUnified() does nothing where there is no hybrid cgroup2 mount (v1 only, or v2), and refuses a bad path or pid", async () => {
  await fakeHybrid((root, m) => {
    assert.equal(hybridUnifiedRoot(m), undefined);
    assert.equal(joinUnified(m, "rkl/web", 4242), undefined);
    assert.ok(!exists(`${root}/unified/rkl`));
    assert.throws(() => joinUnified(m, "../etc", 4242), /must be relative/);
  }, { unified: false });
  await fakeHybrid((root) => {
    const v2 = new CgroupV2Manager(`${root}/unified`);
    assert.equal(joinUnified(v2, "rkl/web", 4242), undefined, "on v2 the runtime's cgroup is it");
    const v1 = new CgroupV1Manager({ memory: `${root}/memory` }, [`${root}/unified`]);
    assert.throws(() => joinUnified(v1, "rkl/web", 1), /not a process's/);
    assert.throws(() => joinUnified(v1, "rkl/web", Number.NaN), /not a process's/);
  });
});

Deno.test("joinUnifiedTwin() warns and keeps going when the move fails, and skips a rootless host", async () => {
  await fakeHybrid((root, m) => {
    const warnings: string[] = [];
    const host = { cgroups: m, warn: (w: string) => warnings.push(w) } as unknown as Host;
    // A file where the twin's parent should be: mkdir fails.
    Deno.writeTextFileSync(`${root}/unified/rkl`, "");
    joinUnifiedTwin(host, { name: "web", cgroupPath: "rkl/web", pid: 4242 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^Cannot put container "web" into its cgroup v2 twin rkl\/web/);
    joinUnifiedTwin(host, { name: "web", cgroupPath: "kubepods/burstable/podA/c", pid: 9 });
    assert.equal(
      Deno.readTextFileSync(`${root}/unified/kubepods/burstable/podA/c/cgroup.procs`),
      "9",
    );
    const rootless = { ...host, rootless: {} } as unknown as Host;
    joinUnifiedTwin(rootless, { name: "x", cgroupPath: "kubepods/burstable/podA/x", pid: 9 });
    assert.ok(!exists(`${root}/unified/kubepods/burstable/podA/x`));
    assert.equal(warnings.length, 1);
  });
});
