import assert from "node:assert/strict";
import { tarBytes } from "../../tests/_helpers/oci.ts";
import { ByteSource, readTar, TarError, type TarHeader } from "./tar.ts";
import { memberPath } from "./unpack.ts";

function stream(bytes: Uint8Array, chunk = 700): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) return c.close();
      c.enqueue(bytes.slice(off, off + chunk));
      off += chunk;
    },
  });
}

async function read(bytes: Uint8Array): Promise<{ h: TarHeader; data: string }[]> {
  const out: { h: TarHeader; data: string }[] = [];
  for await (const e of readTar(new ByteSource(stream(bytes)))) {
    let data = "";
    await e.body((c) => void (data += new TextDecoder().decode(c)));
    out.push({ h: e.header, data });
  }
  return out;
}

Deno.test("readTar() reads ustar, pax long names and xattrs across chunk boundaries", async () => {
  const long = `d/${"n".repeat(150)}`;
  const got = await read(tarBytes([
    { name: "d/", type: "dir", mode: 0o750 },
    { name: long, data: "x".repeat(1000), uid: 7, gid: 8 },
    { name: "d/l", type: "symlink", linkname: "../etc" },
    { name: "cap", data: "", xattrs: { "security.capability": "v" } },
  ]));
  assert.deepEqual(got.map((g) => [g.h.name, g.h.type]), [
    ["d/", "dir"],
    [long, "file"],
    ["d/l", "symlink"],
    ["cap", "file"],
  ]);
  assert.equal(got[0].h.mode, 0o750);
  assert.equal(got[1].data.length, 1000);
  assert.deepEqual([got[1].h.uid, got[1].h.gid], [7, 8]);
  assert.equal(got[2].h.linkname, "../etc");
  assert.equal(new TextDecoder().decode(got[3].h.xattrs.get("security.capability")), "v");
});

Deno.test("readTar() refuses a truncated archive and a bad checksum", async () => {
  const t = tarBytes([{ name: "f", data: "y".repeat(3000) }]);
  await assert.rejects(read(t.slice(0, 1500)), TarError);
  const bad = t.slice();
  bad[0] ^= 1;
  await assert.rejects(read(bad), /checksum/);
});

Deno.test("memberPath() roots names in the layer: a leading /, . and .. stop at its root", () => {
  assert.deepEqual(memberPath("./a//b/"), ["a", "b"]);
  assert.deepEqual(memberPath("/etc/passwd"), ["etc", "passwd"]);
  assert.deepEqual(memberPath("a/../../x"), ["x"]);
  assert.deepEqual(memberPath("../../../etc/shadow"), ["etc", "shadow"]);
  assert.deepEqual(memberPath("a/b/../c"), ["a", "c"]);
  for (const root of ["/", "./", ".", "", "..", "a/..", "/../."]) {
    assert.deepEqual(memberPath(root), [], root);
  }
});

Deno.test("readTar() takes unsigned and signed checksums of headers with bytes over 127", async () => {
  const name = "d/\u00e9t\u00e9-\u00fc"; // UTF-8: bytes over 127 in the name field
  const t = tarBytes([{ name, data: "x" }]);
  assert.equal((await read(t))[0].h.name, name); // tarBytes writes the unsigned (POSIX) sum
  // the same header with the sum some old tars wrote: bytes taken as signed
  const signed = t.slice();
  let sum = 0;
  for (let i = 0; i < 512; i++) {
    const c = i >= 148 && i < 156 ? 32 : signed[i];
    sum += c > 127 ? c - 256 : c;
  }
  signed.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  assert.equal((await read(signed))[0].h.name, name);
  // off by one in either form is refused
  signed.set(new TextEncoder().encode((sum + 1).toString(8).padStart(6, "0") + "\0 "), 148);
  await assert.rejects(read(signed), /checksum/);
});

Deno.test("readTar() ends at the end-of-archive block or a clean end of stream; a header of zeros but one byte is not the end", async () => {
  const t = tarBytes([{ name: "f", data: "y" }, { name: "g", data: "z" }]);
  const end = t.length - 1024;
  // umoci writes no end-of-archive blocks; Go's reader (so containerd) takes that
  assert.deepEqual((await read(t.slice(0, end))).map((g) => g.h.name), ["f", "g"]);
  await assert.rejects(read(t.slice(0, end - 100)), /truncated/);
  await assert.rejects(read(t.slice(0, end - 512)), /truncated/); // the body's block is missing
  const almost = t.slice();
  almost[end + 511] = 1; // not all zeros: a header, whose checksum fails
  await assert.rejects(read(almost), /checksum/);
});

const bytes = (s: string) => new TextEncoder().encode(s);

