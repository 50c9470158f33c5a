import assert from "node:assert/strict";
import { RuntimeError, SysError } from "../errors.ts";
import {
  MNT_DETACH,
  MS_BIND,
  O_RDONLY,
  RESOLVE_BENEATH,
  RESOLVE_NO_SYMLINKS,
} from "../sys/syscalls.ts";
import { mountOverlay, mountPoints, unmount } from "../sys/mounts.ts";
import type { NetConfList } from "../net/cni.ts";
import { diffSnapshots, FakeHost } from "./fake_host.ts";

const conmonOptions = (host: FakeHost, id: string, bundle: string) => ({
  conmon: host.conmon,
  runtime: host.runtime,
  id,
  name: id,
  bundle,
  workDir: `${host.paths.runRoot}/conmon/${id}`,
  logPath: `${host.paths.logDir}/${id}.log`,
  exitDir: `${host.paths.root}/exits`,
  socketDir: `${host.paths.runRoot}/sock`,
});

function bundleWithCgroup(host: FakeHost, path: string, cgroup: string): string {
  host.addBundle(path);
  const cfg = JSON.parse(host.fs.readTextFile(`${path}/config.json`));
  cfg.linux = { cgroupsPath: `/${cgroup}` };
  host.fs.writeTextFile(`${path}/config.json`, JSON.stringify(cfg));
  return path;
}

Deno.test("FakeKernel: mounts need their target and sources, stack, show in mountinfo, and pin the tree", () => {
  const host = new FakeHost();
  const { fs, sys } = host;
  fs.mkdir("/fake/c/rootfs", { recursive: true });
  for (const d of ["lower", "upper", "work"]) fs.mkdir(`/fake/c/${d}`);
  assert.throws(
    () =>
      mountOverlay(sys, {
        lower: ["/fake/nope"],
        upper: "/fake/c/upper",
        work: "/fake/c/work",
        merged: "/fake/c/rootfs",
      }),
    (e) => e instanceof SysError && e.errno === 2,
  );
  mountOverlay(sys, {
    lower: ["/fake/c/lower"],
    upper: "/fake/c/upper",
    work: "/fake/c/work",
    merged: "/fake/c/rootfs",
  });
  assert.throws(
    () => sys.mount({ source: "/fake/nope", target: "/fake/c/x", flags: MS_BIND }),
    SysError,
  );
  assert.deepEqual(mountPoints(fs.readTextFile("/proc/self/mountinfo")), ["/fake/c/rootfs"]);
  assert.throws(() => fs.remove("/fake/c", { recursive: true }), Deno.errors.Busy);
  fs.mkdir("/fake/c/rootfs/proc");
  sys.mount({ source: "proc", target: "/fake/c/rootfs/proc", fstype: "proc", flags: 0 });
  assert.throws(
    () => sys.umount2("/fake/c/rootfs", 0),
    (e) => e instanceof SysError && e.errno === 16,
  );
  sys.umount2("/fake/c/rootfs", MNT_DETACH); // lazy: takes the one below along
  assert.deepEqual(sys.mountTable(), []);
  assert.throws(
    () => sys.umount2("/fake/c/rootfs", MNT_DETACH),
    (e) => e instanceof SysError && e.errno === 22,
  );
  unmount(sys, "/fake/c/rootfs"); // EINVAL is "not mounted": fine there
  fs.remove("/fake/c", { recursive: true });
});

Deno.test("FakeKernel: a failed mount changes nothing; a pinned namespace file shows in the snapshot", () => {
  const host = new FakeHost();
  host.fs.mkdir("/fake/run/rkl/netns", { recursive: true });
  host.fs.writeFile("/fake/run/rkl/netns/x", new Uint8Array(), { createNew: true, mode: 0o444 });
  const before = host.snapshot();
  const pin = {
    source: "/proc/self/task/4242/ns/net",
    target: "/fake/run/rkl/netns/x",
    flags: MS_BIND,
  };
  host.failAt("sys.mount");
  assert.throws(() => host.sys.mount(pin), (e) => e instanceof SysError && e.errno === 5);
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  const fd = host.sys.open("/proc/thread-self/ns/net", O_RDONLY);
  host.sys.unshare(0x40000000);
  host.sys.mount(pin);
  host.sys.setns(fd, 0x40000000);
  assert.deepEqual(diffSnapshots(before, host.snapshot()), [
    "+ mounts /fake/run/rkl/netns/x <- /proc/self/task/4242/ns/net bind",
    "+ fds /proc/thread-self/ns/net",
  ]);
  host.sys.close(fd);
  assert.deepEqual(host.sys.calls.map((c) => c.name), [
    "open",
    "unshare",
    "mount",
    "setns",
    "close",
  ]);
});

