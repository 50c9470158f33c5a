import assert from "node:assert/strict";
import { SysError } from "../errors.ts";
import type { FakeHost } from "./fake_host.ts";
import { type Scenario, sweep } from "./sweep.ts";

/** A toy create: a dir, a file in it, a mount on it, a record; undone in reverse on failure. */
function toy(o: { rollback: boolean; greedyTeardown?: boolean }): Scenario {
  return {
    setup: (host: FakeHost) => {
      host.fs.mkdir("/fake/other");
      host.store.put("containers", { schemaVersion: 1, name: "other" });
    },
    create: (host: FakeHost) => {
      const undo: (() => void)[] = [];
      try {
        host.fs.mkdir("/fake/toy");
        undo.push(() => host.fs.remove("/fake/toy", { recursive: true }));
        host.fs.writeTextFile("/fake/toy/config.json", "{}");
        host.sys.mount({ source: "tmpfs", target: "/fake/toy", fstype: "tmpfs", flags: 0 });
        undo.push(() => host.sys.umount2("/fake/toy", 0));
        host.store.put("containers", { schemaVersion: 1, name: "toy" });
      } catch (e) {
        if (o.rollback) { for (const u of undo.reverse()) u(); }
        return Promise.reject(e);
      }
      return Promise.resolve();
    },
    teardown: (host: FakeHost) => {
      try {
        host.sys.umount2("/fake/toy", 0);
      } catch (e) {
        if (!(e instanceof SysError && e.errno === 22)) throw e;
      }
      try {
        host.fs.remove("/fake/toy", { recursive: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      if (o.greedyTeardown) host.fs.remove("/fake/other");
      host.store.delete("containers", "toy");
      return Promise.resolve();
    },
  };
}

Deno.test("sweep() passes a create that undoes itself at every step, and counts its steps", async () => {
  const r = await sweep(toy({ rollback: true }), { teardownSweep: true });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.steps.map((p) => p.op), [
    "fs.mkdir",
    "fs.writeTextFile",
    "sys.mount",
    "store.put",
    "fs.mkdir", // the store's records/containers (there already: -p)
    "fs.writeFile", // its temp file
    "fs.rename",
  ]);
  assert.ok(r.made.includes("+ mounts /fake/toy <- tmpfs (tmpfs)"));
});

Deno.test("sweep() reports what a create without rollback leaves, step by step", async () => {
  const r = await sweep(toy({ rollback: false }));
  assert.ok(
    r.problems.includes(
      "fs.writeTextFile#1 (/fake/toy/config.json): left + files /fake/toy: dir 0755 0:0",
    ),
  );
  assert.ok(
    r.problems.some((p) => p.startsWith("store.put#1 (containers/toy): left + mounts /fake/toy")),
  );
});

Deno.test("sweep() reports a teardown that takes an unrelated object along", async () => {
  const r = await sweep(toy({ rollback: true, greedyTeardown: true }));
  assert.ok(
    r.problems.includes("after teardown: - files /fake/other: dir 0755 0:0"),
    r.problems.join("\n"),
  );
});

Deno.test("sweep() with downAfterFailedCreate: whole parts may stay until the teardown, a half-made record may not", async () => {
  const two = (halfMade: boolean): Scenario => ({
    setup: (host: FakeHost) => host.store.put("containers", { schemaVersion: 1, name: "other" }),
    create: (host: FakeHost) => {
      // Each part whole or not at all (unless halfMade); a part made stays when a later one fails.
      for (const n of ["a", "b"]) {
        host.store.put("containers", { schemaVersion: 1, name: n, status: "creating" } as never);
        try {
          host.fs.mkdir(`/fake/${n}`);
          host.store.put("containers", { schemaVersion: 1, name: n, status: "running" } as never);
        } catch (e) {
          if (!halfMade) {
            if (host.fs.exists(`/fake/${n}`)) host.fs.remove(`/fake/${n}`);
            host.store.delete("containers", n);
          }
          return Promise.reject(e);
        }
      }
      return Promise.resolve();
    },
    teardown: (host: FakeHost) => {
      for (const n of ["a", "b"]) {
        if (host.fs.exists(`/fake/${n}`)) host.fs.remove(`/fake/${n}`);
        host.store.delete("containers", n);
      }
      return Promise.resolve();
    },
  });
  const good = await sweep(two(false), { downAfterFailedCreate: true });
  assert.deepEqual(good.problems, []);
  const bad = await sweep(two(true), { downAfterFailedCreate: true });
  assert.ok(
    bad.problems.some((p) => p.includes("left half-made + records containers/a creating")),
    bad.problems.join("\n"),
  );
  // Without the option, what a failed create leaves is a problem.
  const strict = await sweep(two(false));
  assert.ok(
    strict.problems.some((p) => p.includes(": left + files /fake/a")),
    strict.problems.join("\n"),
  );
});
