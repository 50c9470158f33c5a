import assert from "node:assert/strict";
import { type LogEntry, parseCriLog, streamLog, tail } from "./logs.ts";

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