Deno.test("FakeKernel: openat2 refuses links with RESOLVE_NO_SYMLINKS and escapes with RESOLVE_BENEATH", () => {
  const host = new FakeHost();
  const { fs, sys } = host;
  fs.mkdir("/fake/v/d", { recursive: true });
  fs.symlink("/fake/etc", "/fake/v/out");
  fs.symlink("d", "/fake/v/in");
  const root = sys.open("/fake/v", O_RDONLY);
  assert.throws(
    () => sys.openat2(root, "in", 0, RESOLVE_NO_SYMLINKS),
    (e) => e instanceof SysError && e.errno === 40,
  );
  assert.throws(
    () => sys.openat2(root, "out", 0, RESOLVE_BENEATH),
    (e) => e instanceof SysError && e.errno === 18,
  );
  const d = sys.openat2(root, "in", 0, RESOLVE_BENEATH);
  assert.equal(sys.fds.get(d), "/fake/v/d");
  sys.mkdirat(d, "e", 0o755);
  assert.ok(fs.stat("/fake/v/d/e").isDirectory);
  sys.close(d);
  sys.close(root);
  assert.throws(() => sys.close(root), SysError);
  assert.equal(sys.fds.size, 0);
});

Deno.test("FakeRuntime + fakeConmon: create, start, kill, delete, with the runtime's refusals and conmon's files", async () => {
  const host = new FakeHost();
  const bundle = bundleWithCgroup(host, "/fake/var/lib/rkl/containers/web", "rkl/web");
  for (const d of ["exits", "sock"]) {
    host.fs.mkdir(`/fake/${d === "exits" ? "var/lib/rkl" : "run/rkl"}/${d}`, { recursive: true });
  }
  host.fs.mkdir(host.paths.logDir, { recursive: true });
  const rt = host.runtime;
  const pid = await host.proc.createWithConmon(conmonOptions(host, "web", bundle));
  assert.equal((await rt.state("web"))?.status, "created");
  assert.equal(host.fs.readTextFile("/fake/run/rkl/conmon/web/pid"), String(pid));
  assert.deepEqual(host.cgroups.pids("rkl/web"), [pid]);
  assert.ok(host.fs.exists("/fake/run/rkl/runtime/fakert/web/state.json"));
  await assert.rejects(
    host.proc.createWithConmon(conmonOptions(host, "web", bundle)),
    /already exists/,
  );
  await rt.start("web");
  await assert.rejects(
    rt.start("web"),
    (e) => e instanceof RuntimeError && /running state/.test(e.stderr),
  );
  await assert.rejects(
    rt.delete("web"),
    (e) => e instanceof RuntimeError && /running state/.test(e.stderr),
  );
  assert.throws(
    () => host.cgroups.remove("rkl/web"),
    Deno.errors.Busy,
    "a cgroup with tasks stays",
  );
  await rt.kill("web", "SIGTERM");
  assert.equal((await rt.state("web"))?.status, "stopped");
  assert.equal(host.fs.readTextFile("/fake/var/lib/rkl/exits/web"), "143");
  assert.deepEqual(host.procs.live(), [], "conmon exits after its container");
  await rt.delete("web");
  assert.equal(await rt.state("web"), undefined);
  assert.deepEqual(
    host.cgroups.list(),
    ["rkl"],
    "youki removes the container's cgroup, not its parent",
  );
  // rmdir on cgroupfs: an empty cgroup goes with its control files; one with a child is EBUSY.
  host.cgroups.attach("rkl/a/b", 7);
  assert.throws(() => host.fs.remove("/fake/sys/fs/cgroup/rkl/a"), Deno.errors.Busy);
  assert.throws(() => host.fs.remove("/fake/sys/fs/cgroup/rkl/a/b"), Deno.errors.Busy, "a task");
  host.cgroups.detach("rkl/a/b", 7);
  host.fs.remove("/fake/sys/fs/cgroup/rkl/a/b");
  host.fs.remove("/fake/sys/fs/cgroup/rkl/a");
  assert.deepEqual(host.cgroups.list(), ["rkl"]);
  await rt.delete("web", { missingOk: true });
  await assert.rejects(rt.delete("web"), /does not exist/);
  assert.throws(() => host.proc.kill(pid, "SIGKILL"), Deno.errors.NotFound);
});

