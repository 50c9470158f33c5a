import assert from "node:assert/strict";
import { Waker } from "./events.ts";

Deno.test("Waker: a stream wakes when a watched directory changes, not at its next poll", async () => {
  const dir = await Deno.makeTempDir();
  // A poll of a minute: each wait below must end by the change (or the abort), not the poll.
  const w = new Waker([`${dir}/records`, dir], 60_000);
  const never = new AbortController();
  try {
    setTimeout(() => Deno.writeTextFileSync(`${dir}/events.jsonl`, "{}\n"), 50);
    assert.equal(await w.next(never.signal), "changed");
    // A subdirectory made after the watch began is watched too (recursive).
    Deno.mkdirSync(`${dir}/containers`);
    assert.equal(await w.next(never.signal), "changed");
    setTimeout(() => Deno.writeTextFileSync(`${dir}/containers/a.json`, "{}"), 50);
    assert.equal(await w.next(never.signal), "changed");
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    assert.equal(await w.next(stop.signal), "abort");
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
  // A directory made after the stream began (a new state root's records): watched from then on.
  const root = await Deno.makeTempDir();
  const late = new Waker([`${root}/records`], 60_000);
  try {
    Deno.mkdirSync(`${root}/records`);
    assert.equal(await late.next(never.signal), "changed");
    setTimeout(() => Deno.writeTextFileSync(`${root}/records/a.json`, "{}"), 50);
    assert.equal(await late.next(never.signal), "changed");
  } finally {
    late.close();
    await Deno.remove(root, { recursive: true });
  }
  // Nothing watched (no such directory): the poll ends the wait.
  const idle = new Waker(["/nonexistent/rkl-waker"], 30);
  assert.equal(await idle.next(new AbortController().signal), "poll");
  idle.close();
});
