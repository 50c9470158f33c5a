/**
 * Named volumes, docker's way: `run -v NAME:/dir` makes a missing one under
 * the store lock and the record names it; nothing removes a volume a
 * container names; a create undone takes back the volume it made, never one
 * that was there.
 */
import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import type { LoadedContainer } from "../spec/container_spec.ts";
import { FakeHost } from "../testing/fake_host.ts";
import { getContainer, removeContainer, runContainer } from "./container.ts";
import { gc } from "./gc.ts";
import {
  ensureVolume,
  inspectVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  volumeDataDir,
} from "./volumes.ts";

function withVolume(host: FakeHost, name: string, vol: string): LoadedContainer {
  const loaded = loadContainer(
    `name: ${name}\nimage: /fake/bundles/busybox\nargs: ["sleep", "100"]\n`,
    `/fake/${name}.yaml`,
  );
  loaded.spec.mounts.push({
    source: volumeDataDir(host, vol),
    destination: "/data",
    readOnly: false,
    kind: "hostPath",
    hostPathType: "",
    namedVolume: vol,
    path: ["-v", `${vol}:/data`],
  });
  return loaded;
}

Deno.test("run -v NAME: the volume is made, named by the record, kept from rm and prune while used", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  await runContainer(host, withVolume(host, "web", "data"), { network: null });
  assert.deepEqual(getContainer(host, "web").volumes, ["data"]);
  assert.deepEqual(getContainer(host, "web").madeVolumes, ["data"]);
  assert.ok(host.fs.stat(volumeDataDir(host, "data")).isDirectory);
  const [v] = listVolumes(host);
  assert.deepEqual([v.name, v.kind, v.users], ["data", "volume", ["container web"]]);
  assert.throws(() => removeVolume(host, "data"), /in use by container web/);
  assert.deepEqual(pruneVolumes(host), []);
  const i = inspectVolume(host, "data");
  assert.equal(i.Mountpoint, volumeDataDir(host, "data"));
  assert.equal(i.CreatedAt, new Date(host.clock).toISOString());
  // A second container shares it; removing the containers keeps the data (docker's rm).
  await runContainer(host, withVolume(host, "web2", "data"), { network: null });
  assert.equal(getContainer(host, "web2").madeVolumes, undefined);
  host.fs.writeTextFile(`${volumeDataDir(host, "data")}/kept`, "1");
  await removeContainer(host, "web", { force: true });
  await removeContainer(host, "web2", { force: true });
  assert.equal(host.fs.readTextFile(`${volumeDataDir(host, "data")}/kept`), "1");
  assert.deepEqual(pruneVolumes(host), ["data"]);
  assert.deepEqual(listVolumes(host), []);
});

Deno.test("a create undone removes the volume it made, and leaves one that was there", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  host.failAt("runtime.create", 1);
  await assert.rejects(runContainer(host, withVolume(host, "web", "fresh"), { network: null }));
  assert.equal(host.store.get("containers", "web"), undefined);
  assert.deepEqual(listVolumes(host), []);

  await host.store.withLock(() => Promise.resolve(ensureVolume(host, "old", { team: "a" })));
  host.fs.writeTextFile(`${volumeDataDir(host, "old")}/f`, "x");
  host.failAt("runtime.create", 1);
  await assert.rejects(runContainer(host, withVolume(host, "web", "old"), { network: null }));
  assert.equal(host.fs.readTextFile(`${volumeDataDir(host, "old")}/f`), "x");
  assert.deepEqual(inspectVolume(host, "old").Labels, { team: "a" });
});

Deno.test("volume create: names checked, an existing one kept, hostile metadata and a symlink refused or ignored", async () => {
  const host = new FakeHost();
  const make = (n: string) => host.store.withLock(() => Promise.resolve(ensureVolume(host, n)));
  assert.equal(await make("db"), true);
  assert.equal(await make("db"), false);
  await assert.rejects(make("x"), /two characters/);
  await assert.rejects(make("../etc"), /not a volume name/);
  await assert.rejects(make("pvc-a"), /PersistentVolumeClaims/);
  // Metadata read back from disk is checked: labels that are not strings, a bad time.
  host.fs.writeTextFile(
    `${host.paths.root}/volumes/db/volume.json`,
    `{"createdAt": "never", "labels": {"a": 1, "b": "ok"}}`,
  );
  const i = inspectVolume(host, "db");
  assert.deepEqual(i.Labels, { b: "ok" });
  assert.notEqual(i.CreatedAt, "never");
  // A symlink in place of a volume's dir is not taken for it.
  host.fs.symlink("/etc", `${host.paths.root}/volumes/evil`);
  await assert.rejects(make("evil"), /not a directory/);
});

