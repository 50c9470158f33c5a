/**
 * An image's or a container's etc/passwd and etc/group, read to resolve a
 * user name, on the real file system: a FIFO there is never waited on (a
 * plain read blocked for good, and in the daemon that is the whole event
 * loop), a file larger than the cap is not read, a regular one is.
 */
import assert from "node:assert/strict";
import { readUserFiles } from "../../src/image/users.ts";
import { LinuxSyscalls } from "../../src/sys/syscalls.ts";

const sys = new LinuxSyscalls();

async function rootfs(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-users-" });
  Deno.mkdirSync(`${dir}/etc`);
  return dir;
}

Deno.test("readUserFiles(): a FIFO as etc/passwd reads as absent, at once", async () => {
  const dir = await rootfs();
  try {
    sys.mkfifo(`${dir}/etc/passwd`, 0o644);
    Deno.writeTextFileSync(`${dir}/etc/group`, "root:x:0:\n");
    // A writer that comes after 2 s and writes nothing: a read that waited on the FIFO (as it
    // did before) ends then with "" and fails below, instead of hanging the suite.
    const writer = new Deno.Command("sh", {
      args: ["-c", `sleep 2; exec 3>'${dir}/etc/passwd'`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const files = readUserFiles(sys, dir);
    writer.kill();
    await writer.status;
    assert.equal(files.passwd, undefined);
    assert.deepEqual(files.unreadable, { passwd: "not a regular file (a FIFO)" });
    assert.equal(files.group, "root:x:0:\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readUserFiles(): a sparse 8 GiB etc/group is not read; a regular etc/passwd is", async () => {
  const dir = await rootfs();
  try {
    Deno.writeTextFileSync(`${dir}/etc/passwd`, "app:x:1000:1000::/home/app:/bin/sh\n");
    using f = Deno.openSync(`${dir}/etc/group`, { write: true, create: true });
    f.truncateSync(8 * 1024 ** 3);
    const files = readUserFiles(sys, dir);
    assert.equal(files.passwd, "app:x:1000:1000::/home/app:/bin/sh\n");
    assert.equal(files.group, undefined);
    assert.match(files.unreadable?.group ?? "", /^larger than /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
