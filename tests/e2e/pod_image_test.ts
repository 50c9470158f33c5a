/**
 * Pods and images from a registry (Debian's docker-registry on 127.0.0.1,
 * put in front of docker.io by a mirror entry, as in image_test.ts):
 * `pod validate` checks a pod whose image is not pulled against the image's
 * config read from the registry (nothing stored), or says plainly that it
 * could not; image volumes (`volumes[].image`) are pulled and mounted
 * read-only and noexec, subPath included, and leave nothing behind.
 */
import assert from "node:assert/strict";
import {
  assertRejected,
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  type RklEnv,
  rklOk,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { type Member, pushImage, type Registry, startRegistry, tarBytes } from "../_helpers/oci.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const env = ready ? await makeEnv("podimg", 28) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;

const SCRIPT = "#!/bin/sh\necho ran\n";
const TOOLS_BOTTOM: Member[] = [
  { name: "bin/", type: "dir" },
  { name: "bin/hello", data: SCRIPT, mode: 0o755 },
  { name: "data/", type: "dir" },
  { name: "data/file", data: "from the bottom layer\n" },
  { name: "data/gone", data: "whited out above\n" },
];
const TOOLS_TOP: Member[] = [
  { name: "data/", type: "dir" },
  { name: "data/extra", data: "from the top layer\n" },
  { name: "data/.wh.gone" },
];

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  const url = registry.url;
  // An app image: its Entrypoint/Cmd are the only command the pod has.
  await pushImage(url, "library/app", "1", {
    layers: [tarBytes([{ name: "etc/", type: "dir" }, { name: "etc/motd", data: "app\n" }])],
    config: {
      Entrypoint: ["/bin/sh", "-c"],
      Cmd: ["sleep 300"],
      User: "1000",
      WorkingDir: "/srv",
    },
  });
  await pushImage(url, "library/rootapp", "1", {
    layers: [tarBytes([{ name: "etc/", type: "dir" }])],
    config: { Cmd: ["sh"] },
  });
  await pushImage(url, "library/tools", "1", {
    layers: [tarBytes(TOOLS_BOTTOM), tarBytes(TOOLS_TOP)],
  });
  await pushImage(url, "library/one", "1", {
    layers: [tarBytes([{ name: "only", data: "a single layer\n" }])],
  });
  Deno.writeTextFileSync(
    `${env!.dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${url}"]\n    fallback: false\n`,
  );
  env!.env.RKL_REGISTRIES_CONFIG = `${env!.dir}/registries.yaml`;
  env!.env.RKL_PULL_TIMEOUT = "3";
}

async function write(name: string, text: string): Promise<string> {
  const path = `${env!.dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

function storeEntries(sub: string): string[] {
  try {
    return [...Deno.readDirSync(`${env!.root}/images/${sub}`)].map((e) => e.name);
  } catch {
    return [];
  }
}

function podOf(name: string, container: string, extra = ""): string {
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: c\n${container}${extra}`;
}

