/**
 * Unpack, differentially: images as builders write them, unpacked by rkl and
 * by containerd 1.6 (Debian's package, run here on a private root, state and
 * socket, with its overlayfs snapshotter), compared entry by entry.
 *
 * The images are made on this host: by umoci (`insert … /`, as the stand-in
 * images were, and `unpack` + `repack`), by buildah (OCI and Docker formats),
 * by skopeo conversions of buildah's (zstd, uncompressed, docker-archive,
 * oci-archive), and by hand for the edge cases (names, hard links, whiteouts,
 * opaque dirs, devices, set-id bits, xattrs, mtimes, replacements, pax/GNU
 * long names, GNU sparse files). Each is served from a local docker-registry
 * (or imported from its archive) to both, and for each layer and for the
 * merged view (both mounted as read-only overlays) the trees must match:
 * type, mode, owner, size, content hash, link target, device numbers,
 * xattrs, hard-link groups and mtimes. Every image then runs under rkl once.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import {
  dirTar,
  type Member,
  pushImage,
  type Registry,
  startRegistry,
  tarBytes,
} from "../_helpers/oci.ts";

const ready = requires("root", "conmon", "bundles", "youki", "registry", "containerd");
const env = ready ? await makeEnv("unpack", 22) : undefined;
const { test } = censusTests(ready, () => env!);
const dec = new TextDecoder();

/** Runs a command; its stdout, or an Error with its stderr. */
async function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = await new Deno.Command(cmd, { args, cwd: opts.cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout);
}

// ---------------------------------------------------------------- containerd

