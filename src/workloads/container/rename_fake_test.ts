/**
 * `rkl rename` on the FakeHost: the id stays, the name moves; what the
 * host holds is the id's and stays where it is; the old name is free again
 * (a new container of that name gets a random id); refusals change nothing.
 */
import assert from "node:assert/strict";
import { ConflictError, NotFoundError, UsageError } from "../../errors.ts";
import { loadContainer } from "../../spec/container.ts";
import { diffSnapshots, FakeHost } from "../../testing/fake_host.ts";
import { gc } from "../gc.ts";
import { recordValidators } from "../records.ts";
import {
  type ContainerRecord,
  createContainer,
  getContainer,
  removeContainer,
  runContainer,
  stopContainer,
} from "../container.ts";
import { renameContainer } from "./rename.ts";

const BUNDLE = "/fake/bundles/busybox";
const load = (name: string, extra = "") =>
  loadContainer(
    `name: ${name}\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n${extra}`,
    `/fake/${name}.yaml`,
  );

function host(): FakeHost {
  const h = new FakeHost();
  h.addBundle(BUNDLE);
  return h;
}

Deno.test("renameContainer(): a running container keeps its id, dirs, cgroup and process; stop and rm -f follow the new name and leave the host as it was", async () => {
  const h = host();
  await runContainer(h, load("other"), { network: null });
  const before = h.snapshot();
  const made = await runContainer(h, load("web"), { network: null });
  const withWeb = h.snapshot();
  const renamed = await renameContainer(h, "web", "front");
  assert.equal(renamed.name, "front");
  assert.equal(renamed.id, "web");
  assert.equal(h.store.get("containers", "web"), undefined);
  const rec = getContainer(h, "front");
  assert.equal(rec.id, made.id);
  assert.deepEqual(rec.dirs, made.dirs);
  assert.equal(rec.cgroupPath, made.cgroupPath);
  assert.equal(rec.pid, made.pid);
  assert.equal(rec.renamedFrom, "web");
  // Only the record moved: nothing on the host changed (no temp file left either).
  assert.deepEqual(
    diffSnapshots(withWeb, h.snapshot()).filter((l) => !l.includes("/records/")),
    ["+ records containers/front running", "- records containers/web running"],
  );
  assert.deepEqual(
    diffSnapshots(withWeb, h.snapshot()).filter((l) => l.startsWith("+ files")).map((l) =>
      l.replace(/:.*/, "")
    ),
    [`+ files ${h.paths.root}/records/containers/front.json`],
  );
  const stopped = await stopContainer(h, "front", 1);
  assert.equal(stopped.status, "exited");
  await removeContainer(h, "front", { force: true });
  assert.deepEqual(diffSnapshots(before, h.snapshot()), []);
});

Deno.test("renameContainer(): the old name is free again; a new container of that name gets a random id, and each rm takes only its own", async () => {
  const h = host();
  await runContainer(h, load("other"), { network: null });
  const before = h.snapshot();
  await runContainer(h, load("web"), { network: null });
  await renameContainer(h, "web", "old-web");
  const again = await runContainer(h, load("web"), { network: null });
  assert.match(again.id, /^[0-9a-f]{64}$/);
  assert.equal(again.dirs.dir, `${h.paths.root}/containers/${again.id}`);
  assert.ok(again.cgroupPath.endsWith(`/${again.id}`));
  assert.equal(getContainer(h, "old-web").status, "running");
  // gc finds nothing to clean: each container's parts are its id's.
  const found = await gc(h, { dryRun: true });
  assert.deepEqual(found.findings.filter((f) => f.kind !== "file"), []);
  await removeContainer(h, "old-web", { force: true });
  assert.equal(getContainer(h, "web").status, "running");
  await removeContainer(h, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, h.snapshot()), []);
});