test("pod validate reads an unpulled image's config from the registry, stores nothing", async () => {
  await setUp();
  const file = await write("app.yaml", podOf("app", "    image: app:1\n"));
  const r = await rkl(env!, ["pod", "validate", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^pod app: ok \(1 container\)\n/);
  assert.match(
    r.stdout,
    /image app:1 will be pulled \(checked against its config from the registry\)/,
  );
  assert.equal(r.stderr, "");
  // The image's User is 1000: runAsNonRoot passes; an image with no User runs as root.
  const nonRoot = "    securityContext:\n      runAsNonRoot: true\n";
  const ok = await rkl(env!, [
    "pod",
    "validate",
    await write("nonroot.yaml", podOf("nr", `    image: app:1\n${nonRoot}`)),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assertRejected(
    "runAsNonRoot against an image with no User",
    await rkl(env!, [
      "pod",
      "validate",
      await write("root.yaml", podOf("rt", `    image: rootapp:1\n${nonRoot}`)),
    ]),
    /root\.yaml:10:\d+: .*runAsNonRoot is set but the container would run as root/,
  );
  // Nothing stored: no image, no blob, no layer.
  assert.deepEqual(JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"])), []);
  assert.deepEqual(storeEntries("blobs").filter((n) => !n.startsWith(".")), []);
  assert.deepEqual(storeEntries("layers"), []);
});

test("pod validate with the registry unreachable: a warning naming what was not checked", async () => {
  await setUp();
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dead = `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
  l.close();
  const conf = await write(
    "dead-registries.yaml",
    `mirrors:\n  docker.io:\n    endpoint: ["${dead}"]\n    fallback: false\n`,
  );
  const offline: RklEnv = { ...env!, env: { ...env!.env, RKL_REGISTRIES_CONFIG: conf } };
  const file = await write("app-off.yaml", podOf("app", "    image: app:1\n"));
  const r = await rkl(offline, ["pod", "validate", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^pod app: ok/);
  assert.match(
    r.stderr,
    /^warning: .*app-off\.yaml:8:\d+: spec\.containers\[0\]\.image: the image's config could not be read \(Cannot read docker\.io\/library\/app:1's config: .*\); not checked: the command it runs \(its Entrypoint\/Cmd\), its working directory, its environment\n$/,
  );
  // Never, with the image absent: the error `pod run` gives, not a warning.
  assertRejected(
    "pullPolicy Never",
    await rkl(offline, [
      "pod",
      "validate",
      await write(
        "never.yaml",
        podOf("nv", "    image: app:1\n    imagePullPolicy: Never\n"),
      ),
    ]),
    /never\.yaml:8:\d+: .*is not in the store and imagePullPolicy is Never/,
  );
});

const VOLUMES = `    image: ${REPO}/bundles/busybox
    command: [sleep, "300"]
    volumeMounts:
    - name: tools
      mountPath: /tools
    - name: tools
      mountPath: /data
      subPath: data
    - name: one
      mountPath: /one
  volumes:
  - name: tools
    image:
      reference: tools:1
  - name: one
    image:
      reference: one:1
      pullPolicy: IfNotPresent
`;

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4])
    .filter((m) => m?.startsWith(dir));
}

test("image volumes: pulled, mounted read-only and noexec with subPath, unmounted at rm", async () => {
  await setUp();
  const file = await write("vols.yaml", podOf("vols", VOLUMES));
  const v = await rkl(env!, ["pod", "validate", file]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /image volume tools: image tools:1 will be pulled/);
  const r = await rkl(env!, ["pod", "run", "--network", env!.network, file]);
  assert.equal(r.code, 0, r.stderr);
  try {
    const exec = (...args: string[]) => rkl(env!, ["pod", "exec", "vols", "c", "--", ...args]);
    assert.equal((await exec("cat", "/tools/data/file")).stdout, "from the bottom layer\n");
    assert.equal((await exec("cat", "/tools/data/extra")).stdout, "from the top layer\n");
    assert.equal(
      (await exec("ls", "/tools/data")).stdout,
      "extra\nfile\n",
      "the whiteout hides gone",
    );
    assert.equal((await exec("cat", "/data/extra")).stdout, "from the top layer\n", "subPath");
    assert.equal((await exec("cat", "/one/only")).stdout, "a single layer\n");
    const touch = await exec("touch", "/tools/new");
    assert.notEqual(touch.code, 0);
    assert.match(touch.stderr, /Read-only file system/);
    const run = await exec("/tools/bin/hello");
    assert.notEqual(run.code, 0, "noexec");
    assert.match(run.stderr, /Permission denied/);
    // readable as a script still (noexec stops exec, not reading)
    assert.equal((await exec("sh", "/tools/bin/hello")).stdout, "ran\n");
    const opts = (await exec("cat", "/proc/mounts")).stdout.split("\n")
      .filter((l) => / \/(tools|data|one) /.test(l)).map((l) => l.split(" ")[3]);
    assert.equal(opts.length, 3);
    for (const o of opts) assert.match(o, /^ro,.*nosuid.*nodev.*noexec/);
    // on the host: one overlay per volume, under the pod's dir
    assert.deepEqual(mountsUnder(`${env!.root}/pods/vols/volumes/`).sort(), [
      `${env!.root}/pods/vols/volumes/one`,
      `${env!.root}/pods/vols/volumes/tools`,
    ]);
    // the image is in use while the pod exists
    const rm = await rkl(env!, ["image", "rm", "tools:1"]);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /pod vols/);
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "vols"]);
  }
  assert.deepEqual(mountsUnder(`${env!.root}/pods/`), []);
  await rklOk(env!, ["image", "prune", "-a"]);
  assert.deepEqual(JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"])), []);
});

test("image volumes: a failure after the mount rolls back; Never with no image is refused", async () => {
  await setUp();
  // subPath missing in the (read-only) image: the container create fails after the mount
  const bad = VOLUMES.replace("subPath: data", "subPath: nope");
  const r = await rkl(env!, [
    "pod",
    "run",
    "--network",
    env!.network,
    await write("badsub.yaml", podOf("badsub", bad)),
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /badsub\.yaml:\d+:\d+: .*subPath/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.deepEqual(mountsUnder(`${env!.root}/pods/`), []);
  assert.deepEqual(JSON.parse(await rklOk(env!, ["pod", "list", "-o", "json"])), []);
  await rklOk(env!, ["image", "prune", "-a"]);
  // Never, image absent: refused at its line before anything is made
  assertRejected(
    "pullPolicy Never",
    await rkl(env!, [
      "pod",
      "run",
      "--network",
      env!.network,
      await write(
        "never-vol.yaml",
        podOf(
          "nv",
          VOLUMES.replace("reference: tools:1", "reference: tools:1\n      pullPolicy: Never"),
        ),
      ),
    ]),
    /never-vol\.yaml:\d+:\d+: spec\.volumes\[0\]\.image\.reference: image "tools:1" is not in the store and imagePullPolicy is Never/,
  );
  assert.deepEqual(JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"])), []);
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});

test("image volumes: kill -9 at every point of the create, then rm -f, gc, or gc without a record, leaves nothing", async () => {
  await setUp();
  const file = await write("kill.yaml", podOf("kv", VOLUMES));
  const args = ["pod", "run", "--network", env!.network, file];
  // Pulled first: the points counted are those of a create whose images are here.
  await rklOk(env!, args);
  await rklOk(env!, ["pod", "rm", "-f", "kv"]);
  const traced = await rkl({ ...env!, env: { ...env!.env, RKL_TRACE: "1" } }, args);
  assert.equal(traced.code, 0, traced.stderr);
  const points = traced.stderr.split("\n").filter((l) => l.startsWith("trace: "));
  const mounted = points.findIndex((l) => l.includes("pod: image volumes")) + 1;
  assert.ok(mounted > 0, `no image volumes trace point in ${points}`);
  await rklOk(env!, ["pod", "rm", "-f", "kv"]);
  for (let point = 1; point <= points.length; point++) {
    const killed = await rkl(
      { ...env!, env: { ...env!.env, RKL_TEST_KILL_AT: String(point) } },
      args,
    );
    assert.equal(killed.code, 137, `point ${point}: ${killed.stderr}`);
    if (point === mounted) {
      // The record lost too: gc finds the pod's dir and unmounts its volumes.
      assert.equal(mountsUnder(`${env!.root}/pods/kv/volumes/`).length, 2);
      Deno.removeSync(`${env!.root}/records/pods/kv.json`);
    }
    const hasRecord = (await rklOk(env!, ["pod", "list", "-q"])).split("\n").includes("kv");
    const useGc = point % 2 === 0 || !hasRecord;
    const clean = useGc ? await rkl(env!, ["gc"]) : await rkl(env!, ["pod", "rm", "-f", "kv"]);
    assert.equal(clean.code, 0, `point ${point}: ${clean.stderr}`);
    // Killed once the pod was made: gc keeps a whole pod; rm -f takes it.
    if ((await rklOk(env!, ["pod", "list", "-q"])).split("\n").includes("kv")) {
      await rklOk(env!, ["pod", "rm", "-f", "kv"]);
    }
    assert.deepEqual(mountsUnder(`${env!.root}/pods/`), [], `mounts left after point ${point}`);
  }
  await rklOk(env!, ["image", "prune", "-a"]);
});
