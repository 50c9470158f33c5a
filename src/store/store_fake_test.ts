import assert from "node:assert/strict";
import { MemFs } from "../testing/mem_fs.ts";
import { DamagedRecordError, type FileLock, FsStore, writeAtomic } from "./store.ts";

function memStore(validators = {}) {
  const fs = new MemFs();
  const events: string[] = [];
  const lock: FileLock = {
    acquire(path) {
      fs.writeFile(path, new Uint8Array(), { append: true });
      events.push(`lock ${path}`);
      return Promise.resolve(() => events.push(`unlock ${path}`));
    },
  };
  const store = new FsStore("/var/lib/rkl/records", "/var/lib/rkl/rkl.lock", validators, {
    fs,
    lock,
  });
  return { fs, store, events };
}

Deno.test("FsStore on a HostFs keeps its records there: put, get, list, delete, modes", () => {
  const { fs, store } = memStore();
  store.put("containers", { schemaVersion: 0, name: "b" });
  store.put("containers", { schemaVersion: 0, name: "a" });
  assert.deepEqual(store.list("containers").map((r) => r.name), ["a", "b"]);
  assert.deepEqual(
    [...fs.census("/var/lib/rkl/records")].map(([p, l]) => `${p} ${l.split(" ").slice(0, 2)}`),
    [
      "/var/lib/rkl/records dir,0700",
      "/var/lib/rkl/records/containers dir,0700",
      "/var/lib/rkl/records/containers/a.json file,0600",
      "/var/lib/rkl/records/containers/b.json file,0600",
    ],
    "no temp file is left, records are 0600 in 0700 directories",
  );
  assert.equal(JSON.parse(fs.readTextFile("/var/lib/rkl/records/containers/a.json")).name, "a");
  store.delete("containers", "a");
  store.delete("containers", "a");
  assert.equal(store.get("containers", "a"), undefined);
  assert.equal(fs.exists("/var/lib/rkl/records/containers/a.json"), false);
});

Deno.test("FsStore on a HostFs reports damaged records and skips temp files", () => {
  const { fs, store } = memStore({
    pods: (v: unknown) => (v as { ok?: boolean }).ok ? undefined : "not ok",
  });
  store.put("pods", { schemaVersion: 1, name: "good", ok: true } as never);
  store.put("pods", { schemaVersion: 1, name: "bad" });
  fs.writeTextFile("/var/lib/rkl/records/pods/x.json.tmp-1-abc", "{");
  fs.writeTextFile("/var/lib/rkl/records/pods/empty.json", "");
  assert.deepEqual(store.list("pods").map((r) => r.name), ["good"]);
  assert.deepEqual(store.damaged("pods"), [
    { name: "bad", reason: "not ok" },
    { name: "empty", reason: "empty file" },
  ]);
  assert.throws(() => store.get("pods", "bad"), DamagedRecordError);
  // A directory where a record should be: damaged, not a crash.
  fs.mkdir("/var/lib/rkl/records/pods/dir.json");
  assert.throws(() => store.get("pods", "dir"), /Is a directory/);
});

Deno.test("FsStore.withLock() takes its FileLock once per outermost holder and releases it on a throw", async () => {
  const { fs, store, events } = memStore();
  await store.withLock(() => store.withLock(() => Promise.resolve()));
  await assert.rejects(store.withLock(() => Promise.reject(new Error("boom"))), /boom/);
  assert.deepEqual(events, [
    "lock /var/lib/rkl/rkl.lock",
    "unlock /var/lib/rkl/rkl.lock",
    "lock /var/lib/rkl/rkl.lock",
    "unlock /var/lib/rkl/rkl.lock",
  ]);
  assert.ok(fs.lstat("/var/lib/rkl/rkl.lock").isFile);
});

Deno.test("writeAtomic() on a HostFs: a failed write or rename never tears the record and leaves no temp file", () => {
  const fs = new MemFs();
  fs.mkdir("/r");
  writeAtomic("/r/rec.json", "old\n", fs);
  fs.before = (op) => {
    if (op === "rename") throw new Error("injected rename failure");
  };
  assert.throws(() => writeAtomic("/r/rec.json", "new\n", fs), /injected/);
  fs.before = () => {};
  assert.equal(fs.readTextFile("/r/rec.json"), "old\n");
  const temps = () => fs.readDir("/r").filter((e) => e.name.includes(".tmp-")).length;
  assert.equal(temps(), 0, "the rename failed: its temp file went too");
  fs.before = (op) => {
    if (op === "writeFile") throw new Error("injected write failure");
  };
  assert.throws(() => writeAtomic("/r/rec.json", "new\n", fs), /injected/);
  fs.before = () => {};
  assert.equal(fs.readTextFile("/r/rec.json"), "old\n");
  assert.equal(temps(), 0, "the failed write left no temp file");
});
