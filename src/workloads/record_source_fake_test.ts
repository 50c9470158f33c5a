/**
 * A front end's record source on the FakeHost: stored and returned as given,
 * and a log the front end placed (the CRI's) left to it by teardown.
 */
import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import { FakeHost } from "../testing/fake_host.ts";
import { type ContainerRecord, createContainer, removeContainer } from "./container.ts";

const BUNDLE = "/fake/bundles/busybox";
const load = (name: string) =>
  loadContainer(`name: ${name}\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n`, `/fake/${name}.yaml`);

Deno.test("createContainer() keeps the source as given; rm -f removes rkl's own log, not one the front end placed", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const source = { kind: "cri" as const, name: "app", meta: { anything: { nested: [1] } } };
  host.fs.mkdir("/fake/var/log/pods/ns_web_u/app", { recursive: true });
  const placed = "/fake/var/log/pods/ns_web_u/app/0.log";
  const a = await createContainer(host, load("placed"), { network: null, source, logPath: placed });
  const b = await createContainer(host, load("own"), { network: null });
  assert.deepEqual(host.store.get<ContainerRecord>("containers", "placed")!.source, source);
  assert.equal(b.source, undefined);
  assert.equal(a.dirs.log, placed);
  for (const log of [a.dirs.log, b.dirs.log]) {
    if (!host.fs.exists(log)) host.fs.writeTextFile(log, "line\n");
  }
  await removeContainer(host, "placed", { force: true });
  await removeContainer(host, "own", { force: true });
  assert.ok(host.fs.exists(placed), "the front end's log is its own");
  assert.ok(!host.fs.exists(b.dirs.log), "rkl's own log goes with the container");
});
