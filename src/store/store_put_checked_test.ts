/**
 * FsStore checks a record's bytes once as it writes them (src/store/store.ts,
 * put): a read of the same bytes is not checked again. Other bytes found at
 * that path afterwards, written by another process, are checked as read.
 */
import assert from "node:assert/strict";
import { DamagedRecordError, FsStore, type RecordValidators, type StoredRecord } from "./store.ts";

type Rec = StoredRecord & { status: string };

Deno.test("FsStore: a record it wrote and another process then changed is read as it now is", () => {
  const dir = Deno.makeTempDirSync();
  try {
    let checks = 0;
    const validators: RecordValidators = {
      containers: (v) => {
        checks++;
        return (v as Rec).status === "bad" ? "status is bad" : undefined;
      },
    };
    const a = new FsStore(`${dir}/records`, `${dir}/rkl.lock`, validators);
    const b = new FsStore(`${dir}/records`, `${dir}/rkl.lock`, validators);
    a.put<Rec>("containers", { schemaVersion: 1, name: "c0", status: "running" });
    const afterPut = checks;
    assert.equal(a.get<Rec>("containers", "c0")?.status, "running");
    assert.equal(checks, afterPut, "its own bytes are not checked again");
    // Another process writes a new status: read as written, and checked.
    b.put<Rec>("containers", { schemaVersion: 1, name: "c0", status: "exited" });
    const before = checks;
    assert.equal(a.get<Rec>("containers", "c0")?.status, "exited");
    assert.equal(checks, before + 1);
    // ...or damages it: the damage shows.
    b.put<Rec>("containers", { schemaVersion: 1, name: "c0", status: "bad" });
    assert.throws(() => a.get<Rec>("containers", "c0"), DamagedRecordError);
    Deno.writeTextFileSync(`${dir}/records/containers/c0.json`, "{not json");
    assert.throws(() => a.get<Rec>("containers", "c0"), DamagedRecordError);
    // A record this process writes that fails its checks is not taken as checked.
    a.put<Rec>("containers", { schemaVersion: 1, name: "c1", status: "bad" });
    assert.throws(() => a.get<Rec>("containers", "c1"), DamagedRecordError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
