import assert from "node:assert/strict";
import { CLOSE_RANGE_CLOEXEC, F_SETFD, FD_CLOEXEC, markInheritedFdsCloexec } from "./cloexec.ts";

Deno.test("markInheritedFdsCloexec() asks close_range for every fd from 3 up, close-on-exec", () => {
  const calls: number[][] = [];
  const r = markInheritedFdsCloexec({
    closeRange: (a, b, f) => (calls.push([a, b, f]), 0),
    fcntl: () => {
      throw new Error("fcntl must not be needed");
    },
    listFds: () => [0, 1, 2, 7],
  });
  assert.deepEqual(r, { via: "close_range" });
  assert.deepEqual(calls, [[3, 0xffffffff, CLOSE_RANGE_CLOEXEC]]);
});

Deno.test("markInheritedFdsCloexec() falls back to fcntl on each listed fd above stdio when close_range fails or is missing", () => {
  for (const closeRange of [undefined, () => -1]) {
    const set: number[][] = [];
    const r = markInheritedFdsCloexec({
      closeRange,
      // fd 9 stands for the listing's own fd, closed by the time it is marked.
      fcntl: (fd, cmd, arg) => fd === 9 ? -1 : (set.push([fd, cmd, arg]), 0),
      listFds: () => [0, 1, 2, 3, 5, 9, 200],
    });
    assert.deepEqual(r, { via: "fcntl", marked: 3 });
    assert.deepEqual(set, [[3, F_SETFD, FD_CLOEXEC], [5, F_SETFD, FD_CLOEXEC], [
      200,
      F_SETFD,
      FD_CLOEXEC,
    ]]);
  }
});
