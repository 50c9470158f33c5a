/** The libc FFI layer against the real kernel: netns pinning, overlay mounts, subreaper. */
import assert from "node:assert/strict";
import { createNetns, removeNetns } from "../../src/sys/netns.ts";
import { isMounted, mountOverlay, unmount } from "../../src/sys/mounts.ts";
import { LinuxSyscalls } from "../../src/sys/syscalls.ts";
import { SysError } from "../../src/errors.ts";
import { requires } from "../_helpers/requires.ts";

const ready = requires("root", "ip");
const sys = new LinuxSyscalls();

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-sys-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "createNetns() pins a new network namespace and leaves this thread in the host's",
  ignore: !ready,
  fn: () =>
    inTemp(async (dir) => {
      const hostNs = Deno.readLinkSync("/proc/thread-self/ns/net");
      const path = `${dir}/ns`;
      createNetns(sys, path);
      try {
        assert.equal(
          Deno.readLinkSync("/proc/thread-self/ns/net"),
          hostNs,
          "thread is back in the host netns",
        );
        assert.ok(isMounted(path));
        const pinnedIno = Deno.statSync(path).ino;
        assert.notEqual(pinnedIno, Deno.statSync("/proc/self/ns/net").ino);
        // The namespace is usable: ip can enter it and sees only lo.
        const inside = await new Deno.Command("nsenter", {
          args: [`--net=${path}`, "ip", "-o", "link"],
        }).output();
        const links = new TextDecoder().decode(inside.stdout).trim().split("\n");
        assert.equal(links.length, 1);
        assert.match(links[0], /: lo:/);
        // ... and lo is up, with 127.0.0.1 on it (no loopback plugin ran).
        assert.match(links[0], /<LOOPBACK,UP,LOWER_UP>/);
        const addrs = await new Deno.Command("nsenter", {
          args: [`--net=${path}`, "ip", "-o", "-4", "addr", "show", "dev", "lo"],
        }).output();
        assert.match(new TextDecoder().decode(addrs.stdout), /inet 127\.0\.0\.1\/8/);
      } finally {
        removeNetns(sys, path);
      }
      assert.ok(!isMounted(path));
      assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
      removeNetns(sys, path); // idempotent
    }),
});

Deno.test({
  name: "mountOverlay() gives a writable view and never touches the lower layer",
  ignore: !ready,
  fn: () =>
    inTemp(async (dir) => {
      for (const d of ["lower", "upper", "work", "merged"]) await Deno.mkdir(`${dir}/${d}`);
      await Deno.writeTextFile(`${dir}/lower/base.txt`, "base\n");
      mountOverlay(sys, {
        lower: [`${dir}/lower`],
        upper: `${dir}/upper`,
        work: `${dir}/work`,
        merged: `${dir}/merged`,
      });
      try {
        assert.equal(await Deno.readTextFile(`${dir}/merged/base.txt`), "base\n");
        await Deno.writeTextFile(`${dir}/merged/base.txt`, "changed\n");
        await Deno.writeTextFile(`${dir}/merged/new.txt`, "new\n");
      } finally {
        unmount(sys, `${dir}/merged`);
      }
      assert.equal(await Deno.readTextFile(`${dir}/lower/base.txt`), "base\n");
      assert.deepEqual([...Deno.readDirSync(`${dir}/lower`)].map((e) => e.name), ["base.txt"]);
      assert.equal(await Deno.readTextFile(`${dir}/upper/new.txt`), "new\n");
    }),
});

Deno.test({
  name: "LinuxSyscalls turns errno into a SysError naming the call",
  ignore: !ready,
  fn: () => {
    assert.throws(
      () => sys.umount2("/definitely/not/mounted", 0),
      (e: Error) =>
        e instanceof SysError && e.syscall === "umount2" && (e.errno === 2 || e.errno === 22),
    );
    assert.throws(() => sys.open("/no/such/file", 0), /Cannot open "\/no\/such\/file": ENOENT/);
  },
});
