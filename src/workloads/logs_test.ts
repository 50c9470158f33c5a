import assert from "node:assert/strict";
import { type LogEntry, parseCriLog, streamLog, tail, tailOffset } from "./logs.ts";

Deno.test("parseCriLog() joins partial lines and holds back an unfinished one", () => {
  const text = "2026-01-01T00:00:00.1+00:00 stdout P hel\n" +
    "2026-01-01T00:00:00.2+00:00 stdout F lo\n" +
    "2026-01-01T00:00:00.3+00:00 stderr F oops\n" +
    "2026-01-01T00:00:00.4+00:00 stdout F \n" +
    "2026-01-01T00:00:00.5+00:00 stdout P unfinished\n" +
    "2026-01-01T00:00:00.6+00:00 std";
  const { entries, rest } = parseCriLog(text);
  assert.deepEqual(entries.map((e) => [e.stream, e.content]), [["stdout", "hello"], [
    "stderr",
    "oops",
  ], ["stdout", ""]]);
  assert.equal(
    rest,
    "2026-01-01T00:00:00.5+00:00 stdout P unfinished\n2026-01-01T00:00:00.6+00:00 std",
  );
});

Deno.test("tail() keeps the last n", () => {
  assert.deepEqual(tail([1, 2, 3], 2), [2, 3]);
  assert.deepEqual(tail([1, 2, 3], 0), []);
  assert.deepEqual(tail([1, 2, 3], undefined), [1, 2, 3]);
});

Deno.test("streamLog() follows a growing file until done() says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.log`;
    await Deno.writeTextFile(path, "t stdout F one\nt stdout F two\n");
    const seen: LogEntry[] = [];
    let finished = false;
    const follow = streamLog(path, (e) => seen.push(e), {
      tail: 1,
      follow: true,
      pollMs: 10,
      done: () => finished,
    });
    await new Promise((r) => setTimeout(r, 30));
    await Deno.writeTextFile(path, "t stdout F three\n", { append: true });
    finished = true;
    await follow;
    assert.deepEqual(seen.map((e) => e.content), ["two", "three"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tailOffset() finds the last n entries from the end, whole entries only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      if (i % 3 === 0) lines.push(`2026-01-01T00:00:00.1+00:00 stdout P part${i}-`);
      lines.push(`2026-01-01T00:00:00.1+00:00 stdout F line${i}`);
    }
    const path = `${dir}/log`;
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    const f = await Deno.open(path);
    const size = (await f.stat()).size;
    for (const n of [1, 2, 3, 5, 100, 19_999]) {
      const off = await tailOffset(f, size, n);
      await f.seek(off, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - off);
      let got = 0;
      while (got < buf.length) got += (await f.read(buf.subarray(got)))!;
      const { entries } = parseCriLog(new TextDecoder().decode(buf));
      assert.equal(entries.length, n, `n=${n}`);
      assert.equal(entries.at(-1)!.content, "line19999");
      assert.ok(entries[0].content.endsWith(`line${20_000 - n}`), entries[0].content);
    }
    assert.equal(await tailOffset(f, size, 50_000), 0);
    assert.equal(await tailOffset(f, size, 0), size);
    f.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseCriLog() reads a terminal's lines (ending in \\r) without the \\r", () => {
  const { entries } = parseCriLog(
    "2026-01-01T00:00:00.1+00:00 stdout F /dev/pts/0\r\n2026-01-01T00:00:00.2+00:00 stdout F hello\r\n",
  );
  assert.deepEqual(entries.map((e) => e.content), ["/dev/pts/0", "hello"]);
});
