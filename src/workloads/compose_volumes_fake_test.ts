/**
 * compose's volumes by their own names, as docker compose has them: `name:`
 * (made by up, removed by `down -v`, not prefixed with the project) and
 * `external: true` (made beforehand with `rkl volume create`, never made by
 * up nor removed by down; a missing one stops up before anything is made).
 */
import assert from "node:assert/strict";
import { loadCompose } from "../spec/compose.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { composeDown, composeUp } from "./compose.ts";
import { getContainer } from "./container.ts";
import { ensureVolume, listVolumes, volumeDataDir } from "./volumes.ts";

const BUNDLE = "/fake/bundles/busybox";

function project(volumes: string) {
  const text = `services:
  db:
    image: ${BUNDLE}
    command: ["sleep", "1000"]
    network_mode: none
    volumes: [data:/data, shared:/shared]
volumes:
${volumes}`;
  return loadCompose([{ file: "/fake/app/compose.yaml", text }], {
    env: {},
    dir: "/fake/app",
    projectName: "app",
  }).project;
}

const FILE = `  data:\n    name: app-db-data\n  shared:\n    external: true\n`;

Deno.test("compose: an external volume must exist; up never makes it, down -v never removes it", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const before = host.snapshot();
  await assert.rejects(
    composeUp(host, project(FILE), { warn: () => {} }),
    /compose\.yaml:11:5: volumes\.shared: external volume "shared" not found/,
  );
  // Nothing made: no record, no volume, no network, no file.
  assert.equal(host.store.get("compose", "app"), undefined);
  assert.deepEqual(listVolumes(host), []);
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);

  await host.store.withLock(() => Promise.resolve(ensureVolume(host, "shared")));
  host.fs.writeTextFile(`${volumeDataDir(host, "shared")}/keep`, "1");
  await composeUp(host, project(FILE), { warn: () => {} });
  const c = getContainer(host, "app-db-1");
  // Both mounted by their own names; the container's record names them.
  assert.deepEqual(c.volumes?.sort(), ["app-db-data", "shared"]);
  assert.ok(host.fs.stat(volumeDataDir(host, "app-db-data")).isDirectory);
  assert.throws(() => host.fs.lstat(`${host.paths.root}/volumes/app_data`), /not ?found|ENOENT/i);
  const used = Object.fromEntries(listVolumes(host).map((v) => [v.name, v.users]));
  assert.deepEqual(used["app-db-data"].sort(), ["compose project app", "container app-db-1"]);

  await composeDown(host, project(FILE), "app", { volumes: true, timeoutSec: 1 });
  // down -v took the project's own volume, and left the external one with its data.
  assert.deepEqual(listVolumes(host).map((v) => v.name), ["shared"]);
  assert.equal(host.fs.readTextFile(`${volumeDataDir(host, "shared")}/keep`), "1");
});

Deno.test("compose: a volume name docker would refuse is an error at its field", () => {
  assert.throws(
    () => project(`  data:\n    name: "../x"\n  shared: {}\n`),
    /volumes\.data\.name.*not a volume name/,
  );
});
