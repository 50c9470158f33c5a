/**
 * The host-wide locks (net/hostnet.ts) through libc's flock: a free lock is
 * taken in the caller's turn, so the work under it (a CNI plugin's spawn)
 * starts before the caller's next synchronous step; a held one is waited for.
 * Needs FFI only (no root): runs on a temp file.
 */
import assert from "node:assert/strict";
import { flockHostLock } from "../../src/net/hostnet.ts";
import { tryLock } from "../../src/sys/trylock.ts";

async function inTemp(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-hostlock-" });
  try {
    await fn(`${dir}/locks/net.lock`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("flockHostLock: a free lock runs its work in the caller's turn", async () => {
  await inTemp(async (path) => {
    for (const exclusive of [false, true]) {
      let started = false;
      const held = flockHostLock.hold(path, exclusive, () => {
        started = true;
        return Promise.resolve(7);
      });
      assert.equal(started, true, `exclusive=${exclusive}: started before the caller went on`);
      assert.equal(await held, 7);
    }
  });
});

Deno.test("flockHostLock: shared holds go together; an exclusive one waits for them", async () => {
  await inTemp(async (path) => {
    const order: string[] = [];
    let endShared!: () => void;
    const sharedDone = new Promise<void>((r) => endShared = r);
    const a = flockHostLock.hold(path, false, async () => {
      order.push("a");
      await sharedDone;
      order.push("a end");
    });
    const b = flockHostLock.hold(path, false, () => {
      order.push("b");
      return Promise.resolve();
    });
    await b;
    assert.deepEqual(order, ["a", "b"], "the second shared hold did not wait");
    const x = flockHostLock.hold(path, true, () => {
      order.push("x");
      return Promise.resolve();
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(order, ["a", "b"], "the exclusive hold waits while a shared one is held");
    endShared();
    await Promise.all([a, x]);
    assert.deepEqual(order, ["a", "b", "a end", "x"]);
  });
});

Deno.test("tryLock: free, held by another open file, released", async () => {
  await inTemp(async (path) => {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")));
    const ex = tryLock(path, true);
    assert.ok(ex, "a free lock is taken");
    assert.equal(tryLock(path, false), undefined, "shared refused while held exclusive");
    // Deno's own lock (another open file) sees it too.
    const f = await Deno.open(path, { read: true, write: true });
    let got = false;
    const waiting = f.lock(false).then(() => got = true);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(got, false);
    ex();
    await waiting;
    const sh = tryLock(path, false);
    assert.ok(sh, "shared beside a shared one");
    assert.equal(tryLock(path, true), undefined, "exclusive refused while shared held");
    sh();
    f.close();
    const again = tryLock(path, true);
    assert.ok(again, "free again once both are released");
    again();
  });
});