/** Sets a header's checksum again after its bytes were changed. */
function resum(t: Uint8Array, at: number): void {
  t.fill(32, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += t[i];
  t.set(bytes(sum.toString(8).padStart(6, "0") + "\0 "), at + 148);
}

Deno.test("readTar() reads names as Go's archive/tar does: GNU long name over pax path, no global records, no prefix in GNU headers", async () => {
  const got = await read(tarBytes([
    { name: "short", gnuLongName: "gnu/long/name", pax: { path: "pax/path" }, data: "1" },
    { name: "g", global: { path: "everything", uid: "5" }, data: "2" },
    { name: "empty", pax: { uid: "", path: "" }, uid: 9, data: "3" },
    { name: "legacy/", flag: "\0" },
    { name: "t", pax: { mtime: "1700000000.1234567899" } },
  ]));
  assert.deepEqual(got.map((g) => [g.h.name, g.h.type, g.data]), [
    ["gnu/long/name", "file", "1"],
    ["g", "file", "2"],
    ["empty", "file", "3"],
    ["legacy/", "dir", ""],
    ["t", "file", ""],
  ]);
  assert.equal(got[1].h.uid, 0);
  assert.equal(got[2].h.uid, 9);
  assert.deepEqual([got[4].h.mtime, got[4].h.mtimeNsec], [1700000000, 123456789]);

  // a GNU header ("ustar  \0") keeps times where ustar has the name prefix
  const t = tarBytes([{ name: "n", data: "" }]);
  t.set(bytes("ustar  \0"), 257);
  t.set(bytes("14537761234\0"), 345); // an atime
  resum(t, 0);
  assert.equal((await read(t))[0].h.name, "n");
  const u = tarBytes([{ name: "n", data: "" }]);
  u.set(bytes("pre/fix"), 345);
  resum(u, 0);
  assert.equal((await read(u))[0].h.name, "pre/fix/n");
});

Deno.test("readTar() reads no data for a member that is not a regular file, whatever its size", async () => {
  const t = tarBytes([{ name: "d/", type: "dir" }, { name: "d/f", data: "x" }]);
  t.set(bytes("00000001000\0"), 124); // the directory says 512 bytes
  resum(t, 0);
  assert.deepEqual((await read(t)).map((g) => [g.h.name, g.data]), [["d/", ""], ["d/f", "x"]]);
});

Deno.test("readTar() expands GNU sparse files in pax form 0.0, 0.1 and 1.0", async () => {
  const want = "abc" + "\0".repeat(7) + "xy" + "\0".repeat(4);
  const map10 = bytes("2\n0\n3\n10\n2\n");
  const data10 = new Uint8Array(512 + 5);
  data10.set(map10);
  data10.set(bytes("abcxy"), 512);
  const got = await read(
    tarBytes([
      {
        name: "GNUSparseFile.0/one",
        data: data10,
        pax: {
          "GNU.sparse.major": "1",
          "GNU.sparse.minor": "0",
          "GNU.sparse.name": "one",
          "GNU.sparse.realsize": "16",
        },
      },
      {
        name: "x",
        data: "abcxy",
        pax: {
          "GNU.sparse.major": "0",
          "GNU.sparse.minor": "1",
          "GNU.sparse.name": "zero-one",
          "GNU.sparse.size": "16",
          "GNU.sparse.numblocks": "2",
          "GNU.sparse.map": "0,3,10,2",
        },
      },
      {
        name: "zero-zero",
        data: "abcxy",
        pax: [
          ["GNU.sparse.size", "16"],
          ["GNU.sparse.numblocks", "2"],
          ["GNU.sparse.offset", "0"],
          ["GNU.sparse.numbytes", "3"],
          ["GNU.sparse.offset", "10"],
          ["GNU.sparse.numbytes", "2"],
        ],
      },
    ]),
  );
  assert.deepEqual(got.map((g) => [g.h.name, g.h.size, g.data]), [
    ["one", 16, want],
    ["zero-one", 16, want],
    ["zero-zero", 16, want],
  ]);
});

Deno.test("readTar() refuses old GNU sparse members and sparse maps that do not add up", async () => {
  await assert.rejects(
    read(tarBytes([{ name: "s", flag: "S", data: "" }])),
    /sparse members are not supported/,
  );
  await assert.rejects(
    read(tarBytes([{
      name: "s",
      data: "abc",
      pax: {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.size": "8",
        "GNU.sparse.map": "0,2",
      },
    }])),
    /does not match its data/,
  );
  await assert.rejects(
    read(tarBytes([{
      name: "s",
      data: "abcd",
      pax: {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.size": "8",
        "GNU.sparse.map": "4,2,0,2",
      },
    }])),
    /out of order/,
  );
});
