import assert from "node:assert/strict";
import { SysError } from "../errors.ts";
import { createNamespaces, createNetns, removeNetns } from "./netns.ts";
import {
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWUTS,
  FakeSyscalls,
  MNT_DETACH,
  MS_BIND,
} from "./syscalls.ts";
import { mountOverlay, mountPoints, unmount } from "./mounts.ts";

async function inTemp(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createNetns() unshares, pins the thread's namespace and returns to the original", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    createNetns(sys, `${dir}/ns1`);
    assert.deepEqual(sys.calls.map((c) => c.name), [
      "open",
      "unshare",
      "loopbackUp", // in the new namespace, before going back
      "gettid",
      "mount",
      "setns",
      "close",
    ]);
    const open = sys.calls[0] as { path: string; fd: number };
    assert.equal(open.path, "/proc/thread-self/ns/net");
    assert.deepEqual(sys.calls[1], { name: "unshare", flags: CLONE_NEWNET });
    assert.deepEqual(sys.mounts.get(`${dir}/ns1`), {
      source: "/proc/self/task/4242/ns/net",
      target: `${dir}/ns1`,
      flags: MS_BIND,
    });
    assert.deepEqual(sys.calls[5], { name: "setns", fd: open.fd, nstype: CLONE_NEWNET });
    assert.equal(sys.openFds.size, 0);
    assert.ok(Deno.statSync(`${dir}/ns1`).isFile);
  });
});

Deno.test("createNetns() still returns to the original namespace and removes the file when mount fails", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    sys.failNext("mount", 1);
    assert.throws(
      () => createNetns(sys, `${dir}/ns1`),
      (e: Error) => e instanceof SysError && e.errno === 1,
    );
    assert.ok(sys.calls.some((c) => c.name === "setns"));
    assert.equal(sys.openFds.size, 0);
    assert.throws(() => Deno.statSync(`${dir}/ns1`), Deno.errors.NotFound);
  });
});

Deno.test("createNetns() leaves nothing when unshare is refused", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    sys.failNext("unshare", 1);
    assert.throws(() => createNetns(sys, `${dir}/ns1`), /Cannot unshare: EPERM/);
    assert.equal(sys.openFds.size, 0);
    assert.equal(sys.mounts.size, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("removeNetns() unmounts lazily and is idempotent", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    createNetns(sys, `${dir}/ns1`);
    removeNetns(sys, `${dir}/ns1`);
    assert.deepEqual(sys.calls.at(-1), {
      name: "umount2",
      target: `${dir}/ns1`,
      flags: MNT_DETACH,
    });
    removeNetns(sys, `${dir}/ns1`);
    assert.equal(sys.mounts.size, 0);
  });
});

Deno.test("mountOverlay() passes lower/upper/work and refuses separators in paths", () => {
  const sys = new FakeSyscalls();
  mountOverlay(sys, {
    lower: ["/b/rootfs"],
    upper: "/c/upper",
    work: "/c/work",
    merged: "/c/rootfs",
  });
  assert.equal(
    sys.mounts.get("/c/rootfs")?.data,
    "lowerdir=/b/rootfs,upperdir=/c/upper,workdir=/c/work",
  );
  assert.throws(
    () => mountOverlay(sys, { lower: ["/b,x"], upper: "/u", work: "/w", merged: "/m" }),
    SysError,
  );
  unmount(sys, "/c/rootfs");
  unmount(sys, "/c/rootfs");
  assert.equal(sys.mounts.size, 0);
});

Deno.test("mountPoints() decodes mountinfo escapes", () => {
  const info = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n";
  assert.deepEqual(mountPoints(info), ["/mnt/with space"]);
});

Deno.test("createNamespaces() pins IPC and UTS with one unshare, names the host, and goes back to both", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    createNamespaces(sys, { ipc: `${dir}/ipc`, uts: `${dir}/uts` }, "web-0");
    assert.deepEqual(sys.calls.map((c) => c.name), [
      "open",
      "open",
      "unshare",
      "sethostname",
      "gettid",
      "mount",
      "mount",
      "setns",
      "setns",
      "close",
      "close",
    ]);
    assert.deepEqual(sys.calls[2], { name: "unshare", flags: CLONE_NEWIPC | CLONE_NEWUTS });
    assert.deepEqual(sys.calls[3], { name: "sethostname", hostname: "web-0" });
    assert.equal(sys.mounts.get(`${dir}/uts`)?.source, "/proc/self/task/4242/ns/uts");
    const back = sys.calls.filter((c) => c.name === "setns").map((c) => c.nstype);
    assert.deepEqual(back, [CLONE_NEWIPC, CLONE_NEWUTS]);
    assert.equal(sys.openFds.size, 0);
  });
});

Deno.test("createNamespaces() undoes every pin when a later step fails", async () => {
  await inTemp((dir) => {
    const sys = new FakeSyscalls();
    sys.failNext("sethostname", 22);
    assert.throws(
      () => createNamespaces(sys, { ipc: `${dir}/ipc`, uts: `${dir}/uts` }, "x"),
      /Cannot sethostname x: EINVAL/,
    );
    assert.equal(sys.calls.filter((c) => c.name === "setns").length, 2);
    assert.equal(sys.openFds.size, 0);
    assert.equal(sys.mounts.size, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    // A mount that fails half-way: the first pin is unmounted again.
    const sys2 = new FakeSyscalls();
    let n = 0;
    const mount = sys2.mount.bind(sys2);
    sys2.mount = (a) => {
      if (++n === 2) throw new SysError("mount", 1, a.target);
      mount(a);
    };
    assert.throws(() => createNamespaces(sys2, { ipc: `${dir}/ipc`, uts: `${dir}/uts` }));
    assert.equal(sys2.mounts.size, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});
