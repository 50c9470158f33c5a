import assert from "node:assert/strict";
import type protobuf from "protobufjs";
import { criRoot } from "./grpc.ts";
import { fastEncoder } from "./encode.ts";

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
      case "int64":
      case "uint64":
        return t === "uint64"
          ? pick(INT64S.filter((v) => !String(v).startsWith("-")))
          : pick(INT64S);
    }
    const rt = field.parent!.lookup(t)!;
    if ("values" in rt && !("fields" in rt)) {
      const names = Object.keys((rt as protobuf.Enum).values);
      return r() < 0.8 ? pick(names) : (rt as protobuf.Enum).values[pick(names)];
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
    if ("keyType" in field) {
      const m: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 3); i > 0; i--) m[pick(STRINGS)] = value(field, field.type);
      o[field.name] = m;
    } else if (field.repeated) {
      o[field.name] = Array.from({ length: Math.floor(r() * 3) }, () => value(field, field.type));
    } else o[field.name] = value(field, field.type);
  }
  return o;
}

Deno.test("fastEncoder writes protobufjs's octets for every CRI message it takes", () => {
  const root = criRoot();
  const ns = root.lookup("runtime.v1") as protobuf.Namespace;
  let types = 0;
  let skipped = 0;
  for (const t of ns.nestedArray) {
    if (!("fieldsArray" in t)) continue;
    const type = t as protobuf.Type;
    const enc = fastEncoder(type);
    if (!enc) {
      skipped++;
      continue;
    }
    types++;
    const r = rng(types * 7919);
    for (let i = 0; i < 40; i++) {
      const o = sample(type, r);
      const want = type.encode(type.fromObject(o)).finish();
      assert.deepEqual(enc(o), new Uint8Array(want), `${type.name} ${JSON.stringify(o)}`);
    }
  }
  assert.ok(types > 100, `${types} types encoded`);
  // The answers the daemon encodes most are among them.
  for (
    const name of [
      "ContainerStatusResponse",
      "ListContainersResponse",
      "ListPodSandboxResponse",
      "PodSandboxStatusResponse",
      "VersionResponse",
    ]
  ) {
    assert.ok(fastEncoder(root.lookupType(`runtime.v1.${name}`)), name);
  }
  assert.ok(skipped > 0, "some types (bytes, doubles) are left to protobufjs");
});

Deno.test("fastEncoder: a ContainerStatus answer decodes as it was made", () => {
  const root = criRoot();
  const T = root.lookupType("runtime.v1.ContainerStatusResponse");
  const msg = {
    status: {
      id: "c".repeat(64),
      metadata: { name: "app", attempt: 2 },
      state: "CONTAINER_EXITED",
      created_at: "1767323045000000000",
      started_at: "1767323046000000000",
      finished_at: "1767323047123000000",
      exit_code: -1,
      image: { image: "busybox" },
      image_ref: "sha256:img",
      reason: "Error",
      message: "",
      labels: { a: "b" },
      annotations: { "ü": "✓" },
      mounts: [{
        container_path: "/c",
        host_path: "/h",
        readonly: true,
        propagation: "PROPAGATION_BIDIRECTIONAL",
      }],
      log_path: "/x/y.log",
      resources: {
        linux: {
          cpu_period: "100000",
          cpu_quota: "-1",
          cpu_shares: "2",
          memory_limit_in_bytes: "0",
        },
      },
    },
    info: { info: "{}" },
  };
  const back = T.toObject(T.decode(fastEncoder(T)!(msg)), { longs: String, enums: String });
  assert.deepEqual(back.status.finished_at, "1767323047123000000");
  assert.deepEqual(back.status.exit_code, -1);
  assert.deepEqual(back.status.resources.linux.cpu_quota, "-1");
  assert.deepEqual(back.status.mounts[0].propagation, "PROPAGATION_BIDIRECTIONAL");
  assert.deepEqual(back.status.annotations, { "ü": "✓" });
  assert.deepEqual(back.info, { info: "{}" });
});

Deno.test("fastEncoder refuses what protobufjs refuses: a message field that is not an object", () => {
  const T = criRoot().lookupType("runtime.v1.ContainerStatusResponse");
  assert.throws(() => fastEncoder(T)!({ status: "x" }));
  assert.throws(() => T.fromObject({ status: "x" }));
});
