import assert from "node:assert/strict";
import { DetachScanner } from "./tty.ts";

const b = (...n: number[]) => new Uint8Array(n);

Deno.test("DetachScanner finds ctrl-p ctrl-q, also split across reads", () => {
  const s = new DetachScanner();
  assert.deepEqual(s.feed(b(0x61, 0x10)), { data: b(0x61), detached: false });
  assert.deepEqual(s.feed(b(0x11, 0x62)), { data: b(), detached: true });
});

Deno.test("DetachScanner passes on a ctrl-p that no ctrl-q follows", () => {
  const s = new DetachScanner();
  assert.deepEqual(s.feed(b(0x10, 0x61)), { data: b(0x10, 0x61), detached: false });
  assert.deepEqual(s.feed(b(0x10, 0x10, 0x11)), { data: b(0x10), detached: true });
});
