import assert from "node:assert/strict";
import { FsStore, MemoryStore, RACY_MS } from "../../store/store.ts";
import type { Host } from "../../workloads/host.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import { serviceDefinition } from "../grpc.ts";
import { criRoot } from "../proto/reference.ts";
import { ListCache } from "./list_cache.ts";

const settle = () => new Promise((r) => setTimeout(r, RACY_MS + 20));

function fixture() {
  const root = Deno.makeTempDirSync({ prefix: "rkl-list-cache-" });
  const store = new FsStore(`${root}/records`, `${root}/lock`);
  store.put("containers", { name: "a", schemaVersion: 1 });
  const exitDir = `${root}/exits`;
  Deno.mkdirSync(exitDir);
  const alive = new Map<number, number>([[4242, 77]]);
  const running = {
    name: "a",
    status: "running",
    pid: 4242,
    pidStart: 77,
    dirs: { exitDir },
  } as unknown as ContainerRecord;
  let made = 0;
  const make = () => {
    made++;
    return Promise.resolve({
      answer: { containers: [{ id: "a", state: "CONTAINER_RUNNING" }] },
      containers: [running],
    });
  };
  const cache = new ListCache(
    { store } as unknown as Host,
    "containers",
    "ListContainersResponse",
    (pid) => alive.has(pid) ? { state: "S", startTime: alive.get(pid)! } : undefined,
  );
  return {
    root,
    store,
    exitDir,
    alive,
    cache,
    make,
    made: () => made,
    cleanup: () => Deno.removeSync(root, { recursive: true }),
  };
}

Deno.test("a list is answered again from the cache while nothing it shows changed", async () => {
  const f = fixture();
  try {
    await settle();
    const first = await f.cache.answer({}, f.make);
    const second = await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 1);
    assert.equal(second, first);
    assert.deepEqual(second.containers[0].id, "a");
    // Another filter is another answer.
    await f.cache.answer({ id: "a" }, f.make);
    assert.deepEqual(f.made(), 2);
    // The kept answer goes out as the bytes made once, and they decode to it.
    const def = serviceDefinition("RuntimeService").ListContainers;
    const bytes = def.responseSerialize(second);
    const t = criRoot().lookupType("runtime.v1.ListContainersResponse");
    assert.deepEqual(
      (t.toObject(t.decode(bytes), { enums: String }) as { containers: { id: string }[] })
        .containers[0].id,
      "a",
    );
    assert.equal(def.responseSerialize(second), bytes);
  } finally {
    f.cleanup();
  }
});

Deno.test("a list is made anew once a record is written, an exit file appears or a process ends", async () => {
  const f = fixture();
  try {
    await settle();
    await f.cache.answer({}, f.make);
    // A record written.
    f.store.put("containers", { name: "b", schemaVersion: 1 });
    await settle();
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 2);
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 2);
    // conmon wrote an exit file.
    Deno.writeTextFileSync(`${f.exitDir}/a`, "0");
    await settle();
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 3);
    // The process ended with no exit file (its conmon was killed), or its pid was reused.
    f.alive.set(4242, 78);
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 4);
    f.alive.delete(4242);
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 5);
  } finally {
    f.cleanup();
  }
});

Deno.test("a records directory changed just now is not trusted, nor an in-memory store", async () => {
  const f = fixture();
  try {
    // Written within RACY_MS: mtime could miss a change made in the same clock tick.
    f.store.put("containers", { name: "c", schemaVersion: 1 });
    await f.cache.answer({}, f.make);
    await f.cache.answer({}, f.make);
    assert.deepEqual(f.made(), 2);
    const mem = new ListCache(
      { store: new MemoryStore() } as unknown as Host,
      "containers",
      "ListContainersResponse",
    );
    await mem.answer({}, f.make);
    await mem.answer({}, f.make);
    assert.deepEqual(f.made(), 4);
    assert.equal(mem.hits, 0);
  } finally {
    f.cleanup();
  }
});

Deno.test("with a pidfd watch, the watch alone says whether the processes live, and is closed when dropped", async () => {
  const root = Deno.makeTempDirSync({ prefix: "rkl-list-cache-" });
  try {
    const store = new FsStore(`${root}/records`, `${root}/lock`);
    store.put("containers", { name: "a", schemaVersion: 1 });
    Deno.mkdirSync(`${root}/exits`);
    let alive = true;
    let closed = 0;
    let made = 0;
    const cache = new ListCache(
      { store } as unknown as Host,
      "containers",
      "ListContainersResponse",
      () => undefined, // /proc says nothing: only the watch is asked
      (procs) => {
        assert.deepEqual(procs, [[4242, 77]]);
        return { allAlive: () => alive, close: () => closed++ };
      },
    );
    const make = () => {
      made++;
      return Promise.resolve({
        answer: { containers: [] },
        containers: [
          {
            status: "running",
            pid: 4242,
            pidStart: 77,
            dirs: { exitDir: `${root}/exits` },
          } as unknown as ContainerRecord,
        ],
      });
    };
    await settle();
    await cache.answer({}, make);
    await cache.answer({}, make);
    assert.equal(made, 1);
    alive = false;
    await cache.answer({}, make);
    assert.equal(made, 2);
    assert.equal(closed, 1);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