interface Containerd {
  dir: string;
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function startContainerd(dir: string): Promise<Containerd> {
  Deno.mkdirSync(dir, { recursive: true });
  const sock = `${dir}/containerd.sock`;
  // Only what is needed: no CRI, no snapshotters but native and overlayfs.
  Deno.writeTextFileSync(
    `${dir}/config.toml`,
    [
      "version = 2",
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",` +
      ` "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",` +
      ` "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing",` +
      ` "io.containerd.tracing.processor.v1.otlp"]`,
      "[grpc]",
      `  address = "${sock}"`,
      `[plugins."io.containerd.internal.v1.opt"]`,
      `  path = "${dir}/root/opt"`,
      "",
    ].join("\n"),
  );
  const log = Deno.openSync(`${dir}/containerd.log`, { write: true, create: true });
  const child = new Deno.Command("containerd", {
    args: ["--config", `${dir}/config.toml`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  child.stderr.pipeTo(log.writable).catch(() => {});
  const ctr = (args: string[]) => sh("ctr", ["-a", sock, ...args]);
  await waitFor("containerd", async () => {
    try {
      await ctr(["version"]);
      return true;
    } catch {
      return false;
    }
  }, 20_000);
  return {
    dir,
    ctr,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await unmountUnder(dir);
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

async function unmountUnder(dir: string): Promise<void> {
  const points = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter(Boolean)
    .map((l) => l.split(" ")[4]).filter((m) => m === dir || m.startsWith(`${dir}/`));
  for (const m of points.reverse()) await sh("umount", [m]);
}

// ---------------------------------------------------------------- trees

interface Node {
  type: string;
  desc: string;
  mtime: string;
}

/**
 * Every entry under `root` (its path relative to root, "." for root) as one
 * string of what must match, and its mtime apart: type, mode, owner, size
 * (not for directories, whose size is the file system's), content sha256,
 * link target, device numbers, xattrs and the hard-link group.
 */
async function walk(root: string): Promise<Map<string, Node>> {
  const out = await new Deno.Command("find", {
    args: [root, "-printf", "%P\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%i\\0%n\\0%l\\0"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  // An overlay lists a char 0:0 in a directory no other layer has, and then
  // finds nothing by that name (it is a whiteout): kept as such.
  const vanished: string[] = [];
  for (const line of dec.decode(out.stderr).split("\n").filter(Boolean)) {
    const m = /^\S*find: ‘(.*)’: No such file or directory$/.exec(line);
    if (!m || !m[1].startsWith(`${root}/`)) throw new Error(`find ${root}: ${line}`);
    vanished.push(m[1].slice(root.length + 1));
  }
  const f = dec.decode(out.stdout).split("\0");
  const rows: string[][] = [];
  for (let i = 0; i + 10 <= f.length; i += 10) rows.push(f.slice(i, i + 10));
  const xattrs = await listXattrs(root);
  const inodes = new Map<string, string[]>();
  for (const [p, type, , , , , , ino, nlink] of rows) {
    if (type !== "d" && Number(nlink) > 1) inodes.set(ino, [...inodes.get(ino) ?? [], p || "."]);
  }
  const nodes = new Map<string, Node>();
  for (const [p, type, mode, uid, gid, size, mtime, ino, nlink, link] of rows) {
    const path = p || ".";
    const abs = p ? `${root}/${p}` : root;
    const parts = [`${type} ${mode.padStart(4, "0")} ${uid}:${gid}`];
    if (type !== "d") parts.push(`size=${size}`);
    if (type === "f") parts.push(`sha256=${hashFile(abs)}`);
    if (type === "l") parts.push(`-> ${link}`);
    if (type === "c" || type === "b") {
      const st = Deno.lstatSync(abs);
      parts.push(`rdev=${st.rdev}`);
    }
    const x = xattrs.get(path);
    if (x) parts.push(`xattrs{${x}}`);
    if (type !== "d" && Number(nlink) > 1) {
      parts.push(`links[${(inodes.get(ino) ?? []).sort().join(",")}]`);
    }
    nodes.set(path, { type, desc: parts.join(" "), mtime });
  }
  for (const p of vanished) nodes.set(p, { type: "?", desc: "listed, not there", mtime: "" });
  return nodes;
}

function hashFile(path: string): string {
  const h = createHash("sha256");
  const f = Deno.openSync(path);
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n = f.readSync(buf); n !== null && n > 0; n = f.readSync(buf)) {
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return h.digest("hex").slice(0, 16);
}

/** path → "name=0xHEX,…" for every entry with xattrs (getfattr, not following symlinks). */
async function listXattrs(root: string): Promise<Map<string, string>> {
  const out = await new Deno.Command("getfattr", {
    args: ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const map = new Map<string, string>();
  let cur = "";
  for (const line of dec.decode(out.stdout).split("\n")) {
    if (line.startsWith("# file: ")) {
      const abs = line.slice(8).replace(
        /\\([0-7]{3})/g,
        (_, o) => String.fromCharCode(parseInt(o, 8)),
      )
        .replace(/\\\\/g, "\\");
      cur = abs === root ? "." : abs.slice(root.length + 1);
    } else if (line.includes("=")) {
      map.set(cur, map.has(cur) ? `${map.get(cur)},${line}` : line);
    }
  }
  for (const [k, v] of map) map.set(k, v.split(",").sort().join(","));
  return map;
}

/**
 * The differences between two trees. An mtime counts unless both sides
 * stamped it at unpack time (after `since`): a directory the layer did not
 * list, a whiteout, the layer root.
 */
function diffTrees(
  label: string,
  a: Map<string, Node>,
  b: Map<string, Node>,
  opts: { since: number; bottom?: Set<string>; ghosts?: Set<string> },
) {
  const since = opts.since;
  const out: string[] = [];
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(p);
    let y = b.get(p);
    if (opts.bottom && y) {
      // containerd applies an image's bottom layer without overlay's
      // conversion: a whiteout there removes, an opaque marker does
      // nothing. rkl writes both in overlay's form: its layer dirs are
      // shared by diff ID, and the same layer higher up must hide what
      // is below it. Known and kept; collected to be checked in the
      // merged view below.
      if (!x && y.desc === "c 0000 0:0 size=0 rdev=0") {
        opts.bottom.add(p);
        continue;
      }
      y = { ...y, desc: y.desc.replace(/ xattrs\{trusted\.overlay\.opaque=0x79\}$/, "") };
    }
    // ...where overlayfs lists such a whiteout in a directory no other
    // layer has, and finds nothing by its name (`ls` shows it, `stat` fails)
    if (!x && y?.desc === "listed, not there" && opts.ghosts?.has(p)) continue;
    if (!x || !y) {
      out.push(`${label}: ${p}: ${x ? "only containerd has it" : "only rkl has it"}`);
      continue;
    }
    if (x.desc !== y.desc) out.push(`${label}: ${p}: containerd ${x.desc} | rkl ${y.desc}`);
    const fresh = Number(x.mtime) >= since && Number(y.mtime) >= since;
    if (x.mtime !== y.mtime && !fresh) {
      out.push(`${label}: ${p}: mtime containerd ${x.mtime} | rkl ${y.mtime}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- images

interface TestImage {
  name: string;
  /** A registry reference, or an archive to import. */
  ref?: string;
  archive?: string;
  /** Whiteouts in its bottom layer (see diffTrees). */
  bottomWhiteouts?: string[];
  /** Both must refuse it: the messages rkl and containerd give. */
  refused?: { rkl: RegExp; containerd: RegExp };
}

let registry: Registry | undefined;
let containerd: Containerd | undefined;
let work = "";

function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    out.push(
      out.length === 0
        ? d
        : `sha256:${createHash("sha256").update(`${out[out.length - 1]} ${d}`).digest("hex")}`,
    );
  }
  return out;
}

/** containerd's layer dirs (bottom first) for the image whose diff IDs these are. */
async function ctrLayerDirs(diffIds: string[], key: string): Promise<string[]> {
  const chain = chainIds(diffIds);
  const mounts = JSON.parse(
    await containerd!.ctr(["snapshots", "view", "--mounts", key, chain[chain.length - 1]]),
  ) as { Type: string; Source: string; Options: string[] }[];
  // ctr's lease ends with the command: the view may be collected already
  await containerd!.ctr(["snapshots", "rm", key]).catch(() => {});
  if (mounts[0].Type === "bind") return [mounts[0].Source];
  const lower = mounts[0].Options.find((o) => o.startsWith("lowerdir="))!;
  return lower.slice("lowerdir=".length).split(":").reverse();
}

/** Mounts `lowers` (bottom first) as a read-only overlay; a single dir is itself. */
async function merged(lowers: string[], at: string): Promise<string> {
  // an empty dir below them all: overlayfs needs two lower dirs without an upper
  Deno.mkdirSync(`${at}-empty`, { recursive: true });
  Deno.mkdirSync(at, { recursive: true });
  await sh("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    `ro,lowerdir=${[...lowers].reverse().join(":")}:${at}-empty`,
    at,
  ]);
  return at;
}

interface Outcome {
  layers: number;
  entries: number;
  rklMs: number;
  ctrMs: number;
}

async function ctrRemoveAll(): Promise<void> {
  const names = (await containerd!.ctr(["images", "ls", "-q"])).split("\n").filter(Boolean);
  if (names.length > 0) await containerd!.ctr(["images", "rm", "--sync", ...names]);
}

/** Pulls or imports `img` into both, compares, runs it under rkl, removes it from both. */
async function compare(img: TestImage, n: number): Promise<Outcome> {
  const since = Math.floor(Date.now() / 1000);
  const name = img.ref ?? `localhost/diff/${img.name}:1`;
  const t0 = performance.now();
  const r = img.ref
    ? await rkl(env!, ["image", "pull", "-q", img.ref])
    : await rkl(env!, ["image", "import", img.archive!, name]);
  const rklMs = performance.now() - t0;
  const t1 = performance.now();
  let ctrErr = "";
  try {
    if (img.ref) await containerd!.ctr(["images", "pull", "--plain-http", img.ref]);
    else await containerd!.ctr(["images", "import", "--base-name", "localhost/diff", img.archive!]);
  } catch (e) {
    ctrErr = String(e);
  }
  const ctrMs = performance.now() - t1;
  if (img.refused) {
    assert.notEqual(r.code, 0, `${img.name}: rkl took it`);
    assert.match(r.stderr, img.refused.rkl, img.name);
    assert.match(ctrErr, img.refused.containerd, `${img.name}: containerd took it`);
    await ctrRemoveAll();
    return { layers: 0, entries: 0, rklMs, ctrMs };
  }
  assert.equal(r.code, 0, `${img.name}: rkl: ${r.stderr}`);
  assert.equal(ctrErr, "", `${img.name}: containerd: ${ctrErr}`);
  const info = JSON.parse(await rklOk(env!, ["image", "inspect", name]))[0] as {
    Id: string;
    Layers: { DiffID: string }[];
  };
  const diffIds = info.Layers.map((l) => l.DiffID);
  const ctrDirs = await ctrLayerDirs(diffIds, `view-${n}`);
  const rklDirs = diffIds.map((d) => `${env!.root}/images/layers/${d.slice(7)}/fs`);
  assert.equal(ctrDirs.length, rklDirs.length);
  const diffs: string[] = [];
  const ghosts = new Set<string>();
  let entries = 0;
  for (let i = 0; i < rklDirs.length; i++) {
    const a = await walk(ctrDirs[i]);
    const b = await walk(rklDirs[i]);
    entries += a.size;
    const bottom = i === 0 ? ghosts : undefined;
    diffs.push(...diffTrees(`${img.name} layer ${i}`, a, b, { since, bottom }));
  }
  const mnt = `${work}/mnt-${n}`;
  const ma = await merged(ctrDirs, `${mnt}/containerd`);
  const mb = await merged(rklDirs, `${mnt}/rkl`);
  try {
    const a = await walk(ma);
    const b = await walk(mb);
    entries += a.size;
    diffs.push(...diffTrees(`${img.name} merged`, a, b, { since, ghosts }));
  } finally {
    await unmountUnder(mnt);
  }
  assert.deepEqual(diffs.slice(0, 30), [], `${img.name}: ${diffs.length} differences`);
  assert.deepEqual([...ghosts], img.bottomWhiteouts ?? [], `${img.name}: bottom-layer whiteouts`);
  // It runs.
  const spec = `${work}/run-${n}.yaml`;
  Deno.writeTextFileSync(
    spec,
    `name: run-${n}\nimage: ${name}\nimagePullPolicy: Never\ncommand: [/bin/sh, -c, "ls / >/dev/null"]\n`,
  );
  await rklOk(env!, ["container", "run", "--network", "none", spec]);
  let st: { status: string; exitCode?: number } = { status: "" };
  await waitFor(`run-${n} to exit`, async () => {
    st = JSON.parse(await rklOk(env!, ["container", "state", `run-${n}`, "-o", "json"]));
    return st.status === "exited";
  }, 20_000);
  assert.equal(st.exitCode, 0, `${img.name} ran: ${JSON.stringify(st)}`);
  await rklOk(env!, ["container", "rm", `run-${n}`]);
  // Gone from both, so that the next image (the same layers converted) is unpacked again.
  await rklOk(env!, ["image", "rm", name]);
  await rklOk(env!, ["image", "prune", "-a"]);
  await ctrRemoveAll();
  const left = (await containerd!.ctr(["snapshots", "ls"])).trim().split("\n").slice(1);
  assert.deepEqual(left, [], `${img.name}: containerd kept snapshots`);
  return { layers: rklDirs.length, entries, rklMs, ctrMs };
}

// ---------------------------------------------------------------- builders

const BUSYBOX = `${REPO}/bundles/busybox/rootfs`;
/** A v2 file capability (cap_net_bind_service, permitted), bytes all under 0x80. */
const CAP = "\0\0\0\x02\0\x04\0\0" + "\0".repeat(12);

/** Names, owners, modes, links, devices, xattrs, times, replacements within a layer. */
const EDGE_META: Member[] = [
  { name: "/", type: "dir", mode: 0o700 }, // umoci's root entry: skipped
  { name: "./", type: "dir", mode: 0o750, uid: 5 },
  { name: "/abs/", type: "dir" },
  { name: "/abs/file", data: "absolute", uid: 1, gid: 2 },
  { name: "./dot/", type: "dir" },
  { name: "./dot//file", data: "dot" },
  { name: "climb/", type: "dir" },
  { name: "climb/../../../up", data: "stops at the root" },
  { name: "deep/", type: "dir" },
  { name: "deep/x/../y", data: "cleaned by name" },
  { name: "long/", type: "dir" },
  { name: `long/${"p".repeat(140)}`, data: "pax path" },
  { name: "short", gnuLongName: `long/${"g".repeat(140)}`, data: "GNU long name" },
  { name: "ids/", type: "dir", mode: 0o2775, uid: 1000, gid: 1000 },
  { name: "ids/inherits", data: "in a set-group-ID dir, still 0:0" },
  { name: "ids/suid", data: "s", mode: 0o4755 },
  { name: "ids/sgid", data: "g", mode: 0o2755, gid: 50 },
  { name: "ids/sticky/", type: "dir", mode: 0o1777 },
  { name: "ids/odd", data: "o", mode: 0o4000, uid: 65534, gid: 65534 },
  { name: "xattr/", type: "dir", xattrs: { "user.dir": "d" } },
  {
    name: "xattr/cap",
    data: "c",
    mode: 0o755,
    xattrs: {
      "security.capability": CAP,
      "user.f": "v",
      "user.empty": "",
      "trusted.t": "never set",
      "trusted.overlay.opaque": "y",
    },
  },
  { name: "xattr/sym", type: "symlink", linkname: "cap", xattrs: { "user.s": "not on a symlink" } },
  { name: "time", data: "t", pax: { mtime: "1600000000.123456789" } },
  { name: "time-dir/", type: "dir", pax: { mtime: "1500000000.987654321" } },
  { name: "hl/", type: "dir" },
  { name: "hl/a", data: "shared", mode: 0o644 },
  {
    name: "hl/b",
    type: "link",
    linkname: "hl/a",
    mode: 0o750,
    uid: 7,
    gid: 8,
    pax: { mtime: "1500000000.5" },
    xattrs: { "user.l": "1" },
  },
  { name: "hl/c", type: "link", linkname: "/hl/a", mode: 0o711, uid: 9 },
  { name: "hl/sym", type: "symlink", linkname: "a" },
  { name: "hl/tosym", type: "link", linkname: "./hl/sym", uid: 3 },
  { name: "devs/", type: "dir" },
  { name: "devs/null", type: "char", major: 1, minor: 3, mode: 0o666 },
  { name: "devs/loop", type: "block", major: 7, minor: 0, mode: 0o660, gid: 6 },
  { name: "devs/fifo", type: "fifo", mode: 0o600, uid: 5 },
  { name: "devs/zero", type: "char", major: 0, minor: 0, mode: 0o644, uid: 2 },
  { name: "rep/", type: "dir" },
  { name: "rep/f2d", data: "a file first" },
  { name: "rep/f2d/", type: "dir", mode: 0o711 },
  { name: "rep/d2s/", type: "dir" },
  { name: "rep/d2s/child", data: "goes with its dir" },
  { name: "rep/d2s", type: "symlink", linkname: "f2d" },
  { name: "rep/s2f", type: "symlink", linkname: "nowhere" },
  { name: "rep/s2f", data: "now a file" },
  { name: "rep/f2f", data: "first", mode: 0o600, uid: 4 },
  { name: "rep/f2f", data: "second", mode: 0o644 },
  { name: "twice/", type: "dir", mode: 0o755, pax: { mtime: "1400000000" } },
  { name: "twice/f", data: "" },
  { name: "twice/", type: "dir", mode: 0o700, uid: 3, pax: { mtime: "1300000000" } },
  { name: "legacy/", flag: "\0" },
  { name: "glob", global: { path: "ignored", uid: "9" }, data: "g" },
  { name: "emptypax", pax: { uid: "" }, uid: 3, data: "e" },
  { name: "imp/a/b", data: "parents not listed" },
  { name: "opq/", type: "dir" },
  { name: "opq/old", data: "hidden above" },
  { name: "wh/", type: "dir" },
  { name: "wh/gone", data: "x" },
  { name: "wh/dir/", type: "dir" },
  { name: "wh/dir/f", data: "f" },
  { name: "x/", type: "dir", mode: 0o750, uid: 3, gid: 4, pax: { mtime: "1234567890" } },
  { name: "x/f", data: "f" },
  { name: "x/d/", type: "dir" },
  { name: "x/d/in", data: "in" },
  { name: "x/s", type: "symlink", linkname: "f" },
  {
    name: "low/",
    type: "dir",
    mode: 0o2710,
    uid: 11,
    gid: 12,
    xattrs: { "user.p": "from below" },
    pax: { mtime: "1111111111.111111111" },
  },
  { name: "low/f", data: "f" },
  { name: "low2/", type: "dir", mode: 0o701, pax: { mtime: "1222222222.222222222" } },
  { name: "low2/f", data: "f" },
];

/** Whiteouts, an opaque dir and replacements of a lower layer's entries. */
const EDGE_CHANGES: Member[] = [
  { name: "opq/", type: "dir" },
  { name: "opq/.wh..wh..opq", data: "" },
  { name: "opq/new", data: "only this" },
  { name: "wh/", type: "dir" },
  { name: "wh/.wh.gone", data: "", uid: 1000, gid: 1000 },
  { name: "wh/.wh.dir", data: "" },
  { name: "bin/", type: "dir" },
  { name: "bin/.wh.vi", data: "" },
  { name: "x/", type: "dir", mode: 0o750, uid: 3, gid: 4, pax: { mtime: "1234567890" } },
  { name: "x/f/", type: "dir", mode: 0o700 },
  { name: "x/d", type: "symlink", linkname: "f" },
  { name: "x/s", data: "was a symlink" },
  { name: "/abs/file", data: "replaced from above", mode: 0o4711 },
  // parents not listed: their metadata comes from the layer below (containerd's copy-up)
  { name: "low/sub/new", data: "under a dir this layer does not list" },
  { name: "low2/.wh..wh..opq", data: "" },
];

/** A layer of one GNU sparse file, as GNU tar writes it in `format` (and sparse version). */
async function sparseLayer(dir: string, name: string, args: string[]): Promise<Uint8Array> {
  const d = `${dir}/sparse-${name}`;
  Deno.mkdirSync(d, { recursive: true });
  const f = Deno.openSync(`${d}/${name}`, { write: true, create: true });
  f.truncateSync(3 << 20);
  f.seekSync(100_000, Deno.SeekMode.Start);
  f.writeSync(new TextEncoder().encode("data in the middle"));
  f.seekSync(2 << 20, Deno.SeekMode.Start);
  f.writeSync(new Uint8Array(9000).fill(0x61));
  f.close();
  const out = await new Deno.Command("tar", {
    args: ["--sparse", ...args, "--numeric-owner", "-C", d, "-cf", "-", name],
    stdout: "piped",
  }).output();
  assert.ok(out.success, `tar ${args.join(" ")}`);
  return out.stdout;
}

async function buildImages(url: string, host: string): Promise<TestImage[]> {
  const out: TestImage[] = [];
  const ref = (name: string) => `${host}/diff/${name}:1`;
  const skopeo = (args: string[]) =>
    sh("skopeo", ["copy", "-q", "--dest-tls-verify=false", ...args]);

  // umoci: `insert … /` (a layer with an entry for its root), a second insert, then unpack + repack.
  const lay = `${work}/umoci`;
  await sh("umoci", ["init", "--layout", lay]);
  await sh("umoci", ["new", "--image", `${lay}:t`]);
  await sh("umoci", ["insert", "--image", `${lay}:t`, BUSYBOX, "/"]);
  const extra = `${work}/extra`;
  Deno.mkdirSync(`${extra}/sub`, { recursive: true });
  Deno.writeTextFileSync(`${extra}/sub/f`, "extra");
  Deno.linkSync(`${extra}/sub/f`, `${extra}/hard`);
  Deno.chmodSync(`${extra}/sub`, 0o750);
  await sh("umoci", ["insert", "--image", `${lay}:t`, extra, "/opt/extra"]);
  await skopeo([`oci:${lay}:t`, `docker://${ref("umoci-insert")}`]);
  out.push({ name: "umoci-insert", ref: ref("umoci-insert") });
  const bundle = `${work}/umoci-bundle`;
  await sh("umoci", ["unpack", "--image", `${lay}:t`, bundle]);
  const rootfs = `${bundle}/rootfs`;
  Deno.removeSync(`${rootfs}/bin/vi`);
  Deno.removeSync(`${rootfs}/etc`, { recursive: true });
  Deno.mkdirSync(`${rootfs}/etc`);
  Deno.writeTextFileSync(`${rootfs}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  Deno.chmodSync(`${rootfs}/opt/extra/sub/f`, 0o4755);
  await sh("chown", ["-h", "12:34", `${rootfs}/opt/extra/hard`]);
  await sh("umoci", ["repack", "--image", `${lay}:r`, bundle]);
  await skopeo([`oci:${lay}:r`, `docker://${ref("umoci-repack")}`]);
  out.push({ name: "umoci-repack", ref: ref("umoci-repack") });

  // buildah: a busybox base, and a second layer of deletions, a replaced dir, hard links, set-id bits.
  const B = [
    "--root",
    `${work}/buildah/root`,
    "--runroot",
    `${work}/buildah/run`,
    "--storage-driver",
    "vfs",
  ];
  const bah = (args: string[]) => sh("buildah", [...B, ...args]);
  const c1 = (await bah(["from", "scratch"])).trim();
  const m1 = (await bah(["mount", c1])).trim();
  await sh("cp", ["-a", `${BUSYBOX}/.`, m1]);
  await bah(["config", "--cmd", "sh", c1]);
  await bah(["commit", "-q", c1, "bb1"]);
  const c2 = (await bah(["from", "bb1"])).trim();
  const m2 = (await bah(["mount", c2])).trim();
  Deno.removeSync(`${m2}/bin/vi`);
  Deno.removeSync(`${m2}/etc`, { recursive: true });
  Deno.mkdirSync(`${m2}/etc`, { mode: 0o711 });
  Deno.writeTextFileSync(`${m2}/etc/new`, "hi");
  Deno.linkSync(`${m2}/etc/new`, `${m2}/etc/hl`);
  Deno.chmodSync(`${m2}/etc/new`, 0o4755);
  Deno.mkdirSync(`${m2}/srv/data`, { recursive: true });
  await sh("chown", ["-R", "1000:1000", `${m2}/srv`]);
  Deno.symlinkSync("../etc/new", `${m2}/srv/link`);
  await bah(["commit", "-q", c2, "bb2"]);
  await bah(["commit", "-q", "--format", "docker", c2, "bb2d"]);
  await bah(["push", "-q", "--tls-verify=false", "bb2", `docker://${ref("buildah-oci")}`]);
  out.push({ name: "buildah-oci", ref: ref("buildah-oci") });
  await bah(["push", "-q", "--tls-verify=false", "bb2d", `docker://${ref("buildah-docker")}`]);
  out.push({ name: "buildah-docker", ref: ref("buildah-docker") });

  // skopeo conversions of buildah's image.
  const src = `docker://${ref("buildah-oci")}`;
  const s = ["--src-tls-verify=false"];
  await skopeo([...s, "--dest-compress-format", "zstd", src, `docker://${ref("skopeo-zstd")}`]);
  out.push({ name: "skopeo-zstd", ref: ref("skopeo-zstd") });
  await skopeo([...s, "--dest-decompress", src, `docker://${ref("skopeo-plain")}`]);
  out.push({ name: "skopeo-plain", ref: ref("skopeo-plain") });
  const da = `${work}/docker-archive.tar`;
  await skopeo([...s, src, `docker-archive:${da}:localhost/diff/docker-archive:1`]);
  out.push({ name: "docker-archive", archive: da });
  const oa = `${work}/oci-archive.tar`;
  await skopeo([...s, src, `oci-archive:${oa}:localhost/diff/oci-archive:1`]);
  out.push({ name: "oci-archive", archive: oa });

  // By hand: the edge cases, over busybox, and three GNU sparse forms.
  const base = await dirTar(BUSYBOX);
  await pushImage(url, "diff/edges", "1", {
    layers: [
      base,
      tarBytes(EDGE_META),
      tarBytes(EDGE_CHANGES),
      await sparseLayer(work, "s00", ["--format=posix", "--sparse-version=0.0"]),
      await sparseLayer(work, "s01", ["--format=posix", "--sparse-version=0.1"]),
      await sparseLayer(work, "s10", ["--format=posix", "--sparse-version=1.0"]),
    ],
  });
  out.push({ name: "edges", ref: ref("edges") });
  await pushImage(url, "diff/edges-zstd", "1", {
    layers: [base, tarBytes(EDGE_META), tarBytes(EDGE_CHANGES)],
    compression: "zstd",
  });
  out.push({ name: "edges-zstd", ref: ref("edges-zstd") });
  // Old GNU sparse ("S"): containerd does not take it, nor does rkl.
  await pushImage(url, "diff/gnu-sparse", "1", {
    layers: [base, await sparseLayer(work, "gnu", ["--format=gnu"])],
  });
  out.push({
    name: "gnu-sparse",
    ref: ref("gnu-sparse"),
    refused: {
      rkl: /sparse members are not supported/,
      containerd: /unhandled tar header type 83/,
    },
  });

  // Whiteouts and an opaque marker in an image's bottom layer (one layer).
  const bw = `${work}/bottom-whiteouts`;
  await sh("cp", ["-a", BUSYBOX, bw]);
  Deno.mkdirSync(`${bw}/opq`);
  Deno.writeTextFileSync(`${bw}/opq/.wh..wh..opq`, "");
  Deno.writeTextFileSync(`${bw}/opq/kept`, "k");
  Deno.writeTextFileSync(`${bw}/bin/.wh.nothing-below`, "");
  await pushImage(url, "diff/bottom-whiteouts", "1", { layers: [await dirTar(bw)] });
  out.push({
    name: "bottom-whiteouts",
    ref: ref("bottom-whiteouts"),
    bottomWhiteouts: ["bin/nothing-below"],
  });

  // Hostile or broken layers both refuse.
  const refusedByBoth: [string, Member[], RegExp, RegExp][] = [
    [
      "link-outside",
      [{ name: "h", type: "link", linkname: "../../etc/shadow" }],
      /which the layer does not hold/,
      /no such file or directory/,
    ],
    [
      "link-dir",
      [{ name: "d/", type: "dir" }, { name: "h", type: "link", linkname: "d" }],
      /hard link "h" to a directory/,
      /operation not permitted/,
    ],
    [
      "whiteout-dot",
      [{ name: "a/", type: "dir" }, { name: "a/.wh..", data: "" }],
      /names nothing/,
      /invalid whiteout name/,
    ],
  ];
  for (const [name, members, rkl, containerd] of refusedByBoth) {
    await pushImage(url, `diff/${name}`, "1", { layers: [tarBytes(members)] });
    out.push({ name, ref: ref(name), refused: { rkl, containerd } });
  }

  // The largest: Python's standard library over busybox, by buildah.
  const c3 = (await bah(["from", "bb1"])).trim();
  const m3 = (await bah(["mount", c3])).trim();
  const py = [...Deno.readDirSync("/usr/lib")].find((e) => /^python3\.\d+$/.test(e.name));
  assert.ok(py, "a python3.x standard library in /usr/lib");
  Deno.mkdirSync(`${m3}/usr/lib`, { recursive: true });
  await sh("cp", ["-a", `/usr/lib/${py.name}`, `${m3}/usr/lib/`]);
  await bah(["commit", "-q", c3, "py"]);
  await bah(["push", "-q", "--tls-verify=false", "py", `docker://${ref("python")}`]);
  out.push({ name: "python", ref: ref("python") });
  await bah(["rm", "-a"]);
  await bah(["rmi", "-a", "-f"]);
  return out;
}

// ---------------------------------------------------------------- the test

test("rkl unpacks every image as containerd 1.6 does: per layer and merged, entry by entry", async () => {
  work = `${env!.dir}/work`;
  Deno.mkdirSync(work, { recursive: true });
  registry = await startRegistry(`${env!.dir}/registry`);
  containerd = await startContainerd(`${env!.dir}/containerd`);
  const images = await buildImages(registry.url, registry.host);
  let layers = 0;
  let entries = 0;
  const times: Record<string, Outcome> = {};
  for (const [i, img] of images.entries()) {
    const o = await compare(img, i);
    times[img.name] = o;
    layers += o.layers;
    entries += o.entries;
  }
  const compared = images.filter((i) => !i.refused).length;
  const py = times.python;
  console.log(
    `unpack diff: ${compared} images (+${images.length - compared} refused by both), ` +
      `${layers} layers, ${entries} entries compared; python image: ` +
      `rkl pull ${py.rklMs.toFixed(0)} ms, ctr pull ${py.ctrMs.toFixed(0)} ms`,
  );
  assert.ok(compared >= 10 && entries > 5000, `${compared} images, ${entries} entries`);
});

cleanupAfterAll(env, async () => {
  await containerd?.stop();
  await registry?.stop();
  if (work) await unmountUnder(work);
});
