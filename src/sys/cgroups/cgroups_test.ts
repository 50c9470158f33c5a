import assert from "node:assert/strict";
import { detectCgroupLayout, managerFor } from "./detect.ts";
import { CgroupV1Manager } from "./v1.ts";
import { CgroupV2Manager } from "./v2.ts";
import { primeAttach } from "./mod.ts";
import { pathExists } from "../fsutil.ts";

const HYBRID = `25 1 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
`;
const UNIFIED = `25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n`;

Deno.test("detectCgroupLayout() treats a hybrid host as v1 and a unified one as v2", () => {
  const h = detectCgroupLayout(HYBRID);
  assert.equal(h.version, 1);
  assert.equal(h.controllers?.cpu, "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(h.controllers?.memory, "/sys/fs/cgroup/memory");
  assert.ok(h.hierarchies.includes("/sys/fs/cgroup/unified"));
  const m = managerFor(h) as CgroupV1Manager;
  assert.ok(m instanceof CgroupV1Manager);
  assert.ok(
    m.otherHierarchies.includes("/sys/fs/cgroup/systemd"),
    "named hierarchies are cleaned too",
  );

  const u = detectCgroupLayout(UNIFIED);
  assert.deepEqual([u.version, u.root], [2, "/sys/fs/cgroup"]);
  assert.ok(managerFor(u) instanceof CgroupV2Manager);
  assert.throws(() => detectCgroupLayout(""), /Cannot find cgroupfs/);
});

/** A fake v2 root: the kernel's interface files at the root, plain files below. */
async function fakeV2(fn: (root: string) => void): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/cgroup.controllers`, "cpuset cpu io memory pids\n");
    await Deno.writeTextFile(`${root}/cgroup.subtree_control`, "");
    fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("CgroupV2Manager.apply() enables controllers top-down and writes cpu.max, cpu.weight, memory.max", async () => {
  await fakeV2((root) => {
    // Child levels in a real cgroupfs list what their parent enabled.
    Deno.mkdirSync(`${root}/rkl`);
    Deno.writeTextFileSync(`${root}/rkl/cgroup.controllers`, "cpu memory pids\n");
    const m = new CgroupV2Manager(root);
    m.apply("rkl/web", {
      cpuQuota: 50_000,
      cpuPeriod: 100_000,
      cpuShares: 1024,
      memoryLimit: 244_318_208,
      pidsLimit: 100,
    });
    assert.equal(Deno.readTextFileSync(`${root}/cgroup.subtree_control`), "+cpu +memory +pids");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/cgroup.subtree_control`), "+cpu +memory +pids");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/web/cpu.max`), "50000 100000");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/web/cpu.weight`), "39");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/web/memory.max`), "244318208");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/web/pids.max`), "100");
    assert.deepEqual(m.read("rkl/web"), {
      cpuQuota: 50_000,
      cpuPeriod: 100_000,
      cpuWeight: 39,
      memoryLimit: 244_318_208,
      pidsLimit: 100,
    });
    assert.deepEqual(m.dirs("rkl/web"), [`${root}/rkl/web`]);
  });
});

Deno.test("CgroupV2Manager writes 'max' for no limit and removes trees deepest first", async () => {
  await fakeV2((root) => {
    const m = new CgroupV2Manager(root);
    m.apply("rkl/pod/app", { cpuQuota: 0, memoryLimit: 0 });
    assert.equal(Deno.readTextFileSync(`${root}/rkl/pod/app/cpu.max`), "max 100000");
    assert.equal(Deno.readTextFileSync(`${root}/rkl/pod/app/memory.max`), "max");
    assert.equal(m.read("rkl/pod/app").memoryLimit, undefined);
    // Plain files stand in for interface files here; cgroupfs would have none to remove.
    for (const f of ["cpu.max", "memory.max"]) Deno.removeSync(`${root}/rkl/pod/app/${f}`);
    m.remove("rkl/pod");
    assert.deepEqual(m.dirs("rkl/pod"), []);
    m.remove("rkl/pod");
  });
});