Deno.test("docker's copy into an empty volume: the record names what to fill; a volume with files is left as it is", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  await host.store.withLock(() => Promise.resolve(ensureVolume(host, "full")));
  host.fs.writeTextFile(`${volumeDataDir(host, "full")}/mine`, "1");
  const loaded = withVolume(host, "web", "full");
  loaded.spec.mounts[0].populate = true;
  await runContainer(host, loaded, { network: null });
  assert.deepEqual(getContainer(host, "web").populate, [{ volume: "full", destination: "/data" }]);
  // Not empty: nothing copied, nothing run, no warning; its file as it was.
  assert.equal(host.cmd.calls.some((c) => c.cmd === "cp"), false);
  assert.deepEqual(host.warnings, []);
  assert.deepEqual(host.fs.readDir(volumeDataDir(host, "full")).map((e) => e.name), ["mine"]);
});

Deno.test("anonymous volumes (`-v /dir`): made with the container, gone with rm -v, kept by a plain rm", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  const anon = (name: string, vol: string) => {
    const loaded = withVolume(host, name, vol);
    loaded.spec.mounts[0].anonymous = true;
    return loaded;
  };
  const a = "a".repeat(64), b = "b".repeat(64);
  await runContainer(host, anon("one", a), { network: null });
  await runContainer(host, anon("two", b), { network: null });
  assert.deepEqual(getContainer(host, "one").anonymousVolumes, [a]);
  assert.deepEqual(inspectVolume(host, a).UsedBy, ["container one"]);
  await removeContainer(host, "one", { force: true, volumes: true });
  await removeContainer(host, "two", { force: true });
  // rm -v took one's; a plain rm left two's, unused now, for prune.
  assert.deepEqual(listVolumes(host).map((v) => [v.name, v.users]), [[b, []]]);
  assert.deepEqual(pruneVolumes(host), [b]);
});

Deno.test("gc: a volume's copy cut short (its copier gone) is removed; a running one's and the data are not", async () => {
  const host = new FakeHost();
  await host.store.withLock(() => Promise.resolve(ensureVolume(host, "www")));
  const dir = `${host.paths.root}/volumes/www`;
  const gone = `${dir}/.populate-999999-0123456789abcdef`;
  const copier = host.procs.spawn("rkl").pid; // another rkl, copying now
  const live = `${dir}/.populate-${copier}-fedcba9876543210`;
  for (const d of [gone, live]) host.fs.mkdir(d);
  host.fs.writeTextFile(`${gone}/half`, "x");
  const dry = await gc(host, { dryRun: true });
  assert.ok(dry.findings.some((f) => f.name === gone), JSON.stringify(dry.findings));
  assert.ok(host.fs.lstat(gone).isDirectory, "a dry run removes nothing");
  await gc(host);
  assert.deepEqual(host.fs.readDir(dir).map((e) => e.name).sort(), [
    `.populate-${copier}-fedcba9876543210`,
    "_data",
    "volume.json",
  ]);
});

Deno.test("a create whose second volume cannot be made leaves neither volume nor record", async () => {
  const host = new FakeHost();
  host.addBundle("/fake/bundles/busybox");
  host.fs.mkdir(`${host.paths.root}/volumes`, { recursive: true });
  host.fs.writeTextFile(`${host.paths.root}/volumes/taken`, "a file, not a volume");
  const loaded = withVolume(host, "web", "first");
  loaded.spec.mounts.push({ ...loaded.spec.mounts[0], destination: "/t", namedVolume: "taken" });
  await assert.rejects(runContainer(host, loaded, { network: null }), /taken.*not a directory/);
  assert.equal(host.store.get("containers", "web"), undefined);
  assert.deepEqual(listVolumes(host), []);
});
