/**
 * Log reading and rotation on the FakeHost's tree: the same code as on a
 * real host, through an OpenLog and HostFs.
 */
import assert from "node:assert/strict";
import { FakeHost } from "../testing/fake_host.ts";
import { fsLogOpener, type LogEntry, streamLog } from "./logs.ts";
import { rotatedLogs, rotateIfLarge } from "./logrotate.ts";

const LOG = "/fake/var/log/rkl/web.log";
const line = (i: number) => `2026-01-01T00:00:0${i}.000000000Z stdout F line ${i}\n`;

Deno.test("streamLog() with --tail reads a log on the FakeHost's tree through fsLogOpener", async () => {
  const host = new FakeHost();
  host.fs.mkdir("/fake/var/log/rkl", { recursive: true });
  host.fs.writeTextFile(LOG, [1, 2, 3].map(line).join(""));
  const got: LogEntry[] = [];
  await streamLog(LOG, (e) => got.push(e), { tail: 2, open: fsLogOpener(host.fs) });
  assert.deepEqual(got.map((e) => e.content), ["line 2", "line 3"]);
  const none: LogEntry[] = [];
  await streamLog("/fake/var/log/rkl/gone.log", (e) => none.push(e), {
    open: fsLogOpener(host.fs),
  });
  assert.deepEqual(none, []);
});

Deno.test("rotateIfLarge() on the FakeHost: generations shift, the oldest goes, conmon is asked to reopen", () => {
  const host = new FakeHost();
  host.fs.mkdir("/fake/var/log/rkl", { recursive: true });
  host.fs.mkdir("/fake/c", { recursive: true });
  host.sys.mkfifo("/fake/c/ctl", 0o600);
  host.fs.writeTextFile(LOG, "x".repeat(100));
  host.fs.writeTextFile(`${LOG}.1`, "one");
  host.fs.writeTextFile(`${LOG}.2`, "two");
  const rot = { maxBytes: 50, maxFiles: 3 };
  assert.equal(rotateIfLarge(host.sys, { log: LOG, ctl: "/fake/c/ctl", fs: host.fs }, rot), true);
  assert.deepEqual(rotatedLogs(LOG, host.fs), [`${LOG}.1`, `${LOG}.2`]);
  assert.equal(host.fs.readTextFile(`${LOG}.1`).length, 100);
  assert.equal(host.fs.readTextFile(`${LOG}.2`), "one");
  assert.ok(!host.fs.exists(LOG));
  const writes = host.sys.calls.filter((c) => c.name === "write");
  assert.deepEqual(writes.map((c) => (c as { data: string }).data), ["2 0 0\n"]);
  assert.equal(host.sys.fds.size, 0);
  // Small enough: nothing moves.
  host.fs.writeTextFile(LOG, "y");
  assert.equal(rotateIfLarge(host.sys, { log: LOG, ctl: "/fake/c/ctl", fs: host.fs }, rot), false);
});
