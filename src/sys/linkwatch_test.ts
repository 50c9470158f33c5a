import assert from "node:assert/strict";
import { deletedLinks } from "./linkwatch.ts";

/** One rtnetlink message: nlmsghdr, ifinfomsg, then IFLA_IFNAME (and a padding attribute). */
function message(type: number, name: string): Uint8Array {
  const nameBytes = new TextEncoder().encode(name + "\0");
  const attrLen = 4 + nameBytes.length;
  const padded = (attrLen + 3) & ~3;
  const other = 8; // IFLA_MTU (4), a u32
  const len = 16 + 16 + padded + other;
  const buf = new Uint8Array(len);
  const v = new DataView(buf.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, type, true);
  v.setUint16(32, other, true);
  v.setUint16(34, 4, true);
  v.setUint32(36, 1500, true);
  v.setUint16(40, attrLen, true);
  v.setUint16(42, 3, true);
  buf.set(nameBytes, 44);
  return buf;
}

Deno.test("deletedLinks() reads the names of RTM_DELLINK messages and skips the rest", () => {
  const parts = [message(16, "veth1"), message(17, "veth0a1b2c3d"), message(17, "rkl0")];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0) + 8);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  assert.deepEqual(deletedLinks(all, off), ["veth0a1b2c3d", "rkl0"]);
  // A truncated datagram or a bogus length reads nothing past its end.
  assert.deepEqual(deletedLinks(all, parts[0].length + 20), []);
  const bogus = message(17, "x");
  new DataView(bogus.buffer).setUint32(0, 4000, true);
  assert.deepEqual(deletedLinks(bogus, bogus.length), []);
});
