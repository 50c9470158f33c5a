/**
 * FsStore reuses a scan of a records directory while the directory is as it
 * was (src/store/store.ts, `#scans`): another process's write or removal
 * must show in the next list all the same, whenever it comes.
 */
import assert from "node:assert/strict";
import { FsStore, RACY_MS, type StoredRecord } from "./store.ts";

type Rec = StoredRecord & { status: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function twoStores(fn: (a: FsStore, b: FsStore, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    // Two instances on one root: the daemon and a CLI command.
    const a = new FsStore(`${dir}/records`, `${dir}/rkl.lock`);
    const b = new FsStore(`${dir}/records`, `${dir}/rkl.lock`);
    await fn(a, b, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const statuses = (s: FsStore) => s.list<Rec>("containers").map((r) => `${r.name}=${r.status}`);

Deno.test("FsStore's reused scan sees another process's put and delete at once", async () => {
  await twoStores(async (a, b) => {
    for (let i = 0; i < 5; i++) {
      b.put<Rec>("containers", { schemaVersion: 1, name: `c${i}`, status: "running" });
    }
    await sleep(RACY_MS + 20);
    // Scanned once, then reused: the same answer both times.
    assert.deepEqual(statuses(a), [
      "c0=running",
      "c1=running",
      "c2=running",
      "c3=running",
      "c4=running",
    ]);
    assert.deepEqual(statuses(a), [
      "c0=running",
      "c1=running",
      "c2=running",
      "c3=running",
      "c4=running",
    ]);
    const c2 = () => a.list<Rec>("containers").find((r) => r.name === "c2")?.status;
    for (let round = 0; round < 10; round++) {
      const status = `exited${round}`;
      // Ours is a reused scan (the directory has not changed for a while) …
      await sleep(RACY_MS + 5);
      c2();
      // … when the other process changes a record: seen at once, and later on.
      b.put<Rec>("containers", { schemaVersion: 1, name: "c2", status });
      if (round % 2 === 0) assert.equal(c2(), status);
      await sleep(RACY_MS + 5);
      assert.equal(c2(), status);
      assert.equal(c2(), status);
    }
    await sleep(RACY_MS + 5);
    assert.equal(statuses(a).length, 5);
    b.delete("containers", "c3");
    await sleep(RACY_MS + 5);
    assert.deepEqual(statuses(a), ["c0=running", "c1=running", "c2=exited9", "c4=running"]);
  });
});

Deno.test("FsStore's reused scan hands out fresh objects and damaged entries", async () => {
  await twoStores(async (a, _b, dir) => {
    a.put<Rec>("containers", { schemaVersion: 1, name: "web", status: "running" });
    Deno.writeTextFileSync(`${dir}/records/containers/bad.json`, "{");
    await sleep(RACY_MS + 20);
    a.list<Rec>("containers"); // scanned
    const first = a.list<Rec>("containers"); // reused
    first[0].status = "changed by the caller";
    assert.equal(a.list<Rec>("containers")[0].status, "running");
    const damaged = a.damaged("containers");
    assert.equal(damaged.length, 1);
    assert.equal(damaged[0].name, "bad");
    damaged[0].reason = "changed by the caller";
    assert.match(a.damaged("containers")[0].reason, /not JSON/);
  });
});
