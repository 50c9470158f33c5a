/** The libc FFI layer against the real kernel: netns pinning, overlay mounts, subreaper. */
import assert from "node:assert/strict";
import { createNetns, removeNetns } from "../../src/sys/netns.ts";
import { isMounted, mountOverlay, unmount } from "../../src/sys/mounts.ts";
import { LinuxSyscalls } from "../../src/sys/syscalls.ts";
import { SysError } from "../../src/errors.ts";
import { linkGone } from "../../src/sys/linkwatch.ts";
import { ALL_SEALS, prewarmSealed, sealedExecutable, sealedReady } from "../../src/oci/sealed.ts";
import { cstr, libc } from "../../src/sys/libc.ts";
import { which } from "../../src/oci/runtime.ts";
import { requires } from "../_helpers/requires.ts";
import {
  gunzipChunks,
  gunzipWhole,
  InflateError,
  WHOLE_IN,
  WHOLE_OUT,
} from "../../src/sys/zlib.ts";
import { gzipSync } from "node:zlib";
import { markTopDir } from "../../src/sys/fileattr.ts";
import { detectCgroups } from "../../src/sys/cgroups/detect.ts";
import { primeAttach } from "../../src/sys/cgroups/mod.ts";

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

Deno.test({
  name: "linkGone() ends when the device is deleted, at once when it is missing, and when told to",
  ignore: !ready,
  fn: async () => {
    const name = `rkltw${Deno.pid % 100000}`;
    const ip = async (...args: string[]) => {
      const r = await new Deno.Command("ip", { args, stderr: "piped" }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    };
    await ip("link", "add", name, "type", "bridge");
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const never = new Promise<void>((r) => timer = setTimeout(r, 10_000));
      let done = false;
      const gone = linkGone(name, never).then(() => done = true);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(done, false, "still waiting while the device exists");
      const t0 = performance.now();
      await ip("link", "delete", name);
      await gone;
      assert.ok(performance.now() - t0 < 2_000, "told long before `until`");
      assert.throws(() => Deno.lstatSync(`/sys/class/net/${name}`), Deno.errors.NotFound);

      // A device that is not there: at once.
      await linkGone(name, never);

      // `until` settling ends the wait for a device that stays.
      await ip("link", "add", name, "type", "bridge");
      let release!: () => void;
      const until = new Promise<void>((r) => release = r);
      const waiting = linkGone(name, until);
      release();
      await waiting;
      assert.ok(Deno.lstatSync(`/sys/class/net/${name}`));
    } finally {
      clearTimeout(timer);
      await new Deno.Command("ip", { args: ["link", "delete", name], stderr: "null" }).output();
    }
  },
});

/** A copy of echo(1) at `dir`/`name`, executable. */
function echoCopy(dir: string, name: string): string {
  const bin = `${dir}/${name}`;
  Deno.copyFileSync(which("echo")!, bin);
  Deno.chmodSync(bin, 0o755);
  return bin;
}

/** `path` is this process's sealed memfd copy of `bin`, with every seal. */
function assertSealedCopy(path: string, bin: string): void {
  assert.match(path, new RegExp(`^/proc/${Deno.pid}/fd/\\d+$`));
  assert.match(Deno.readLinkSync(path), new RegExp(`^/memfd:rkl-sealed:${bin.split("/").pop()}`));
  assert.deepEqual(Deno.readFileSync(path), Deno.readFileSync(bin));
  const fd = libc().open(cstr(path), 0, 0);
  assert.ok(fd >= 0);
  try {
    assert.equal(libc().fcntl(fd, 1034, /* F_GET_SEALS */ 0), ALL_SEALS);
  } finally {
    libc().close(fd);
  }
}