Deno.test("CgroupV1Manager writes each controller's files", async () => {
  const root = await Deno.makeTempDir();
  try {
    const m = new CgroupV1Manager({
      cpu: `${root}/cpu,cpuacct`,
      cpuacct: `${root}/cpu,cpuacct`,
      memory: `${root}/memory`,
      pids: `${root}/pids`,
    });
    m.apply("rkl/web", {
      cpuQuota: 50_000,
      cpuPeriod: 100_000,
      cpuShares: 512,
      memoryLimit: 1 << 20,
    });
    assert.equal(Deno.readTextFileSync(`${root}/cpu,cpuacct/rkl/web/cpu.cfs_quota_us`), "50000");
    assert.equal(Deno.readTextFileSync(`${root}/cpu,cpuacct/rkl/web/cpu.shares`), "512");
    assert.equal(Deno.readTextFileSync(`${root}/memory/rkl/web/memory.limit_in_bytes`), "1048576");
    assert.equal(m.read("rkl/web").cpuQuota, 50_000);
    assert.equal(m.dirs("rkl/web").length, 3);
    assert.throws(() => m.apply("../escape", {}), /must be relative/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("usage() reads CPU, memory, working set and OOM kills on v2 and v1 fake trees", async () => {
  const root = await Deno.makeTempDir();
  try {
    const v2 = `${root}/unified/rkl/c`;
    Deno.mkdirSync(v2, { recursive: true });
    Deno.writeTextFileSync(`${v2}/cpu.stat`, "usage_usec 1500\nuser_usec 1000\n");
    Deno.writeTextFileSync(`${v2}/memory.current`, "10000\n");
    Deno.writeTextFileSync(`${v2}/memory.stat`, "anon 4000\ninactive_file 3000\npgfault 7\n");
    Deno.writeTextFileSync(`${v2}/memory.max`, "max\n");
    Deno.writeTextFileSync(`${v2}/memory.events`, "oom 1\noom_kill 1\n");
    const u2 = new CgroupV2Manager(`${root}/unified`).usage("rkl/c")!;
    assert.equal(u2.cpuNs, 1_500_000);
    assert.equal(u2.workingSetBytes, 7000);
    assert.equal(u2.rssBytes, 4000);
    assert.equal(u2.memoryLimit, undefined);
    assert.equal(u2.oomKills, 1);
    assert.equal(new CgroupV2Manager(`${root}/unified`).usage("rkl/none"), undefined);

    const cpu = `${root}/cpu,cpuacct/rkl/c`;
    const mem = `${root}/memory/rkl/c`;
    for (const d of [cpu, mem]) Deno.mkdirSync(d, { recursive: true });
    Deno.writeTextFileSync(`${cpu}/cpuacct.usage`, "42\n");
    Deno.writeTextFileSync(`${mem}/memory.usage_in_bytes`, "100\n");
    Deno.writeTextFileSync(`${mem}/memory.stat`, "total_inactive_file 150\ntotal_rss 60\n");
    Deno.writeTextFileSync(`${mem}/memory.limit_in_bytes`, "9223372036854771712\n");
    Deno.writeTextFileSync(`${mem}/memory.oom_control`, "oom_kill_disable 0\noom_kill 0\n");
    const u1 = new CgroupV1Manager({
      cpu: `${root}/cpu,cpuacct`,
      cpuacct: `${root}/cpu,cpuacct`,
      memory: `${root}/memory`,
    }).usage("rkl/c")!;
    assert.equal(u1.cpuNs, 42);
    assert.equal(u1.workingSetBytes, 0); // never below zero
    assert.equal(u1.rssBytes, 60);
    assert.equal(u1.memoryLimit, undefined); // v1's "unlimited"
    assert.equal(u1.oomKills, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("primeAttach() writes this pid to its own cgroup.procs, and nowhere else", async () => {
  const root = await Deno.makeTempDir();
  try {
    const procs = (dir: string) => {
      Deno.mkdirSync(dir, { recursive: true });
      Deno.writeTextFileSync(`${dir}/cgroup.procs`, "");
      return `${dir}/cgroup.procs`;
    };
    const v1Own = procs(`${root}/pids/system.slice/rkl.service`);
    const v1Root = procs(`${root}/pids`);
    const v1 = new CgroupV1Manager({ pids: `${root}/pids`, memory: `${root}/memory` });
    const self = "12:memory:/other\n9:pids:/system.slice/rkl.service\n0::/x\n";
    assert.equal(v1.ownProcsFile(self), `${root}/memory/other/cgroup.procs`, "the first hierarchy");
    await primeAttach(v1, "9:pids:/system.slice/rkl.service\n1:name=systemd:/\n");
    assert.equal(Deno.readTextFileSync(v1Own), String(Deno.pid));
    assert.equal(Deno.readTextFileSync(v1Root), "", "the root cgroup is not touched");

    const v2Own = procs(`${root}/unified/user.slice/s`);
    const v2 = new CgroupV2Manager(`${root}/unified`);
    await primeAttach(v2, "1:name=systemd:/user.slice\n0::/user.slice/s\n");
    assert.equal(Deno.readTextFileSync(v2Own), String(Deno.pid));
    assert.equal(v2.ownProcsFile("0::/\n"), `${root}/unified/cgroup.procs`);

    // Paths that climb (outside a cgroup namespace's root), relative paths and
    // hierarchies not managed here give no file; a missing file is no error.
    assert.equal(v2.ownProcsFile("0::/../../etc\n"), undefined);
    assert.equal(v1.ownProcsFile("9:pids:/a/../../b\n"), undefined);
    assert.equal(v1.ownProcsFile("9:pids:relative\n"), undefined);
    assert.equal(v1.ownProcsFile("3:cpuset:/x\n1:name=systemd:/\n"), undefined);
    assert.equal(v2.ownProcsFile("9:pids:/x\n"), undefined);
    await primeAttach(v2, "0::/gone\n");
    assert.equal(pathExists(`${root}/unified/gone/cgroup.procs`), false, "never created");
    await primeAttach(v2, undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("removeChildren() removes the sub-cgroups a container made, deepest first, and keeps its own (v2 and v1)", async () => {
  await fakeV2((root) => {
    const m = new CgroupV2Manager(root);
    m.apply("rkl/web", {});
    for (const d of ["a/b/c", "a/d", "e"]) {
      Deno.mkdirSync(`${root}/rkl/web/${d}`, { recursive: true });
    }
    m.removeChildren("rkl/web");
    assert.deepEqual(m.dirs("rkl/web"), [`${root}/rkl/web`]);
    assert.deepEqual([...Deno.readDirSync(`${root}/rkl/web`)].filter((e) => e.isDirectory), []);
    m.removeChildren("rkl/gone");
    assert.throws(() => m.removeChildren("rkl/../.."), /must be relative/);
  });
  const root = await Deno.makeTempDir();
  try {
    const m = new CgroupV1Manager({ memory: `${root}/memory`, pids: `${root}/pids` }, [
      `${root}/systemd`,
    ]);
    for (const h of ["memory", "pids", "systemd"]) {
      Deno.mkdirSync(`${root}/${h}/rkl/web/child/grandchild`, { recursive: true });
    }
    m.removeChildren("rkl/web");
    for (const h of ["memory", "pids", "systemd"]) {
      assert.ok(pathExists(`${root}/${h}/rkl/web`), h);
      assert.ok(!pathExists(`${root}/${h}/rkl/web/child`), h);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
