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

Deno.test("memberPath() refuses absolute and climbing names", () => {
  assert.deepEqual(memberPath("./a//b/"), ["a", "b"]);
  assert.throws(() => memberPath("/etc/passwd"), /absolute/);
  assert.throws(() => memberPath("a/../../x"), /climbs/);
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

Deno.test("readTar() needs the end-of-archive block of zeros, and a header of zeros but one byte is not it", async () => {
  const t = tarBytes([{ name: "f", data: "y" }]);
  const end = t.length - 1024;
  await assert.rejects(read(t.slice(0, end)), /end-of-archive/);
  const almost = t.slice();
  almost[end + 511] = 1; // not all zeros: a header, whose checksum fails
  await assert.rejects(read(almost), /checksum/);
});
