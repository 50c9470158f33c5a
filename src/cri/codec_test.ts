/**
 * The codec (src/cri/codec.ts) against protobufjs, the reference it replaces
 * in the daemon: the descriptor is the proto as protobufjs reads it, every
 * message type encodes to protobufjs's octets, and decodes as protobufjs's
 * toObject did (with the options the server used).
 */
import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { criRoot, descriptor } from "./proto/reference.ts";
import api from "./proto/api.json" with { type: "json" };
import { decode, DecodeError, encode } from "./codec.ts";

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: Uint8Array as unknown as protobuf.IConversionOptions["bytes"],
  defaults: true,
  arrays: true,
  objects: true,
};

/** A small deterministic random source (xorshift), so a failure can be run again. */
function rng(seed: number) {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const STRINGS = ["", "a", "busybox", "ünïcode ✓", "0", "x".repeat(200), "日本"];
const INT64S = [
  "0",
  "1",
  "-1",
  "1767323045000000000",
  "-9223372036854775808",
  "9223372036854775807",
  "4294967296",
  "123456789012345",
  "1234567890123456",
  7,
  -3,
];

/** A random plain object for `type`, as a handler would make it. */
function sample(type: protobuf.Type, r: () => number, depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const value = (field: protobuf.Field, t: string): unknown => {
    switch (t) {
      case "string":
        return pick(STRINGS);
      case "bool":
        return r() < 0.5;
      case "int32":
        return pick([0, 1, -1, 300, -70000, 2 ** 31 - 1]);
      case "uint32":
        return pick([0, 1, 300, 2 ** 32 - 1]);
      case "double":
        return pick([0, 1.5, -2.25, 1e300]);
      case "bytes":
        return pick([new Uint8Array(0), new Uint8Array([1, 2, 255]), new Uint8Array(300)]);
      case "int64":
      case "uint64":
        return t === "uint64"
          ? pick(INT64S.filter((v) => !String(v).startsWith("-")))
          : pick(INT64S);
    }
    const rt = field.parent!.lookup(t)!;
    if (rt instanceof protobuf.Enum) {
      const names = Object.keys(rt.values);
      return r() < 0.8 ? pick(names) : rt.values[pick(names)];
    }
    return depth > 4 ? {} : sample(rt as protobuf.Type, r, depth + 1);
  };
  for (const field of type.fieldsArray) {
    field.resolve();
    const roll = r();
    if (roll < 0.25) continue; // absent
    if (roll < 0.3) {
      o[field.name] = null;
      continue;
    }
    if (field instanceof protobuf.MapField) {
      const m: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 3); i > 0; i--) m[pick(STRINGS)] = value(field, field.type);
      o[field.name] = m;
    } else if (field.repeated) {
      o[field.name] = Array.from({ length: Math.floor(r() * 3) }, () => value(field, field.type));
    } else o[field.name] = value(field, field.type);
  }
  return o;
}

/** Buffers as plain Uint8Arrays, so the two decoders' answers compare. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function allTypes(): protobuf.Type[] {
  const out: protobuf.Type[] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Type) out.push(o);
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) visit(o);
    }
  };
  visit(criRoot());
  return out;
}

Deno.test("codec: src/cri/proto/api.json is api.proto as protobufjs reads it (deno run -A src/cri/proto/reference.ts)", () => {
  assert.deepEqual(api, JSON.parse(JSON.stringify(descriptor())));
});

Deno.test("codec: every message type encodes to protobufjs's octets and decodes as its toObject", () => {
  let n = 0;
  for (const type of allTypes()) {
    const name = type.fullName.slice(1);
    const r = rng(++n * 7919);
    for (let i = 0; i < 30; i++) {
      const o = sample(type, r);
      const want = type.encode(type.fromObject(o)).finish();
      const got = encode(name, o);
      assert.deepEqual(got, new Uint8Array(want), `${name} ${JSON.stringify(o)}`);
      assert.deepEqual(
        plain(decode(name, got)),
        plain(type.toObject(type.decode(want), TO_OBJECT)),
        `${name} decoded`,
      );
    }
  }
  assert.ok(n > 150, `${n} types`);
});

Deno.test("codec: a decoder takes what other encoders may send", () => {
  const T = criRoot().lookupType("runtime.v1.LinuxSandboxSecurityContext");
  // Packed where protobufjs writes unpacked, an unknown field, a 10-octet negative enum.
  const bytes = new Uint8Array([
    0x2a,
    0x02,
    0x07,
    0x08, // supplemental_groups, packed: 7, 8
    0xf8,
    0x07,
    0x05, // field 127 (unknown), varint
    0x58,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0x01, // policy -1
  ]);
  const got = decode("runtime.v1.LinuxSandboxSecurityContext", bytes);
  assert.deepEqual(got.supplemental_groups, ["7", "8"]);
  assert.equal(got.supplemental_groups_policy, -1);
  assert.deepEqual(plain(got), plain(T.toObject(T.decode(bytes), TO_OBJECT)));
});

Deno.test("codec: bad input is an error, not a wrong message", () => {
  const t = "runtime.v1.ContainerStatusRequest";
  assert.throws(() => decode(t, new Uint8Array([0x0a, 0x05, 0x61])), DecodeError); // truncated
  assert.throws(() => decode(t, new Uint8Array([0x08, 0x01])), DecodeError); // id as varint
  assert.throws(() => decode(t, new Uint8Array([0x0b])), DecodeError); // group
  assert.throws(() => encode("runtime.v1.ContainerStatusResponse", { status: "x" }));
  assert.throws(() => encode("runtime.v1.ListContainersResponse", { containers: {} }));
  assert.throws(() => encode("runtime.v1.NoSuchThing", {}));
});
