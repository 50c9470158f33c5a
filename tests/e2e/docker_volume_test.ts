/**
 * Named volumes as docker users type them: `rkl volume create`, `run -v
 * NAME:/dir` (a missing volume made on the way, as docker makes it), data
 * kept across containers, `:ro`, `volume ls`/`inspect`/`rm`/`prune`, no
 * removal while a container mounts it; and compose's volumes by their own
 * name (`name:`, `external: true`), which `down -v` leaves when external.
 * `busybox` comes from a local docker-registry behind a docker.io mirror
 * entry. Each test ends with the host census as it began.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirTar, pushImage, type Registry } from "../_helpers/oci.ts";
import { busyboxMirror } from "../_helpers/busybox_mirror.ts";

const ready = requires("root", "conmon", "bundles", "youki", "registry");
const env = ready ? await makeEnv("dvol", 53) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
if (ready) registry = await busyboxMirror(env!);

const run = (args: string[]) => rklOk(env!, ["run", "--network", "none", ...args]);

test("run -v NAME:/dir: made when missing, kept across containers, read-only with :ro, kept from rm and prune while mounted", async () => {
  assert.equal(
    (await rklOk(env!, ["volume", "create", "--label", "team=db", "data"])).trim(),
    "data",
  );
  // An existing one is kept, as docker keeps it.
  assert.equal((await rklOk(env!, ["volume", "create", "data"])).trim(), "data");
  await run(["--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo hello > /data/f"]);
  assert.equal((await run(["--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"])).trim(), "hello");
  // docker's --mount spelling of the same volume, and of a bind whose source must exist.
  assert.equal(
    (await run([
      "--rm",
      "--mount",
      "type=volume,src=data,dst=/m,readonly",
      "busybox",
      "cat",
      "/m/f",
    ]))
      .trim(),
    "hello",
  );
  const missing = await rkl(env!, [
    "run",
    "--rm",
    "--network",
    "none",
    "--mount",
    `type=bind,src=${env!.dir}/nosuch,dst=/x`,
    "busybox",
    "true",
  ]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(
    missing.stderr,
    /--mount.*nosuch" does not exist \(docker's --mount makes no missing source/,
  );
  const ro = await rkl(env!, [
    "run",
    "--rm",
    "--network",
    "none",
    "-v",
    "data:/d:ro",
    "busybox",
    "touch",
    "/d/x",
  ]);
  assert.notEqual(ro.code, 0, "a :ro volume took a write");

  // `auto` does not exist: the run makes it.
  await run(["-d", "--name", "holder", "-v", "auto:/x", "busybox", "sleep", "1000"]);
  const ls = await rklOk(env!, ["volume", "ls", "-o", "json"]);
  const byName = Object.fromEntries(
    (JSON.parse(ls) as { name: string; users: string[]; kind: string }[]).map((v) => [v.name, v]),
  );
  assert.deepEqual(byName.auto.users, ["container holder"]);
  assert.equal(byName.data.kind, "volume");
  const rm = await rkl(env!, ["volume", "rm", "auto"]);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /in use by container holder/);

  const [info] = JSON.parse(await rklOk(env!, ["volume", "inspect", "data"]));
  assert.equal(info.Name, "data");
  assert.equal(info.Driver, "local");
  assert.deepEqual(info.Labels, { team: "db" });
  assert.equal(await Deno.readTextFile(`${info.Mountpoint}/f`), "hello\n");

  // prune takes only what nothing mounts.
  const pruned = await rklOk(env!, ["volume", "prune", "-f"]);
  assert.match(pruned, /^Deleted Volumes:\ndata\n$/);
  assert.deepEqual((await rklOk(env!, ["volume", "ls", "-q"])).trim().split("\n"), ["auto"]);
  await rklOk(env!, ["rm", "-f", "holder"]);
  await rklOk(env!, ["volume", "rm", "auto"]);
  assert.equal((await rklOk(env!, ["volume", "ls", "-q"])).trim(), "");
  // A name docker refuses: one line naming the flag.
  const bad = await rkl(env!, ["run", "--rm", "-v", "a/b:/x", "busybox", "true"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /-v "a\/b:\/x": "a\/b" is not a volume name/);
});

test("an empty volume gets the image's files at its mount point (owners, modes, links as links), a volume with files or nocopy does not", async () => {
  // site:1 = busybox + /site (a page of uid 33 mode 0640, a link to the host's /etc/shadow as a
  // link, a dir of mode 0750), and /via a link to /site, which is not followed.
  const dir = await Deno.makeTempDir({ dir: env!.dir });
  try {
    await Deno.mkdir(`${dir}/site/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/site/index.html`, "<h1>site</h1>\n");
    await Deno.chown(`${dir}/site/index.html`, 33, 33);
    await Deno.chmod(`${dir}/site/index.html`, 0o640);
    await Deno.chmod(`${dir}/site`, 0o750);
    await Deno.chown(`${dir}/site`, 33, 33);
    await Deno.symlink("/etc/shadow", `${dir}/site/escape`);
    await Deno.symlink("/site", `${dir}/via`);
    await pushImage(registry!.url, "library/site", "1", {
      layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`), await dirTar(dir)],
      config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await rklOk(env!, ["pull", "-q", "site:1"]);
  await run(["--rm", "-v", "www:/site", "site:1", "true"]);
  const [www] = JSON.parse(await rklOk(env!, ["volume", "inspect", "www"]));
  const mp = www.Mountpoint as string;
  assert.equal(await Deno.readTextFile(`${mp}/index.html`), "<h1>site</h1>\n");
  const page = await Deno.lstat(`${mp}/index.html`);
  assert.deepEqual([page.uid, page.mode! & 0o7777], [33, 0o640]);
  // The mount point's own owner and mode go onto the volume's root, as docker copies them.
  const top = await Deno.lstat(mp);
  assert.deepEqual([top.uid, top.mode! & 0o7777], [33, 0o750]);
  assert.equal(await Deno.readLink(`${mp}/escape`), "/etc/shadow");
  assert.ok((await Deno.lstat(`${mp}/escape`)).isSymlink);
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(`${www.Mountpoint}/..`))).map((e) => e.name).sort(),
    ["_data", "volume.json"],
    "the copy's private dir is gone",
  );
  // Seen from a container: the page, as the image has it.
  assert.equal(
    (await run(["--rm", "-v", "www:/srv", "busybox", "cat", "/srv/index.html"])).trim(),
    "<h1>site</h1>",
  );
  // A volume with files keeps them; nocopy and a mount point through a link copy nothing.
  await Deno.remove(`${mp}/index.html`);
  await run(["--rm", "-v", "www:/site", "site:1", "true"]);
  await assert.rejects(Deno.lstat(`${mp}/index.html`));
  await run(["--rm", "--mount", "src=bare,dst=/site,volume-nocopy", "site:1", "true"]);
  await run(["--rm", "-v", "linked:/via", "site:1", "true"]);
  for (const v of ["bare", "linked"]) {
    const [i] = JSON.parse(await rklOk(env!, ["volume", "inspect", v]));
    assert.deepEqual(await Array.fromAsync(Deno.readDir(i.Mountpoint)), [], v);
  }
  for (const v of ["www", "bare", "linked"]) await rklOk(env!, ["volume", "rm", v]);
  await rklOk(env!, ["rmi", "site:1"]);
});

test("anonymous volumes (-v /dir): run --rm and rm -v remove them, a plain rm leaves one for prune", async () => {
  await run(["--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f"]);
  assert.equal((await rklOk(env!, ["volume", "ls", "-q"])).trim(), "", "run --rm took its volume");
  await run(["-d", "--name", "an1", "-v", "/scratch", "busybox", "sleep", "1000"]);
  await run([
    "-d",
    "--name",
    "an2",
    "--mount",
    "type=volume,dst=/scratch",
    "busybox",
    "sleep",
    "1000",
  ]);
  const vols = JSON.parse(await rklOk(env!, ["volume", "ls", "-o", "json"])) as {
    name: string;
    users: string[];
  }[];
  assert.equal(vols.length, 2);
  assert.ok(vols.every((v) => /^[0-9a-f]{64}$/.test(v.name)), JSON.stringify(vols));
  assert.deepEqual(vols.map((v) => v.users[0]).sort(), ["container an1", "container an2"]);
  await rklOk(env!, ["rm", "-f", "-v", "an1"]);
  await rklOk(env!, ["rm", "-f", "an2"]);
  const left = (await rklOk(env!, ["volume", "ls", "-q"])).trim().split("\n");
  assert.deepEqual(left, [vols.find((v) => v.users[0] === "container an2")!.name]);
  assert.match(await rklOk(env!, ["volume", "prune", "-f"]), /Deleted Volumes:/);
  assert.equal((await rklOk(env!, ["volume", "ls", "-q"])).trim(), "");
});

test("compose: an external volume must exist and outlives down -v; a name: volume is made by its own name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rkl-dvol-compose-" });
  try {
    const file = `${dir}/compose.yaml`;
    await Deno.writeTextFile(
      file,
      `services:
  app:
    image: busybox
    network_mode: none
    command: ["sh", "-c", "cat /shared/seed > /own/copy; sleep 1000"]
    volumes: [shared:/shared, own:/own]
    stop_grace_period: 1s
volumes:
  shared:
    external: true
  own:
    name: dvol-own
`,
    );
    const compose = (args: string[]) => rkl(env!, ["compose", "-f", file, "-p", "dvol", ...args]);
    const missing = await compose(["up", "-d"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /volumes\.shared: external volume "shared" not found/);
    assert.match(missing.stderr, /rkl volume create shared/);
    assert.equal((await rklOk(env!, ["volume", "ls", "-q"])).trim(), "");

    await rklOk(env!, ["volume", "create", "shared"]);
    const [shared] = JSON.parse(await rklOk(env!, ["volume", "inspect", "shared"]));
    await Deno.writeTextFile(`${shared.Mountpoint}/seed`, "seeded\n");
    const up = await compose(["up", "-d"]);
    assert.equal(up.code, 0, up.stderr);
    const [own] = JSON.parse(await rklOk(env!, ["volume", "inspect", "dvol-own"]));
    for (let i = 0; i < 100; i++) {
      try {
        if (await Deno.readTextFile(`${own.Mountpoint}/copy`) === "seeded\n") break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await Deno.readTextFile(`${own.Mountpoint}/copy`), "seeded\n");
    const down = await compose(["down", "-v"]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual((await rklOk(env!, ["volume", "ls", "-q"])).trim().split("\n"), ["shared"]);
    await rklOk(env!, ["volume", "rm", "shared"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
