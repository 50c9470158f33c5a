/**
 * Images by reference, against a real registry (Debian's docker-registry on
 * 127.0.0.1 at a free port) that a mirror entry in registries.yaml puts in
 * front of docker.io, so the names stay public-looking. The images are built
 * here from the busybox bundle's rootfs: a two-layer image whose second layer
 * holds a whiteout, an opaque directory, a user and a config with
 * User/WorkingDir/Env/Entrypoint/ExposedPorts; a multi-arch index; hostile
 * layers. Every test ends with `rm` + `image prune` and the census as before.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { lgetxattr } from "../../src/sys/fileattr.ts";
import {
  dirTar,
  type Member,
  pushImage,
  pushIndex,
  type Registry,
  startRegistry,
  tarBytes,
} from "../_helpers/oci.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const env = ready ? await makeEnv("img", 12) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let baseTar: Uint8Array;
const TOP: Member[] = [
  { name: "etc/", type: "dir" },
  { name: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n" },
  { name: "etc/group", data: "root:x:0:\napp:x:1000:\n" },
  { name: "etc/motd", data: "from layer two\n" },
  { name: "bin/.wh.vi" },
  { name: "usr/", type: "dir" },
  { name: "usr/share/", type: "dir" },
  { name: "usr/share/.wh..wh..opq" },
  { name: "usr/share/only", data: "opaque\n" },
  { name: "srv/", type: "dir", uid: 1000, gid: 1000, mode: 0o775 },
  { name: "srv/data.txt", data: "data\n", uid: 1000, gid: 1000, mode: 0o640 },
  // a hard link member's metadata goes to the inode (as in containerd): the same here
  { name: "srv/hard", type: "link", linkname: "srv/data.txt", uid: 1000, gid: 1000, mode: 0o640 },
  // a set-group-ID directory: what is made in it takes its group unless chowned
  { name: "shared/", type: "dir", gid: 1000, mode: 0o2775 },
  { name: "shared/root-owned", data: "r\n" },
  { name: "shared/link", type: "symlink", linkname: "root-owned" },
  { name: "shared/sub/", type: "dir" },
  { name: "shared/sub/deep", data: "d\n" },
];
const CONFIG = {
  User: "app",
  WorkingDir: "/srv",
  Env: ["PATH=/bin:/sbin", "GREETING=from-image", "MODE=image"],
  Entrypoint: ["/bin/sh", "-c"],
  Cmd: ["echo default-cmd; sleep 300"],
  ExposedPorts: { "8080/tcp": {} },
};

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  // Lower layer: the busybox rootfs plus a usr/share that layer two makes opaque.
  const base = `${env!.dir}/base`;
  await new Deno.Command("cp", { args: ["-a", `${REPO}/bundles/busybox/rootfs`, base] }).output();
  Deno.mkdirSync(`${base}/usr/share`, { recursive: true });
  Deno.writeTextFileSync(`${base}/usr/share/hidden`, "lower\n");
  baseTar = await dirTar(base);
  const url = registry.url;
  await pushImage(url, "library/busybox", "1.36", {
    layers: [baseTar, tarBytes(TOP)],
    config: CONFIG,
  });
  // The same layers with docker media types and zstd elsewhere, for the formats.
  await pushImage(url, "library/busybox", "zstd", {
    layers: [baseTar],
    compression: "zstd",
    config: { Cmd: ["sh"] },
  });
  const arch = (a: string) => tarBytes([{ name: "arch", data: `${a}\n` }]);
  const amd = await pushImage(url, "library/multi", "amd64", {
    layers: [baseTar, arch("amd64")],
    architecture: "amd64",
  });
  const arm = await pushImage(url, "library/multi", "arm64", {
    layers: [baseTar, arch("arm64")],
    architecture: "arm64",
  });
  await pushIndex(url, "library/multi", "1", [
    { ...arm, architecture: "arm64" },
    { ...amd, architecture: "amd64" },
  ]);
  const hostile = async (tag: string, members: Member[]) =>
    await pushImage(url, "library/hostile", tag, { layers: [tarBytes(members)] });
  await hostile("climb", [{ name: "../../escaped", data: "x" }]);
  await hostile("absolute", [{ name: "/etc/escaped", data: "x" }]);
  await hostile("symlink", [
    { name: "evil", type: "symlink", linkname: `${env!.dir}/outside` },
    { name: "evil/pwned", data: "x" },
  ]);
  await hostile("device", [{ name: "dev/mem", type: "char", major: 1, minor: 1 }]);
  await hostile("hardlink", [{ name: "h", type: "link", linkname: "../../etc/shadow" }]);
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

async function pruneAll(): Promise<void> {
  await rklOk(env!, ["image", "prune", "-a"]);
  const left = JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"]));
  assert.deepEqual(left, []);
}

function storeEntries(sub: string): string[] {
  try {
    return [...Deno.readDirSync(`${env!.root}/images/${sub}`)].map((e) => e.name);
  } catch {
    return [];
  }
}

test("pull through a docker.io mirror: layers, whiteouts, opaque dirs, owners, links; ls and inspect", async () => {
  await setUp();
  const id = (await rklOk(env!, ["image", "pull", "busybox:1.36"])).trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  const list = JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"]));
  assert.equal(list.length, 1);
  assert.equal(list[0].repository, "docker.io/library/busybox");
  assert.equal(list[0].tag, "1.36");
  assert.ok(list[0].size > baseTar.length, "size is the unpacked layers' bytes");
  const table = await rklOk(env!, ["image", "ls"]);
  assert.match(table, /^REPOSITORY\s+TAG\s+IMAGE ID\s+DIGEST\s+SIZE\s+CREATED/);
  const [info] = JSON.parse(
    await rklOk(env!, ["image", "inspect", "docker.io/library/busybox:1.36"]),
  );
  assert.deepEqual(info.ExposedPorts, ["8080/tcp"]);
  assert.equal(info.Config.User, "app");
  assert.equal(info.Layers.length, 2);
  // The top layer in overlayfs's form.
  const top = `${env!.root}/images/layers/${info.Layers[1].DiffID.slice(7)}/fs`;
  const vi = Deno.lstatSync(`${top}/bin/vi`);
  assert.ok(vi.isCharDevice, "a whiteout is a character device");
  assert.equal(vi.rdev, 0);
  assert.deepEqual(lgetxattr(`${top}/usr/share`, "trusted.overlay.opaque"), new Uint8Array([0x79]));
  const data = Deno.statSync(`${top}/srv/data.txt`);
  assert.deepEqual([data.uid, data.gid, data.mode! & 0o7777, data.nlink], [1000, 1000, 0o640, 2]);
  const shared = Deno.statSync(`${top}/shared`);
  assert.deepEqual([shared.gid, shared.mode! & 0o7777], [1000, 0o2775]);
  for (const p of ["shared/root-owned", "shared/sub", "shared/sub/deep"]) {
    const st = Deno.statSync(`${top}/${p}`);
    assert.deepEqual([st.uid, st.gid], [0, 0], `${p} is 0:0 as the layer says`);
  }
  assert.equal(Deno.lstatSync(`${top}/shared/link`).gid, 0);
  // Layers start in block groups of their own on ext2/3/4 (chattr +T, see markTopDir).
  const layers = `${env!.root}/images/layers`;
  const fsType = new TextDecoder().decode(
    (await new Deno.Command("stat", { args: ["-f", "-c", "%T", layers], stdout: "piped" }).output())
      .stdout,
  );
  if (fsType.startsWith("ext")) {
    const lsattr = await new Deno.Command("lsattr", { args: ["-d", layers], stdout: "piped" })
      .output();
    assert.match(new TextDecoder().decode(lsattr.stdout).split(" ")[0], /T/);
  }
  // A second pull of the same image finds every blob and layer there.
  assert.equal((await rklOk(env!, ["image", "pull", "-q", "busybox:1.36"])).trim(), id);
  assert.equal(storeEntries("layers").filter((n) => !n.startsWith(".")).length, 2);
  // By digest, and a tag of our own.
  const digest = info.RepoDigests[0].split("@")[1];
  assert.equal((await rklOk(env!, ["image", "pull", `busybox@${digest}`])).trim(), id);
  await rklOk(env!, ["image", "tag", "busybox:1.36", "localhost/mine:v1"]);
  assert.equal(JSON.parse(await rklOk(env!, ["image", "inspect", "localhost/mine:v1"]))[0].Id, id);
  const untag = await rklOk(env!, ["image", "rm", "localhost/mine:v1"]);
  assert.match(untag, /Untagged: localhost\/mine:v1/);
  await pruneAll();
  assert.deepEqual(storeEntries("layers"), []);
  assert.deepEqual(storeEntries("blobs/sha256"), []);
});

test("a container of an image: Entrypoint/Cmd, Env under the spec's, WorkingDir, User by name; writes stay its own", async () => {
  await setUp();
  const a = await write(
    "a.yaml",
    "name: img-a\nimage: busybox:1.36\nargs: ['id; pwd; echo $GREETING $MODE; cat /etc/motd; ls /usr/share; test -e /bin/vi || echo no-vi; echo mine > /srv/w; sleep 300']\nenv:\n  - {name: MODE, value: spec}\n",
  );
  await rklOk(env!, ["container", "run", "--network", env!.network, a]);
  const b = await write("b.yaml", "name: img-b\nimage: docker.io/library/busybox:1.36\n");
  await rklOk(env!, ["container", "run", "--network", "none", b]);
  await waitFor(
    "a's output",
    async () => (await rkl(env!, ["container", "logs", "img-a"])).stdout.includes("no-vi"),
  );
  const logs = (await rklOk(env!, ["container", "logs", "img-a"])).split("\n");
  assert.match(logs[0], /^uid=1000\(app\) gid=1000\(app\)/);
  assert.equal(logs[1], "/srv");
  assert.equal(logs[2], "from-image spec");
  assert.equal(logs[3], "from layer two");
  assert.equal(logs[4], "only", "the opaque dir hides the lower layer's files");
  assert.equal(logs[5], "no-vi");
  await waitFor(
    "b's default command",
    async () => (await rkl(env!, ["container", "logs", "img-b"])).stdout.includes("default-cmd"),
  );
  const seen = await rkl(env!, ["container", "exec", "img-b", "--", "cat", "/srv/w"]);
  assert.notEqual(seen.code, 0, "a container never sees another's writes");
  // In use: rm refused, with the user named.
  const refused = await rkl(env!, ["image", "rm", "busybox:1.36"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /in use by img-a, img-b/);
  await rklOk(env!, ["container", "rm", "-f", "img-a"]);
  await rklOk(env!, ["container", "rm", "-f", "img-b"]);
  await pruneAll();
});

test("a pod and a compose service run images; imagePullPolicy Never and Always are honoured", async () => {
  await setUp();
  const never = await write(
    "never.yaml",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: never}\nspec:\n  containers:\n    - name: c\n      image: busybox:1.36\n      imagePullPolicy: Never\n",
  );
  const r = await rkl(env!, ["pod", "run", "--network", env!.network, never]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /never\.yaml:7:\d+: .*not in the store and imagePullPolicy is Never/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  const pod = await write(
    "pod.yaml",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: imgpod}\nspec:\n  containers:\n    - name: app\n      image: busybox:1.36\n      command: [sh, -c, 'cat /arch 2>/dev/null; whoami; sleep 300']\n      resources: {limits: {memory: 64Mi}}\n    - name: multi\n      image: multi:1\n      imagePullPolicy: Always\n      command: [sh, -c, 'cat /arch; sleep 300']\n",
  );
  await rklOk(env!, ["pod", "run", "--network", env!.network, pod]);
  await waitFor(
    "multi's output",
    async () => (await rkl(env!, ["pod", "logs", "imgpod", "multi"])).stdout.includes("amd64"),
  );
  assert.equal((await rklOk(env!, ["pod", "logs", "imgpod", "app"])).trim(), "app");
  await rklOk(env!, ["pod", "rm", "-f", "imgpod"]);
  const dir = `${env!.dir}/proj`;
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/compose.yaml`,
    "services:\n  web:\n    image: busybox:zstd\n    pull_policy: always\n    command: [sh, -c, 'echo compose-up; sleep 300']\n",
  );
  await rklOk(env!, ["compose", "up", "-d"], { cwd: dir });
  await waitFor(
    "the service's output",
    async () =>
      (await rkl(env!, ["compose", "logs", "web"], { cwd: dir })).stdout.includes("compose-up"),
  );
  await rklOk(env!, ["compose", "down"], { cwd: dir });
  await pruneAll();
});

test("bad references, unknown tags, hostile layers, a lying or silent registry: one line, nothing stored", async () => {
  await setUp();
  const fails = async (args: string[], want: RegExp) => {
    const r = await rkl(env!, args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, want, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.deepEqual(storeEntries("images"), [], `nothing stored after ${args.join(" ")}`);
    assert.deepEqual(storeEntries("tags"), []);
    assert.deepEqual(storeEntries("layers"), []);
    assert.deepEqual(storeEntries("blobs/sha256").filter((n) => !n.startsWith(".")), []);
  };
  await fails(["image", "pull", "Busybox"], /invalid image reference/);
  await fails(
    ["image", "pull", "busybox:nope"],
    /Cannot pull docker\.io\/library\/busybox:nope: mirror http:\/\/127\.0\.0\.1:\d+: manifest unknown/,
  );
  // Names are rooted in the layer, as containerd roots them: a climbing or
  // absolute name lands inside it, never outside; a device node is made as
  // the layer says (the device cgroup keeps containers from opening it).
  for (const [tag, path] of [["climb", "escaped"], ["absolute", "etc/escaped"], ["device", ""]]) {
    await rklOk(env!, ["image", "pull", "-q", `hostile:${tag}`]);
    const [layer] = storeEntries("layers").filter((n) => !n.startsWith("."));
    const fs = `${env!.root}/images/layers/${layer}/fs`;
    if (path) assert.equal(Deno.readTextFileSync(`${fs}/${path}`), "x", tag);
    else assert.ok(Deno.lstatSync(`${fs}/dev/mem`).isCharDevice, tag);
    await rklOk(env!, ["image", "rm", `hostile:${tag}`]);
    await pruneAll();
  }
  assert.throws(() => Deno.statSync(`${env!.dir}/escaped`), Deno.errors.NotFound);
  await fails(["image", "pull", "hostile:symlink"], /through the symlink "evil"/);
  await fails(
    ["image", "pull", "hostile:hardlink"],
    /"\.\.\/\.\.\/etc\/shadow", which the layer does not hold/,
  );
  assert.throws(() => Deno.statSync(`${env!.dir}/outside`), Deno.errors.NotFound);
  // A registry that lies about a blob, and one that never answers.
  const lie = new TextEncoder().encode("not what the digest says");
  const cfg = new TextEncoder().encode(JSON.stringify({ rootfs: { diff_ids: [] } }));
  const { sha } = await import("../_helpers/oci.ts");
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: sha(cfg),
      size: cfg.length,
    },
    layers: [],
  });
  const liar = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    if (u.pathname.includes("/manifests/")) {
      return new Response(manifest, {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    }
    if (u.pathname.includes("/blobs/")) {
      return new Response(new Uint8Array(cfg.length).fill(lie[0]));
    }
    return new Response("{}");
  });
  // Accepts connections and never answers.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of silent) held.push(c);
  })().catch(() => {});
  try {
    await fails(["image", "pull", `127.0.0.1:${liar.addr.port}/x/y:1`], /digest mismatch/);
    const t0 = Date.now();
    await fails(
      ["image", "pull", `127.0.0.1:${(silent.addr as Deno.NetAddr).port}/x/y:1`],
      /no answer within 3 s/,
    );
    assert.ok(Date.now() - t0 < 20_000);
    await fails(["image", "pull", "127.0.0.1:1/x/y:1"], /Cannot pull 127\.0\.0\.1:1\/x\/y:1/);
  } finally {
    await liar.shutdown();
    silent.close();
    for (const c of held) c.close();
  }
  // A layer whose bytes are a good tar.gz but not the one its digest names:
  // unpacked as it arrives, then refused, with no blob, .partial or layer left.
  const { gzipSync } = await import("node:zlib");
  const tar = tarBytes([{ name: "etc/", type: "dir" }, { name: "etc/swapped", data: "x\n" }]);
  const served = new Uint8Array(gzipSync(tar));
  const claimed = new Uint8Array(gzipSync(tarBytes([{ name: "other", data: "y\n" }])));
  const lcfg = new TextEncoder().encode(JSON.stringify({ rootfs: { diff_ids: [sha(tar)] } }));
  const lmanifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: sha(lcfg),
      size: lcfg.length,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: sha(claimed),
      size: served.length,
    }],
  });
  const swapper = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    if (u.pathname.includes("/manifests/")) {
      return new Response(lmanifest, {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    }
    if (u.pathname.endsWith(sha(lcfg))) return new Response(lcfg);
    if (u.pathname.includes("/blobs/")) return new Response(served);
    return new Response("{}");
  });
  try {
    await fails(
      ["image", "pull", `127.0.0.1:${swapper.addr.port}/x/swapped:1`],
      new RegExp(`blob ${sha(claimed)}: digest mismatch`),
    );
    assert.deepEqual(storeEntries("blobs/sha256"), []);
    assert.deepEqual(storeEntries("layers"), []);
  } finally {
    await swapper.shutdown();
  }
  // A registry that answers for the manifest and config but never for the layer:
  // the one-pass download gives up after the time limit and the layer is not
  // asked for again from the same endpoint.
  let layerAsks = 0;
  const hold = Promise.withResolvers<void>();
  const mute = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    if (u.pathname.includes("/manifests/")) {
      return new Response(lmanifest, {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    }
    if (u.pathname.endsWith(sha(lcfg))) return new Response(lcfg);
    if (u.pathname.includes("/blobs/")) {
      layerAsks++;
      await hold.promise;
      return new Response("late", { status: 503 });
    }
    return new Response("{}");
  });
  try {
    await fails(
      ["image", "pull", `127.0.0.1:${mute.addr.port}/x/mute:1`],
      /blob sha256:[0-9a-f]{12}: .*no answer within 3 s/,
    );
    assert.equal(layerAsks, 1, "the silent endpoint is not waited for twice");
  } finally {
    hold.resolve();
    await mute.shutdown();
  }
  // A spec naming a missing image: the error is at the image line, nothing made.
  const c = await write("bad.yaml", "name: badimg\nimage: busybox:nope\n");
  const r = await rkl(env!, ["container", "run", "--network", env!.network, c]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.yaml:2:\d+: .*manifest unknown/);
  await pruneAll();
});

test("a full disk during unpack leaves nothing; two pulls at once fetch each layer once", async () => {
  await setUp();
  const small = `${env!.dir}/small`;
  Deno.mkdirSync(small);
  await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1600k", "tmpfs", small] })
    .output();
  try {
    const tiny = { ...env!, env: { ...env!.env, RKL_ROOT: `${small}/root` } };
    const r = await rkl(tiny, ["image", "pull", "busybox:1.36"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ENOSPC|No space left/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    const left = [...Deno.readDirSync(`${small}/root/images/layers`)].map((e) => e.name);
    assert.deepEqual(left, []);
    assert.deepEqual([...Deno.readDirSync(`${small}/root/images/images`)], []);
  } finally {
    await new Deno.Command("umount", { args: [small] }).output();
  }
  const [x, y] = await Promise.all([
    rkl(env!, ["image", "pull", "busybox:1.36"]),
    rkl(env!, ["image", "pull", "busybox:1.36"]),
  ]);
  assert.equal(x.code, 0, x.stderr);
  assert.equal(y.code, 0, y.stderr);
  assert.equal(x.stdout, y.stdout);
  assert.equal(storeEntries("layers").filter((n) => !n.startsWith(".")).length, 2);
  await pruneAll();
});

test("import of an OCI archive and a docker-archive made by skopeo", async () => {
  await setUp();
  const src = `docker://${registry!.host}/library/busybox:1.36`;
  const oci = `${env!.dir}/img-oci.tar`;
  const dock = `${env!.dir}/img-docker.tar`;
  for (
    const dest of [
      `oci-archive:${oci}:1.36`,
      `docker-archive:${dock}:docker.io/library/imported:v2`,
    ]
  ) {
    const r = await new Deno.Command("skopeo", {
      args: ["copy", "--src-tls-verify=false", "--override-arch", "amd64", src, dest],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
  }
  const a = (await rklOk(env!, ["image", "import", oci, "busybox"])).trim();
  const b = (await rklOk(env!, ["image", "import", dock])).trim();
  assert.match(a, /^sha256:/);
  const tags = JSON.parse(await rklOk(env!, ["image", "ls", "-o", "json"])).map((
    i: { repository: string; tag: string },
  ) => `${i.repository}:${i.tag}`).sort();
  assert.deepEqual(tags, ["docker.io/library/busybox:1.36", "docker.io/library/imported:v2"]);
  assert.ok(b.startsWith("sha256:"));
  const c = await write(
    "imp.yaml",
    "name: imp\nimage: imported:v2\nimagePullPolicy: Never\ncommand: [cat, /etc/motd]\n",
  );
  await rklOk(env!, ["container", "run", "--network", "none", c]);
  await waitFor(
    "imp's output",
    async () => (await rkl(env!, ["container", "logs", "imp"])).stdout.includes("from layer two"),
  );
  await rklOk(env!, ["container", "rm", "-f", "imp"]);
  const bad = await rkl(env!, ["image", "import", `${REPO}/deno.json`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Cannot import/);
  await pruneAll();
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