Deno.test("renameContainer() refuses, changing nothing: a taken name, an invalid one, its own, a missing container, a pod member, a compose container", async () => {
  const h = host();
  await createContainer(h, load("a"), { network: null });
  await createContainer(h, load("b"), { network: null });
  await createContainer(h, load("web", "labels:\n  com.docker.compose.project: shop\n"), {
    network: null,
  });
  const before = h.snapshot();
  const refused = async (old: string, next: string, type: unknown, re: RegExp) => {
    await assert.rejects(renameContainer(h, old, next), (e: Error) => {
      assert.ok(e instanceof (type as typeof Error), `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  };
  await refused("a", "b", UsageError, /name "b" is in use/);
  await refused("a", "../../etc", UsageError, /DNS labels/);
  await refused("a", "Web", UsageError, /DNS labels/);
  await refused("a", "a_b", UsageError, /DNS labels/);
  await refused("a", "x".repeat(64), UsageError, /DNS labels/);
  await refused("a", "a", UsageError, /is its name/);
  await refused("nope", "c", NotFoundError, /Cannot find container "nope"/);
  await refused("../x", "c", Error, /record name/);
  await refused("web", "c", ConflictError, /compose project "shop".*PROJECT-SERVICE-N/);
  const member = { ...getContainer(h, "b"), name: "pod1_b", pod: "pod1" };
  h.store.put("containers", member);
  await refused("pod1_b", "c", ConflictError, /member of pod "pod1"/);
  h.store.delete("containers", "pod1_b");
  assert.equal(new UsageError("x").exitCode, 2);
  assert.deepEqual(diffSnapshots(before, h.snapshot()), []);
  for (const n of ["a", "b", "web"]) await removeContainer(h, n, { force: true });
});

Deno.test("renameContainer(): two renames to one name at once: exactly one wins, the other is refused", async () => {
  const h = host();
  await createContainer(h, load("a"), { network: null });
  await createContainer(h, load("b"), { network: null });
  const results = await Promise.allSettled([
    renameContainer(h, "a", "c"),
    renameContainer(h, "b", "c"),
  ]);
  assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  const names = h.store.list<ContainerRecord>("containers").map((r) => `${r.name}:${r.id}`);
  assert.equal(names.length, 2);
  assert.ok(names.includes("c:a") || names.includes("c:b"), names.join(" "));
});

Deno.test("gc finishes a rename cut short (both records left, the new one says renamedFrom) and keeps the container", async () => {
  const h = host();
  const rec = await runContainer(h, load("web"), { network: null });
  h.store.put("containers", { ...rec, name: "front", renamedFrom: "web" });
  const r = await gc(h);
  assert.ok(
    r.done.some((d) => /container web: record of its old name removed/.test(d)),
    r.done.join("\n"),
  );
  assert.equal(h.store.get("containers", "web"), undefined);
  assert.equal(getContainer(h, "front").status, "running");
  await removeContainer(h, "front", { force: true });
});

Deno.test("records: a container's paths must be its id's; an id that is no name rkl makes, or a pod member's that differs, is damaged", async () => {
  const h = host();
  const rec = await createContainer(h, load("web"), { network: null });
  const check = recordValidators(h).containers!;
  const renamed = JSON.parse(JSON.stringify({ ...rec, name: "front" }));
  assert.equal(check(renamed, "front"), undefined);
  assert.match(check({ ...renamed, id: "../etc" }, "front")!, /id "\.\.\/etc"/);
  assert.match(check({ ...renamed, id: "other" }, "front")!, /dirs\.\w+ is not/);
  assert.match(check({ ...renamed, pod: "p" }, "front")!, /id "web" is not one rkl makes/);
  assert.match(check(renamed, "web")!, /name "front" is not the file's/);
  await removeContainer(h, "web", { force: true });
});

Deno.test("gc keeps one record of two that each say the other was renamed into it", async () => {
  const h = host();
  const rec = await runContainer(h, load("web"), { network: null });
  h.store.put("containers", { ...rec, renamedFrom: "front" });
  h.store.put("containers", { ...rec, name: "front", renamedFrom: "web" });
  await gc(h);
  assert.equal(h.store.list<ContainerRecord>("containers").length, 1);
  const left = h.store.list<ContainerRecord>("containers")[0];
  assert.equal(getContainer(h, left.name).status, "running");
  await removeContainer(h, left.name, { force: true });
});
