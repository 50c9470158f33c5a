import assert from "node:assert/strict";
import { appendEvent, eventLogPath, readEvents } from "./event_log.ts";
import type { Host } from "./host.ts";
import { realFs } from "../sys/fs.ts";

function hostAt(root: string, clock: { t: number }): Host {
  return {
    paths: { root, runRoot: `${root}/run` },
    now: () => new Date(clock.t++ * 1000),
    fs: realFs,
  } as unknown as Host;
}

/** Runs `fn` with a new temporary directory, removed after. */
function inTemp(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync();
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const lines = (text: string) => text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
const actions = (text: string) => lines(text).map((e) => e.action as string);
const containers = (text: string) => lines(text).map((e) => e.container as string);

Deno.test("appendEvent: one JSON line per event, mode 0600, under ROOT/daemon", () =>
  inTemp((root) => {
    const host = hostAt(root, { t: 0 });
    appendEvent(host, { action: "start" });
    appendEvent(host, { action: "rename", container: "b", oldName: "a" });
    const p = eventLogPath(host.paths);
    assert.deepEqual(p, `${root}/daemon/events.jsonl`);
    assert.deepEqual(Deno.statSync(p).mode! & 0o777, 0o600);
    const lines = Deno.readTextFileSync(p).split("\n");
    assert.deepEqual(lines.length, 3); // two lines and the final newline
    assert.deepEqual(JSON.parse(lines[1]), {
      time: "1970-01-01T00:00:01.000Z",
      action: "rename",
      container: "b",
      oldName: "a",
    });
  }));

Deno.test("appendEvent: the log is rotated at the limit into one .1 file, never growing past it", () =>
  inTemp((root) => {
    const host = hostAt(root, { t: 0 });
    const p = eventLogPath(host.paths);
    const line = JSON.stringify({ time: new Date(0).toISOString(), action: "restart" }).length + 1;
    // Five lines fill a file; 23 appends: four rotations, three lines left.
    for (let i = 0; i < 23; i++) appendEvent(host, { action: "restart" }, 5 * line);
    assert.deepEqual(actions(Deno.readTextFileSync(p)).length, 3);
    assert.deepEqual(actions(Deno.readTextFileSync(`${p}.1`)).length, 5);
    assert.deepEqual(Deno.statSync(`${p}.1`).size, 5 * line);
    // The history is the rotated file, then the current one.
    const { text, cursor } = readEvents(p);
    assert.deepEqual(actions(text).length, 8);
    assert.deepEqual(cursor.offset, 3 * line);
    assert.deepEqual(cursor.ino, Deno.statSync(p).ino);
  }));

Deno.test("readEvents: following across a rotation loses no line and reads none twice", () =>
  inTemp((root) => {
    const clock = { t: 0 };
    const host = hostAt(root, clock);
    const p = eventLogPath(host.paths);
    const max = 400;
    let { text, cursor } = readEvents(p); // no log yet
    assert.deepEqual(text, "");
    assert.deepEqual(cursor, { ino: null, offset: 0 });
    const seen: string[] = [];
    let n = 0;
    for (let round = 0; round < 12; round++) {
      // A few appends between two looks; some of them rotate the log.
      for (let k = 0; k < 3; k++) {
        appendEvent(host, { action: "restart", container: `c${n++}` }, max);
      }
      ({ text, cursor } = readEvents(p, cursor));
      seen.push(...containers(text));
    }
    assert.ok(Deno.statSync(`${p}.1`).isFile, "the log was rotated");
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => `c${i}`));
    // Nothing new: nothing read.
    assert.deepEqual(readEvents(p, cursor).text, "");
  }));

Deno.test("readEvents: a line still being written is read at the next look", () =>
  inTemp((root) => {
    const p = `${root}/events.jsonl`;
    Deno.writeTextFileSync(p, '{"action":"a"}\n{"action":"b"');
    let { text, cursor } = readEvents(p);
    assert.deepEqual(actions(text), ["a"]);
    Deno.writeTextFileSync(p, "}\n", { append: true });
    ({ text, cursor } = readEvents(p, cursor));
    assert.deepEqual(actions(text), ["b"]);
    assert.deepEqual(cursor.offset, Deno.statSync(p).size);
  }));

Deno.test("readEvents: a rotation between reading the log and its .1 does not repeat the log", () =>
  inTemp((root) => {
    const p = `${root}/events.jsonl`;
    Deno.writeTextFileSync(p, '{"action":"a"}\n{"action":"b"}\n');
    // What the reader finds when the log is renamed to .1 right after it was read:
    // the same file (inode) under both names.
    Deno.linkSync(p, `${p}.1`);
    const { text, cursor } = readEvents(p);
    assert.deepEqual(actions(text), ["a", "b"]);
    assert.deepEqual(cursor, { ino: Deno.statSync(p).ino, offset: Deno.statSync(p).size });
  }));
