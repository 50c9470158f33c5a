/**
 * src/sys/readfile.ts with FFI granted (its libc open(2) path): the unit
 * tests run again here, where `-A` grants FFI (under the unit permission set
 * they take the node:fs fallback), plus what the unit set cannot make: a
 * FIFO nobody writes, a symlink refused with O_NOFOLLOW, and the fd closed.
 */
import assert from "node:assert/strict";
import "../../src/sys/readfile_test.ts";
import { FileReadError, MiB, readBounded, readTextBounded } from "../../src/sys/readfile.ts";

const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";

Deno.test({
  name:
    "readBounded() with FFI refuses a FIFO without waiting for a writer, and a symlink with follow: false",
  ignore: !ffi,
  fn: async () => {
    const d = await Deno.makeTempDir();
    try {
      const made = await new Deno.Command("mkfifo", { args: [`${d}/fifo`] }).output();
      assert.equal(made.code, 0);
      const t0 = performance.now();
      assert.throws(
        () => readBounded(`${d}/fifo`, { max: MiB }),
        (e) => e instanceof FileReadError && e.reason === "not a regular file (a FIFO)",
      );
      assert.ok(performance.now() - t0 < 1000, "waited on the FIFO");
      await Deno.writeTextFile(`${d}/target`, "x");
      await Deno.symlink(`${d}/target`, `${d}/link`);
      assert.equal(readTextBounded(`${d}/link`, { max: 10 }), "x");
      assert.throws(
        () => readBounded(`${d}/link`, { max: 10, follow: false }),
        (e) => e instanceof FileReadError && e.errno === "ELOOP",
      );
      // No fd is left open by the reads above (each open is closed, refused or not).
      const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
      const before = fds();
      for (let i = 0; i < 20; i++) {
        readBounded(`${d}/target`, { max: 10 });
        try {
          readBounded(`${d}/fifo`, { max: 10 });
        } catch { /* refused */ }
      }
      assert.equal(fds(), before);
    } finally {
      await Deno.remove(d, { recursive: true });
    }
  },
});
