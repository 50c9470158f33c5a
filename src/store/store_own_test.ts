/**
 * FsStore.keepOwnWrites (src/store/store.ts): a record this process wrote is
 * answered from memory only while its path names that very file, unchanged;
 * any other process's write, removal or edit is read as it now is.
 */
import assert from "node:assert/strict";
import { FsStore, MAX_PINS, type StoredRecord } from "./store.ts";

type Rec = StoredRecord & { status: string };

function twoStores(fn: (a: FsStore, b: FsStore, dir: string) => void) {
  const dir = Deno.makeTempDirSync();
  try {
    const a = new FsStore(`${dir}/records`, `${dir}/rkl.lock`);
    const b = new FsStore(`${dir}/records`, `${dir}/rkl.lock`);
    a.keepOwnWrites("containers");
    fn(a, b, dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const rec = (name: string, status: string): Rec => ({ schemaVersion: 1, name, status });

Deno.test("FsStore.ownText: its own write until another process writes, removes or renames the record", () => {
  twoStores((a, b) => {
    a.put<Rec>("containers", rec("c0", "running"));
    assert.match(a.ownText("containers", "c0") ?? "", /"running"/);
    assert.equal(a.get<Rec>("containers", "c0")?.status, "running");
    // Only the kinds asked for, and only this process's writes.
    a.put<Rec>("pods", rec("p0", "running"));
    assert.equal(a.ownText("pods", "p0"), undefined);
    assert.equal(b.ownText("containers", "c0"), undefined);
    // Another process's write, twice (the second can get our old inode's
    // number only once ours is freed): read as it is, and not ours again.
    for (const status of ["exited", "running"]) {
      b.put<Rec>("containers", rec("c0", status), { durable: false });
      assert.equal(a.ownText("containers", "c0"), undefined);
      assert.equal(a.get<Rec>("containers", "c0")?.status, status);
    }
    // Ours again, then removed by the other.
    a.put<Rec>("containers", rec("c0", "created"), { durable: false });
    assert.equal(a.get<Rec>("containers", "c0")?.status, "created");
    b.delete("containers", "c0");
    assert.equal(a.ownText("containers", "c0"), undefined);
    assert.equal(a.get<Rec>("containers", "c0"), undefined);
    // Renamed away by this process: its old name is not answered.
    a.put<Rec>("containers", rec("c1", "running"));
    a.rename<Rec>("containers", "c1", rec("c2", "running"));
    assert.equal(a.ownText("containers", "c1"), undefined);
    assert.equal(a.get<Rec>("containers", "c1"), undefined);
    a.delete("containers", "c2");
    assert.equal(a.get<Rec>("containers", "c2"), undefined);
  });
});

Deno.test("FsStore.ownText: an edit in place is seen (size or mtime)", () => {
  twoStores((a, _b, dir) => {
    const path = `${dir}/records/containers/c0.json`;
    a.put<Rec>("containers", rec("c0", "running"));
    const text = Deno.readTextFileSync(path);
    // Same inode, another size.
    const f = Deno.openSync(path, { write: true, truncate: true });
    f.writeSync(new TextEncoder().encode(text.replace("running", "exited")));
    f.close();
    assert.equal(a.get<Rec>("containers", "c0")?.status, "exited");
    // Same inode and size, another mtime.
    a.put<Rec>("containers", rec("c0", "running"));
    const g = Deno.openSync(path, { write: true });
    g.writeSync(new TextEncoder().encode(text.replace("running", "stopped")));
    g.close();
    const st = Deno.statSync(path);
    Deno.utimeSync(path, st.atime!, new Date(st.mtime!.getTime() + 1));
    assert.equal(a.get<Rec>("containers", "c0")?.status, "stopped");
  });
});

Deno.test("FsStore.keepOwnWrites holds at most MAX_PINS files, the oldest let go first", () => {
  twoStores((a) => {
    const name = (i: number) => `c${i}`;
    for (let i = 0; i < MAX_PINS + 3; i++) {
      a.put<Rec>("containers", rec(name(i), "running"), { durable: false });
    }
    assert.equal(a.ownText("containers", name(0)), undefined);
    assert.equal(a.ownText("containers", name(2)), undefined);
    assert.notEqual(a.ownText("containers", name(3)), undefined);
    assert.notEqual(a.ownText("containers", name(MAX_PINS + 2)), undefined);
    // Read from the file all the same.
    assert.equal(a.get<Rec>("containers", name(0))?.status, "running");
  });
});
