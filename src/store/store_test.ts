import assert from "node:assert/strict";
import { StoreError } from "../errors.ts";
import {
  FsStore,
  MemoryStore,
  RecordExistsError,
  SCHEMA_VERSION,
  type StoredRecord,
  writeAtomic,
} from "./store.ts";

async function tempStore(fn: (s: FsStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(new FsStore(`${dir}/records`, `${dir}/run/rkl.lock`), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("FsStore puts, gets, lists and deletes records with a schema version", async () => {
  await tempStore(async (s) => {
    s.put("containers", { schemaVersion: 0, name: "b", x: 1 } as never);
    s.put("containers", { schemaVersion: 0, name: "a", x: 2 } as never);
    assert.equal(
      s.get<{ schemaVersion: number; name: string }>("containers", "a")?.schemaVersion,
      SCHEMA_VERSION,
    );
    assert.deepEqual(s.list("containers").map((r) => r.name), ["a", "b"]);
    s.delete("containers", "a");
    s.delete("containers", "a");
    assert.equal(s.get("containers", "a"), undefined);
    await Promise.resolve();
  });
});

Deno.test("FsStore refuses names that could escape its directory", async () => {
  await tempStore(async (s) => {
    assert.throws(() => s.get("containers", "../etc/passwd"), StoreError);
    assert.throws(() => s.put("containers", { schemaVersion: 1, name: "a/b" }), StoreError);
    for (const bad of ["", "A", "a_", "a__b", "a_b_c", "_a", "a/b", "a__pause__pause"]) {
      assert.throws(() => s.get("containers", bad), StoreError, bad);
    }
    for (const good of ["web", "web_app", "web__pause"]) {
      assert.equal(s.get("containers", good), undefined);
    }
    await Promise.resolve();
  });
});

Deno.test("FsStore refuses a record from another schema version", async () => {
  await tempStore(async (s, dir) => {
    await Deno.mkdir(`${dir}/records/containers`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/records/containers/old.json`,
      JSON.stringify({ schemaVersion: 99, name: "old" }),
    );
    assert.throws(() => s.get("containers", "old"), /schema version 99/);
  });
});

Deno.test("writeAtomic() replaces whole files and leaves no temp file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/rec.json`;
    const writes = Array.from(
      { length: 50 },
      (_, i) => JSON.stringify({ i, pad: "x".repeat(10_000 + i) }),
    );
    for (const w of writes) {
      writeAtomic(path, w);
      // Every read sees one complete document.
      assert.equal(JSON.parse(await Deno.readTextFile(path)).i, writes.indexOf(w));
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["rec.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FsStore.withLock() serialises two stores sharing a lock file", async () => {
  await tempStore(async (a, dir) => {
    const b = new FsStore(`${dir}/records`, `${dir}/run/rkl.lock`);
    const events: string[] = [];
    const slow = a.withLock(async () => {
      events.push("a-in");
      await new Promise((r) => setTimeout(r, 100));
      events.push("a-out");
    });
    await new Promise((r) => setTimeout(r, 20));
    const fast = b.withLock(() => {
      events.push("b-in");
      return Promise.resolve();
    });
    await Promise.all([slow, fast]);
    assert.deepEqual(events, ["a-in", "a-out", "b-in"]);
  });
});

Deno.test("FsStore.withLock() serialises concurrent tasks of one process on one store", async () => {
  await tempStore(async (s) => {
    let inside = 0;
    let most = 0;
    await Promise.all(Array.from({ length: 5 }, () =>
      s.withLock(async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 10));
        inside--;
      })));
    assert.equal(most, 1);
  });
});

Deno.test("MemoryStore.withLock() is exclusive across tasks and re-entrant within one", async () => {
  const s = new MemoryStore();
  let inside = 0;
  let most = 0;
  await Promise.all(Array.from({ length: 5 }, () =>
    s.withLock(() =>
      s.withLock(async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
      })
    )));
  assert.equal(most, 1);
});

Deno.test("FsStore.withLock() is re-entrant within one store", async () => {
  await tempStore(async (s) => {
    const v = await s.withLock(() => s.withLock(() => Promise.resolve(7)));
    assert.equal(v, 7);
  });
});

Deno.test("FsStore checks a record's text once, and again whenever the file changes", async () => {
  type X = StoredRecord & { x: number };
  const dir = await Deno.makeTempDir();
  try {
    const checked: string[] = [];
    const s = new FsStore(`${dir}/records`, `${dir}/rkl.lock`, {
      containers: (v) => {
        const r = v as { name: string; x: number };
        checked.push(`${r.name}:${r.x}`);
        return r.x < 0 ? "x must not be negative" : undefined;
      },
    });
    s.put("containers", { name: "a", x: 1 } as never);
    const first = s.get<X>("containers", "a")!;
    first.x = 99; // callers mutate what they get: the next get is a fresh object
    assert.equal(s.get<X>("containers", "a")!.x, 1);
    assert.deepEqual(s.list("containers").map((r) => r.name), ["a"]);
    assert.deepEqual(checked, ["a:1"], "unchanged bytes are not checked again");

    // An edit behind rkl's back (same name, damaging content) is checked and refused.
    const path = `${dir}/records/containers/a.json`;
    const text = Deno.readTextFileSync(path);
    Deno.writeTextFileSync(path, text.replace('"x": 1', '"x": -1'));
    assert.throws(() => s.get("containers", "a"), /x must not be negative/);
    assert.deepEqual(s.damaged("containers").map((d) => d.reason), ["x must not be negative"]);
    // Put back as it was: checked again, since the failure forgot it.
    Deno.writeTextFileSync(path, text);
    assert.equal(s.get<X>("containers", "a")!.x, 1);
    assert.deepEqual(checked, ["a:1", "a:-1", "a:-1", "a:1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeAtomic() removes its temp file when the rename fails (here: a directory in the way)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.mkdirSync(`${dir}/rec.json/sub`, { recursive: true });
    assert.throws(() => writeAtomic(`${dir}/rec.json`, "{}\n"), Deno.errors.IsADirectory);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["rec.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FsStore.rename() moves a record to a free name, refuses a taken or hostile one, and leaves no temp file", async () => {
  await tempStore(async (s, dir) => {
    type R = StoredRecord & { id: string };
    s.put("containers", { schemaVersion: 0, name: "a", id: "a" } as R);
    s.put("containers", { schemaVersion: 0, name: "b", id: "b" } as R);
    assert.deepEqual(s.list("containers").map((r) => r.name), ["a", "b"]); // a scan to cache
    await s.withLock(() =>
      Promise.resolve(s.rename("containers", "a", { ...s.get<R>("containers", "a")!, name: "c" }))
    );
    assert.equal(s.get("containers", "a"), undefined);
    assert.equal(s.get<R>("containers", "c")?.id, "a");
    assert.deepEqual(s.list("containers").map((r) => r.name), ["b", "c"]);
    // Taken: RecordExistsError, both records as they were.
    assert.throws(
      () => s.rename("containers", "c", { ...s.get<R>("containers", "c")!, name: "b" }),
      RecordExistsError,
    );
    assert.equal(s.get<R>("containers", "b")?.id, "b");
    assert.equal(s.get<R>("containers", "c")?.id, "a");
    for (const bad of ["../x", "x/y", "", "."]) {
      assert.throws(
        () => s.rename("containers", "c", { ...s.get<R>("containers", "c")!, name: bad }),
        StoreError,
      );
    }
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/records/containers`)].map((e) => e.name).sort(),
      ["b.json", "c.json"],
    );
    // MemoryStore: the same contract.
    const m = new MemoryStore();
    m.put("containers", { schemaVersion: 0, name: "a" });
    m.put("containers", { schemaVersion: 0, name: "b" });
    assert.throws(
      () => m.rename("containers", "a", { schemaVersion: 0, name: "b" }),
      RecordExistsError,
    );
    m.rename("containers", "a", { schemaVersion: 0, name: "c" });
    assert.deepEqual(m.list("containers").map((r) => r.name), ["b", "c"]);
  });
});