Deno.test({
  name:
    "sealedExecutable() runs a binary from a sealed memfd copy, made again when the binary changes",
  ignore: !ready,
  fn: () =>
    inTemp(async (dir) => {
      const bin = echoCopy(dir, "echo");
      const path = sealedExecutable(bin);
      assertSealedCopy(path, bin);
      assert.equal(sealedExecutable(bin), path, "one copy while the binary stays");
      const out = await new Deno.Command(path, { args: ["sealed"] }).output();
      assert.equal(new TextDecoder().decode(out.stdout), "sealed\n");
      // Nobody can change it: every write is refused, and the seals are all there.
      assert.throws(
        () => Deno.writeFileSync(path, new Uint8Array([0x7f])),
        /denied|not permitted/i,
      );
      // An upgrade on disk gets a copy of its own.
      Deno.writeFileSync(bin, new TextEncoder().encode("#!/bin/sh\necho new\n"));
      const again = sealedExecutable(bin);
      assert.notEqual(again, path);
      const out2 = await new Deno.Command(again).output();
      assert.equal(new TextDecoder().decode(out2.stdout), "new\n");
      assert.equal(sealedExecutable(`${dir}/missing`), `${dir}/missing`);
    }),
});

Deno.test({
  name:
    "prewarmSealed() makes the sealed copy on a worker thread; sealedExecutable() then uses it, and an upgrade meanwhile is not kept",
  ignore: !ready,
  fn: () =>
    inTemp(async (dir) => {
      const bin = echoCopy(dir, "echo2");
      prewarmSealed(bin);
      await sealedReady();
      // The copy is already made: every later call returns it, the same memfd.
      const path = sealedExecutable(bin);
      assertSealedCopy(path, bin);
      const out = await new Deno.Command(path, { args: ["warm"] }).output();
      assert.equal(new TextDecoder().decode(out.stdout), "warm\n");
      // A binary replaced while its copy is made: that copy is dropped, the new one made on use.
      const bin3 = echoCopy(dir, "echo3");
      prewarmSealed(bin3);
      Deno.writeFileSync(bin3, new TextEncoder().encode("#!/bin/sh\necho upgraded\n"));
      await sealedReady();
      const now = sealedExecutable(bin3);
      const out3 = await new Deno.Command(now).output();
      assert.equal(new TextDecoder().decode(out3.stdout), "upgraded\n");
    }),
});

async function* chunked(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < b.length; off += size) yield b.slice(off, off + size);
}

