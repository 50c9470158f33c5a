import assert from "node:assert/strict";
import { FakeSyscalls } from "../sys/syscalls.ts";
import { rotatedLogs, rotateIfLarge } from "./logrotate.ts";

Deno.test("rotateIfLarge() shifts generations, keeps maxFiles, and asks conmon to reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = `${dir}/web.log`;
    const sys = new FakeSyscalls();
    const rot = { maxBytes: 10, maxFiles: 3 };
    await Deno.writeTextFile(log, "small");
    assert.equal(rotateIfLarge(sys, { log, ctl: `${dir}/ctl` }, rot), false);
    for (const gen of ["first-gen!", "second-gen", "third-gen!"]) {
      await Deno.writeTextFile(log, gen);
      assert.equal(rotateIfLarge(sys, { log, ctl: `${dir}/ctl` }, rot), true);
    }
    assert.deepEqual(rotatedLogs(log), [`${log}.1`, `${log}.2`]);
    assert.equal(await Deno.readTextFile(`${log}.1`), "third-gen!");
    assert.equal(await Deno.readTextFile(`${log}.2`), "second-gen");
    const writes = sys.calls.filter((c) => c.name === "write");
    assert.equal(writes.length, 3);
    assert.deepEqual(writes[0], { name: "write", fd: 100, data: "2 0 0\n" });
    assert.equal(sys.openFds.size, 0, "the ctl fd is closed");
    // No conmon reading its ctl FIFO: the log stays as it is.
    await Deno.writeTextFile(log, "fourth-gen");
    sys.failNext("open", 6); // ENXIO
    assert.equal(rotateIfLarge(sys, { log, ctl: `${dir}/ctl` }, rot), false);
    assert.equal(await Deno.readTextFile(log), "fourth-gen");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rotatedLogs() lists only this log's numbered generations, in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["a.log", "a.log.2", "a.log.10", "a.log.1", "ab.log.1", "a.log.x"]) {
      await Deno.writeTextFile(`${dir}/${f}`, "");
    }
    assert.deepEqual(rotatedLogs(`${dir}/a.log`), [
      `${dir}/a.log.1`,
      `${dir}/a.log.2`,
      `${dir}/a.log.10`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
