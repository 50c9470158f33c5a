import assert from "node:assert/strict";
import {
  type MarkerPorts,
  ROOTLESS_V1_PATCH,
  youkiPatches,
  youkiRunsRootlessOnV1,
} from "./youki_marker.ts";

const MARKER = "/usr/local/share/rkl/youki.json";
const BIN = "/usr/local/bin/youki";

function info(over: Partial<Deno.FileInfo>): Deno.FileInfo {
  return {
    isFile: true,
    isDirectory: false,
    isSymlink: false,
    size: 11608696,
    mtime: new Date(1796638251_000 + 420),
    atime: null,
    birthtime: null,
    ctime: null,
    dev: 65024,
    ino: 7798788,
    mode: 0o100644,
    nlink: 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
    blocks: 1,
    isBlockDevice: false,
    isCharDevice: false,
    isFifo: false,
    isSocket: false,
    ...over,
  } as Deno.FileInfo;
}

const record = {
  binary: BIN,
  dev: 65024,
  ino: 7798788,
  size: 11608696,
  mtime: 1796638251,
  patches: ["libcontainer-exec-seccomp", ROOTLESS_V1_PATCH],
};

function ports(
  over: { marker?: Partial<Deno.FileInfo> | null; text?: string; bin?: Partial<Deno.FileInfo> } =
    {},
): MarkerPorts {
  return {
    lstat: (p) => p === MARKER && over.marker !== null ? info(over.marker ?? {}) : undefined,
    stat: (p) => p === BIN ? info({ mode: 0o100755, ...over.bin }) : undefined,
    read: (p) => p === MARKER ? (over.text ?? JSON.stringify(record)) : undefined,
    uid: 1001,
  };
}

Deno.test("youkiPatches(): the marker's patches when it describes this very binary", () => {
  assert.deepEqual(youkiPatches(BIN, ports()), record.patches);
  assert.equal(youkiRunsRootlessOnV1(BIN, ports()), true);
  // The same file under another path (a symlink, another PATH spelling): its identity is compared.
  assert.equal(youkiRunsRootlessOnV1("/usr/bin/youki", { ...ports(), stat: () => info({}) }), true);
  // The marker of the user's own build (owned by the user) counts too.
  assert.equal(youkiRunsRootlessOnV1(BIN, ports({ marker: { uid: 1001 } })), true);
});

Deno.test("youkiPatches(): another build of the binary, or none, is not rkl's", () => {
  for (
    const bin of [
      { ino: 1 },
      { dev: 2049 },
      { size: 11608697 },
      { mtime: new Date(1796638252_000) },
      { isFile: false },
    ]
  ) assert.equal(youkiRunsRootlessOnV1(BIN, ports({ bin })), false, JSON.stringify(bin));
  assert.equal(youkiRunsRootlessOnV1("/nowhere/youki", ports()), false);
  const without = JSON.stringify({ ...record, patches: ["libcontainer-exec-seccomp"] });
  assert.deepEqual(youkiPatches(BIN, ports({ text: without })), ["libcontainer-exec-seccomp"]);
  assert.equal(youkiRunsRootlessOnV1(BIN, ports({ text: without })), false);
});

Deno.test("youkiPatches(): a missing, untrusted or malformed marker counts as none", () => {
  const cases: [string, MarkerPorts][] = [
    ["missing", ports({ marker: null })],
    ["a symlink", ports({ marker: { isFile: false, isSymlink: true } })],
    ["another user's", ports({ marker: { uid: 1002 } })],
    ["group-writable", ports({ marker: { mode: 0o100664 } })],
    ["world-writable", ports({ marker: { mode: 0o100646 } })],
    ["not JSON", ports({ text: "{" })],
    ["a list", ports({ text: "[]" })],
    ["null", ports({ text: "null" })],
    [
      "patches not a list",
      ports({ text: JSON.stringify({ ...record, patches: ROOTLESS_V1_PATCH }) }),
    ],
    ["ino as a string", ports({ text: JSON.stringify({ ...record, ino: "7798788" }) })],
  ];
  for (const [what, p] of cases) assert.deepEqual(youkiPatches(BIN, p), [], what);
  // Names that are not strings are dropped, the rest kept.
  const mixed = JSON.stringify({ ...record, patches: [1, ROOTLESS_V1_PATCH, null] });
  assert.deepEqual(youkiPatches(BIN, ports({ text: mixed })), [ROOTLESS_V1_PATCH]);
});