Deno.test("FakeCni: leases from the subnet, lease files in ipam.dataDir, duplicate ADD refused, DEL idempotent", async () => {
  const host = new FakeHost();
  host.fs.mkdir("/fake/run/rkl/netns", { recursive: true });
  for (const n of ["a", "b"]) host.fs.writeTextFile(`/fake/run/rkl/netns/${n}`, "");
  const list: NetConfList = {
    cniVersion: "1.0.0",
    name: "n1",
    plugins: [{
      type: "bridge",
      ipam: {
        type: "host-local",
        subnet: "10.7.0.0/30",
        dataDir: "/fake/var/lib/rkl/cni/networks",
      },
    }],
  };
  const att = (id: string) => ({
    containerId: id,
    netns: `/fake/run/rkl/netns/${id}`,
    ifName: "eth0",
  });
  const r = await host.cni.add(list, att("a"));
  assert.equal(r.ips?.[0].address, "10.7.0.2/30");
  assert.equal(host.fs.readTextFile("/fake/var/lib/rkl/cni/networks/n1/10.7.0.2"), "a\r\neth0");
  await assert.rejects(host.cni.add(list, att("a")), /duplicate allocation/);
  await assert.rejects(host.cni.add(list, att("b")), /no IP addresses available/);
  await assert.rejects(host.cni.add(list, att("gone")), /failed to open netns/);
  await host.cni.del(list, att("a"));
  await host.cni.del(list, att("a"));
  assert.deepEqual(host.cni.list(), []);
  assert.equal(host.fs.exists("/fake/var/lib/rkl/cni/networks/n1/10.7.0.2"), false);
});

Deno.test("FakeHost faults: failAt(name, n) fails the nth call counted from then on, once, and steps() lists the changes", async () => {
  const host = new FakeHost();
  host.faults.reset();
  host.fs.mkdir("/fake/a");
  host.failAt("fs.mkdir", 2);
  host.fs.mkdir("/fake/b");
  assert.throws(
    () => host.fs.mkdir("/fake/c"),
    /Input\/output error \(os error 5\): mkdir '\/fake\/c'/,
  );
  host.fs.mkdir("/fake/c");
  host.fs.readDir("/fake");
  host.failAt("cmd.iptables");
  assert.equal((await host.cmd.run("/usr/sbin/iptables", { args: ["-L"] })).code, 1);
  assert.equal((await host.cmd.run("/usr/sbin/iptables", { args: ["-L"] })).code, 0);
  host.failAt("store.put");
  assert.throws(() => host.store.put("pods", { schemaVersion: 1, name: "p" }), /injected/);
  assert.deepEqual(host.faults.fired.map((p) => `${p.op}#${p.n}`), [
    "fs.mkdir#3",
    "cmd.iptables#1",
    "store.put#1",
  ]);
  assert.deepEqual(
    host.faults.steps().map((p) => `${p.op} ${p.detail}`).slice(0, 5),
    [
      "fs.mkdir /fake/a",
      "fs.mkdir /fake/b",
      "fs.mkdir /fake/c",
      "fs.mkdir /fake/c",
      "cmd.iptables /usr/sbin/iptables -L",
    ],
  );
  assert.deepEqual(host.faults.pending(), []);
});

Deno.test("FakeHost snapshot: every part shows in the diff, and an undo compares equal", async () => {
  const host = new FakeHost();
  const before = host.snapshot();
  const bundle = bundleWithCgroup(host, "/fake/b1", "rkl/x");
  host.fs.mkdir("/fake/var/lib/rkl/exits", { recursive: true });
  host.fs.mkdir("/fake/run/rkl/sock", { recursive: true });
  host.fs.mkdir(host.paths.logDir, { recursive: true });
  await host.proc.createWithConmon(conmonOptions(host, "x", bundle));
  host.store.put("containers", { schemaVersion: 1, name: "x" });
  const d = diffSnapshots(before, host.snapshot());
  for (
    const want of [
      "+ cgroups rkl/x (1 tasks)",
      "+ records containers/x",
      "+ runtime fakert/x created",
      "+ processes conmon x",
      "+ processes container x",
    ]
  ) {
    assert.ok(d.includes(want), `${want} in ${d.join("\n")}`);
  }
  await host.runtime.delete("x", { force: true });
  host.store.delete("containers", "x");
  host.cgroups.remove("rkl");
  for (const p of ["/fake/b1", "/fake/var", "/fake/run"]) host.fs.remove(p, { recursive: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});