async function gunzipAll(b: Uint8Array, size = 4099, whole = true): Promise<Uint8Array> {
  const it = gunzipChunks(chunked(b, size), { whole });
  assert.ok(it, "libz.so.1 opens through FFI");
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

for (const whole of [false, true]) {
  Deno.test(
    `gunzipChunks() inflates across chunk edges, members and padding (${
      whole ? "libdeflate for small streams" : "libz's stream only"
    })`,
    async () => {
      // 3 MB of text that compresses, so several output buffers of 256 KiB each
      const text = new TextEncoder().encode(
        Array.from({ length: 60_000 }, (_, i) => `line ${i} ${i * 7919 % 1000}\n`).join(""),
      );
      const a = gzipSync(text);
      assert.deepEqual(await gunzipAll(a, 4099, whole), text);
      assert.deepEqual(await gunzipAll(a, 7, whole), text, "7-byte input chunks");
      // two members read as one stream (gzip(1), Go's reader), zero padding after the last
      const b = gzipSync(new TextEncoder().encode("tail\n"));
      const both = new Uint8Array([...a, ...b, ...new Uint8Array(512)]);
      assert.equal(
        new TextDecoder().decode((await gunzipAll(both, 4099, whole)).subarray(text.length)),
        "tail\n",
      );
      const ab = new Uint8Array(a.length + b.length);
      ab.set(a);
      ab.set(b, a.length);
      const twoMembers = await gunzipAll(ab, 4099, whole);
      assert.deepEqual(twoMembers.subarray(0, text.length), text);
      assert.equal(new TextDecoder().decode(twoMembers.subarray(text.length)), "tail\n");
      // damaged and cut-short data are errors, never short output
      const bad = a.slice();
      bad[a.length >> 1] ^= 0xff;
      await assert.rejects(gunzipAll(bad, 4099, whole), InflateError);
      await assert.rejects(gunzipAll(a.slice(0, a.length - 100), 4099, whole), /unexpected end/);
      await assert.rejects(
        gunzipAll(new TextEncoder().encode("not gzip at all"), 4099, whole),
        InflateError,
      );
    },
  );
}

Deno.test("gunzipWhole(): libdeflate's one call answers only for one whole member it can finish", async () => {
  const text = new TextEncoder().encode("x".repeat(100_000) + "end\n");
  const a = gzipSync(text);
  const out = await gunzipWhole(a);
  assert.ok(out, "libdeflate.so.0 opens through FFI (scripts/setup.sh installs libdeflate0)");
  assert.deepEqual(out, text);
  const b = gzipSync(new TextEncoder().encode("tail\n"));
  assert.equal(await gunzipWhole(new Uint8Array([...a, ...b])), undefined, "two members");
  assert.equal(await gunzipWhole(new Uint8Array([...a, 0, 0, 0, 0])), undefined, "padding");
  const bad = a.slice();
  bad[a.length >> 1] ^= 0xff;
  assert.equal(await gunzipWhole(bad), undefined, "damaged");
  assert.equal(await gunzipWhole(a.slice(0, a.length - 10)), undefined, "cut short");
  // A trailer that claims less than the data holds, or more than WHOLE_OUT.
  const lying = a.slice();
  new DataView(lying.buffer).setUint32(lying.length - 4, 1000, true);
  assert.equal(await gunzipWhole(lying), undefined, "trailer too small");
  new DataView(lying.buffer).setUint32(lying.length - 4, WHOLE_OUT + 1, true);
  assert.equal(await gunzipWhole(lying), undefined, "trailer over WHOLE_OUT");
  // A stream longer than WHOLE_IN goes through libz's stream and still comes out whole.
  const noise = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(WHOLE_IN + (1 << 20));
  for (let off = 0; off < big.length; off += noise.length) {
    big.set(noise.subarray(0, Math.min(noise.length, big.length - off)), off);
    noise[0]++; // no two blocks alike, so that it does not compress below WHOLE_IN
  }
  const bigGz = gzipSync(big, { level: 1 });
  assert.ok(bigGz.length > WHOLE_IN);
  assert.deepEqual(await gunzipAll(bigGz, 65536), big);
});

Deno.test("markTopDir() sets chattr +T on ext4, says false where there is no such flag", async () => {
  const out = async (cmd: string, args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command(cmd, { args, stdout: "piped" }).output()).stdout,
    )
      .trim();
  const attrs = async (d: string) => (await out("lsattr", ["-d", d])).split(" ")[0];
  // /var/tmp: a disk file system on these hosts (ext4 here); /dev/shm: tmpfs.
  for (const base of ["/var/tmp", "/dev/shm"]) {
    const dir = await Deno.makeTempDir({ dir: base, prefix: "rkl-topdir-" });
    try {
      const fs = await out("stat", ["-f", "-c", "%T", dir]);
      const set = markTopDir(dir);
      if (fs.startsWith("ext")) assert.ok(set, `${fs} at ${base} has the flag`);
      if (fs === "tmpfs") assert.equal(set, false);
      assert.equal(set, set && (await attrs(dir)).includes("T"));
      assert.equal(markTopDir(dir), set, "idempotent");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  assert.equal(markTopDir("/nonexistent/rkl-topdir"), false);
});

Deno.test({
  name:
    "primeAttach() on this host writes to the cgroup.procs this process is in and moves nothing",
  ignore: !ready,
  fn: async () => {
    const { manager } = detectCgroups();
    const before = Deno.readTextFileSync("/proc/self/cgroup");
    const file = manager.ownProcsFile(before);
    assert.ok(file, `no cgroup.procs found for:\n${before}`);
    assert.ok(Deno.statSync(file).isFile, `${file} exists`);
    await primeAttach(manager);
    assert.equal(Deno.readTextFileSync("/proc/self/cgroup"), before);
    const pids = Deno.readTextFileSync(file).split("\n").map(Number);
    assert.ok(pids.includes(Deno.pid), `${file} lists this process`);
  },
});
