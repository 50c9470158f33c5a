/**
 * `rkl rename OLD NEW`, typed as a docker user types it: the id stays and
 * the name moves, on a running container and on a stopped one; logs, exec,
 * inspect, stop, start and rm follow the new name; the old name is free for
 * a new container at once; a taken or invalid name is refused with one line
 * and exit 2; two renames to one name at once: one wins. `busybox` comes
 * from a local docker-registry behind a docker.io mirror entry (never the
 * internet). Each test ends with the host census as it began.
 */
import assert from "node:assert/strict";
import {
  assertRejected,
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  rklOk,
  waitFor,
} from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import type { Registry } from "../_helpers/oci.ts";
import { busyboxMirror } from "../_helpers/busybox_mirror.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const env = ready ? await makeEnv("dren", 46) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;

async function setUp(): Promise<void> {
  if (registry) return;
  // Pulled before the first census: the image stays for the file's tests.
  registry = await busyboxMirror(env!);
}

// Pulled before the first census (taken as the first test starts).
if (ready) await setUp();

const net = () => ["--network", env!.network];
const names = async (all = true) =>
  (await rklOk(env!, ["ps", ...(all ? ["-a"] : []), "--format", "{{.Names}} {{.ID}}"]))
    .trim().split("\n").filter((l) => l !== "").sort();

test("rename a running container, then a stopped one: logs, exec, inspect, stop, start, rm follow the new name; the old name is free at once", async () => {
  await setUp();
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "web",
    ...net(),
    "busybox",
    "sh",
    "-c",
    "echo hello-from-web; exec sleep 1000",
  ]);
  assert.equal(await rklOk(env!, ["rename", "web", "front"]), "", "docker prints nothing");
  assert.deepEqual(await names(false), ["front web"], "the id stays, the name moves");
  assert.match(await rklOk(env!, ["logs", "front"]), /hello-from-web/);
  assert.equal(await rklOk(env!, ["exec", "front", "echo", "exec-ok"]), "exec-ok\n");
  const insp = JSON.parse(await rklOk(env!, ["inspect", "front"]));
  assert.equal(insp[0].name, "front");
  assert.equal(insp[0].status, "running");
  const gone = await rkl(env!, ["logs", "web"]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /Cannot find container "web"/);

  // The old name, free again, for a new container (a random id: its own parts).
  await rklOk(env!, ["run", "-d", "--name", "web", ...net(), "busybox", "sleep", "1000"]);
  const rows = await names(false);
  assert.equal(rows.length, 2);
  assert.equal(rows[0], "front web");
  assert.match(rows[1], /^web [0-9a-f]{64}$/, rows.join(" | "));
  assert.equal(
    await rklOk(env!, ["gc", "--dry-run"]),
    "nothing to clean\n",
    "gc takes neither container's parts for garbage",
  );

  // A taken name, invalid names, its own name: exit 2, one line, nothing changed.
  assertRejected("taken", await rkl(env!, ["rename", "front", "web"]), /name "web" is in use/);
  for (const bad of ["../../etc", "Front", "a_b", "x".repeat(64), "x-"]) {
    const r = await rkl(env!, ["rename", "front", bad]);
    assertRejected(`rename to ${bad}`, r, /Cannot rename container "front"|DNS label/);
  }
  assertRejected("same", await rkl(env!, ["rename", "front", "front"]), /is its name/);
  assert.equal((await names(false)).length, 2);

  // Stopped, renamed again, started under the new name: the same container.
  await rklOk(env!, ["stop", "-t", "1", "front"]);
  await rklOk(env!, ["rename", "front", "back"]);
  await rklOk(env!, ["start", "back"]);
  assert.match(await rklOk(env!, ["logs", "back"]), /hello-from-web\n(.*\n)?hello-from-web/);
  assert.equal(await rklOk(env!, ["exec", "back", "echo", "again"]), "again\n");
  await rklOk(env!, ["stop", "-t", "1", "back"]);
  await rklOk(env!, ["rm", "back"]);
  await rklOk(env!, ["rm", "-f", "web"]);
  assert.deepEqual(await names(), []);
});

test("two renames to one name at once: one wins, the other is refused with exit 2", async () => {
  await setUp();
  await rklOk(env!, ["create", "--name", "a", ...net(), "busybox", "sleep", "1000"]);
  await rklOk(env!, ["create", "--name", "b", ...net(), "busybox", "sleep", "1000"]);
  const [ra, rb] = await Promise.all([
    rkl(env!, ["rename", "a", "c"]),
    rkl(env!, ["rename", "b", "c"]),
  ]);
  assert.deepEqual([ra.code, rb.code].sort(), [0, 2], `${ra.stderr} ${rb.stderr}`);
  const rows = await names();
  assert.equal(rows.length, 2, rows.join(" | "));
  assert.ok(rows.includes("c a") || rows.includes("c b"), rows.join(" | "));
  await rklOk(env!, ["rm", "-f", ...rows.map((r) => r.split(" ")[0])]);
  assert.deepEqual(await names(), []);
});

test("run --rm -d, then rename: the container is still removed when it exits", async () => {
  await setUp();
  await rklOk(env!, ["run", "-d", "--rm", "--name", "brief", ...net(), "busybox", "sleep", "2"]);
  await rklOk(env!, ["rename", "brief", "renamed"]);
  await waitFor(
    "the renamed --rm container removed",
    async () => (await names()).length === 0,
    20_000,
  );
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
