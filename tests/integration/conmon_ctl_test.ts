/**
 * conmon's control FIFO from the writer's side, against a real FIFO: with a
 * reader (conmon's way: O_RDONLY|O_NONBLOCK) each message arrives as one
 * line; with none (conmon gone) a size is dropped at once. Before
 * conmon_ctl.ts the CLI opened the FIFO with Deno's blocking open, and
 * `rkl run --rm -it … stty size` hung whenever the process had ended first.
 */
import assert from "node:assert/strict";
import { ctlResizer, openCtl, sendCtl, sizeMessage, writeCtl } from "../../src/oci/conmon_ctl.ts";
import { LinuxSyscalls, O_CLOEXEC, O_NONBLOCK, O_RDONLY } from "../../src/sys/syscalls.ts";
import { libc } from "../../src/sys/libc.ts";

const sys = new LinuxSyscalls();

async function fifo(): Promise<{ path: string; done: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-ctl-" });
  const path = `${dir}/ctl`;
  sys.mkfifo(path, 0o600);
  return { path, done: () => Deno.remove(dir, { recursive: true }) };
}

/** What a reader's fd holds now ("" when empty). */
async function drain(fd: number): Promise<string> {
  const buf = new Uint8Array(4096);
  const n = Number(await libc().read_blocking(fd, buf, BigInt(buf.length)));
  return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : "";
}

Deno.test("a size sent with no conmon reading is dropped at once, never waiting for a reader", async () => {
  const f = await fifo();
  // A reader that comes after 2 s: an open that waited for one (Deno's own, as before) ends
  // then and fails the bound below, instead of hanging the suite.
  const reader = new Deno.Command("sh", {
    args: ["-c", `sleep 2; exec 3<'${f.path}'; sleep 1`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const started = performance.now();
    ctlResizer(sys, f.path)({ width: 80, height: 24 });
    assert.equal(sendCtl(sys, f.path, sizeMessage({ width: 80, height: 24 })), false);
    assert.equal(openCtl(sys, f.path), undefined);
    assert.equal(sendCtl(sys, `${f.path}-missing`, "1 1 1\n"), false);
    const ms = performance.now() - started;
    assert.ok(ms < 1_500, `${ms} ms: the open waited for a reader`);
  } finally {
    reader.kill();
    await reader.status;
    await f.done();
  }
});

Deno.test("with conmon reading, each size is one line; hostile sizes are clamped", async () => {
  const f = await fifo();
  const reader = sys.open(f.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  try {
    const resize = ctlResizer(sys, f.path);
    resize({ width: 120, height: 40 });
    resize({ width: 1e9, height: -3 });
    resize({ width: Number.NaN, height: 2.9 });
    assert.equal(await drain(reader), "1 40 120\n1 0 1000\n1 2 0\n");
    assert.ok(sendCtl(sys, f.path, "2 0 0\n"));
    assert.equal(await drain(reader), "2 0 0\n");
  } finally {
    sys.close(reader);
    await f.done();
  }
});

Deno.test("a reader gone after the open: the write fails (EPIPE) without killing rkl", async () => {
  const f = await fifo();
  const reader = sys.open(f.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  const fd = openCtl(sys, f.path);
  assert.notEqual(fd, undefined);
  sys.close(reader);
  try {
    assert.equal(writeCtl(sys, fd!, "1 24 80\n"), false);
  } finally {
    sys.close(fd!);
    await f.done();
  }
});
