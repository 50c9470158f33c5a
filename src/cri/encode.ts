/**
 * A protobuf encoder for the CRI's answers that takes the handlers' plain
 * objects as they are (proto field names, int64 as decimal strings, enums as
 * names), without protobufjs's `fromObject` step: that step makes a message
 * object per message and parses every int64 string into a Long, which was
 * most of a ContainerStatus answer's encoding (97 µs of its first calls,
 * 38 warm, against the handler's own 200; the daemon runs V8 without its
 * optimising compilers).
 *
 * It is built from the parsed proto's reflection (field numbers, types,
 * enums), and writes the same octets as `Type.encode(Type.fromObject(o))`:
 * fields by number, a field written when its value is neither
 * null nor undefined (zeros and empty strings too, as protobufjs does), maps
 * as key/value entries, repeated numbers packed as the reflection says. A type with a field kind it
 * does not take (floating point, bytes, 64-bit fixed) has no encoder here:
 * `fastEncoder` answers undefined and the caller uses protobufjs.
 */
import type protobuf from "protobufjs";

type Plan = FieldPlan[];

interface FieldPlan {
  name: string;
  tag: number;
  /** "string" | "bool" | "int32" | "uint32" | "int64" | "uint64" | "enum" | "message" */
  kind: Kind;
  repeated: boolean;
  /** Repeated numbers in one length-delimited field (protobufjs's reflection says). */
  packed?: boolean;
  /** map<K, V>: the key's and the value's kinds. */
  map?: { key: Kind; value: Kind; valuePlan?: () => Plan; valueEnum?: Record<string, number> };
  sub?: () => Plan;
  enumValues?: Record<string, number>;
}

type Kind = "string" | "bool" | "int32" | "uint32" | "int64" | "uint64" | "enum" | "message";

const SCALARS = new Set(["string", "bool", "int32", "uint32", "int64", "uint64"]);

class Unsupported extends Error {}

/** Growable output; a length-delimited part is written in place (begin/end). */
class Out {
  buf = new Uint8Array(512);
  at = 0;

  room(n: number) {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.at));
    this.buf = b;
  }

  varint(v: number) {
    // 0 ≤ v < 2^53 here (negatives go through varint64).
    this.room(10);
    while (v > 0x7f) {
      this.buf[this.at++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.at++] = v;
  }

  varint64(v: bigint) {
    let u = BigInt.asUintN(64, v);
    this.room(10);
    while (u > 0x7fn) {
      this.buf[this.at++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.at++] = Number(u);
  }

  /** Starts a length-delimited part: one octet kept for its length. */
  begin(): number {
    this.room(1);
    return this.at++;
  }

  /** Ends the part `begin` started: its length written, the part moved when it takes more octets. */
  end(start: number) {
    const len = this.at - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      return;
    }
    let k = 1;
    for (let v = len; v > 0x7f; v = Math.floor(v / 128)) k++;
    this.room(k - 1);
    this.buf.copyWithin(start + k, start + 1, this.at);
    this.at += k - 1;
    let v = len;
    let i = start;
    while (v > 0x7f) {
      this.buf[i++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[i] = v;
  }

  string(s: string) {
    const start = this.begin();
    if (s.length <= 24) {
      this.room(s.length);
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        this.buf[this.at++] = c;
      }
      if (i === s.length) return this.end(start);
      this.at = start + 1; // not ASCII: as below
    }
    // A UTF-8 string is at most three octets per UTF-16 unit.
    this.room(s.length * 3);
    this.at += ENCODER.encodeInto(s, this.buf.subarray(this.at)).written;
    this.end(start);
  }
}

const ENCODER = new TextEncoder();

/** An int64 as protobufjs's fromObject takes it: a decimal string, a number, or a Long. */
function int64Of(v: unknown): bigint | number {
  if (typeof v === "string") {
    // Short decimal strings are exact as numbers; long ones go through BigInt.
    if (v.length < 16 && /^-?\d+$/.test(v)) return Number(v);
    return BigInt(v);
  }
  if (typeof v === "number") return Math.trunc(v);
  if (typeof v === "bigint") return v;
  if (v && typeof v === "object" && "low" in v && "high" in v) {
    const l = v as { low: number; high: number };
    return (BigInt(l.high | 0) << 32n) | BigInt(l.low >>> 0);
  }
  throw new Unsupported(`not an int64: ${String(v)}`);
}

function writeInt64(out: Out, v: unknown, unsigned: boolean) {
  const n = int64Of(v);
  if (typeof n === "number") {
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) return out.varint(n);
    return out.varint64(BigInt(n));
  }
  out.varint64(unsigned ? BigInt.asUintN(64, n) : n);
}

/** Writes a scalar's value (no tag). */
function writeScalar(out: Out, kind: Kind, v: unknown, enumValues?: Record<string, number>) {
  switch (kind) {
    case "string":
      return out.string(String(v));
    case "bool":
      return out.varint(v ? 1 : 0);
    case "int32": {
      const n = Number(v) | 0;
      return n >= 0 ? out.varint(n) : out.varint64(BigInt(n));
    }
    case "uint32":
      return out.varint(Number(v) >>> 0);
    case "int64":
      return writeInt64(out, v, false);
    case "uint64":
      return writeInt64(out, v, true);
    case "enum": {
      const n = typeof v === "number" ? v : enumValues![v as string];
      return n >= 0 ? out.varint(n) : out.varint64(BigInt(n));
    }
  }
}

/** The enum value protobufjs's fromObject keeps: a number, a known name, else none. */
function enumOf(v: unknown, values: Record<string, number>): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string" && Object.hasOwn(values, v)) return values[v];
  return undefined;
}

const WIRE: Record<Kind, number> = {
  string: 2,
  bool: 0,
  int32: 0,
  uint32: 0,
  int64: 0,
  uint64: 0,
  enum: 0,
  message: 2,
};

function writeMessage(out: Out, plan: Plan, o: Record<string, unknown>) {
  for (const f of plan) {
    const v = o[f.name];
    if (v === null || v === undefined) continue;
    if (f.map) {
      if (typeof v !== "object") throw new Unsupported(`${f.name}: not an object`);
      const m = v as Record<string, unknown>;
      const keys = Object.keys(m);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        const val = m[k];
        out.varint((f.tag << 3) | 2);
        const entry = out.begin();
        out.varint((1 << 3) | WIRE[f.map.key]);
        writeScalar(out, f.map.key, k);
        if (f.map.value === "message") {
          if (typeof val !== "object" || val === null) {
            throw new Unsupported(`${f.name}: not an object`);
          }
          out.varint((2 << 3) | 2);
          const sub = out.begin();
          writeMessage(out, f.map.valuePlan!(), val as Record<string, unknown>);
          out.end(sub);
        } else {
          const e = f.map.value === "enum" ? enumOf(val, f.map.valueEnum!) : val;
          out.varint((2 << 3) | WIRE[f.map.value]);
          writeScalar(out, f.map.value, e ?? 0, f.map.valueEnum);
        }
        out.end(entry);
      }
      continue;
    }
    if (f.repeated) {
      if (!Array.isArray(v)) throw new Unsupported(`${f.name}: not an array`);
      if (v.length === 0) continue;
      if (f.kind === "message") {
        for (const item of v) writeSub(out, f, item);
      } else if (f.kind === "string") {
        for (const item of v) {
          out.varint((f.tag << 3) | 2);
          out.string(String(item));
        }
      } else if (!f.packed) {
        for (const item of v) {
          const x = f.kind === "enum" ? enumOf(item, f.enumValues!) ?? 0 : item;
          out.varint((f.tag << 3) | WIRE[f.kind]);
          writeScalar(out, f.kind, x, f.enumValues);
        }
      } else {
        out.varint((f.tag << 3) | 2);
        const packed = out.begin();
        for (const item of v) {
          const x = f.kind === "enum" ? enumOf(item, f.enumValues!) ?? 0 : item;
          writeScalar(out, f.kind, x, f.enumValues);
        }
        out.end(packed);
      }
      continue;
    }
    if (f.kind === "message") {
      writeSub(out, f, v);
      continue;
    }
    if (f.kind === "enum") {
      const n = enumOf(v, f.enumValues!);
      if (n === undefined) continue;
      out.varint(f.tag << 3);
      writeScalar(out, "enum", n);
      continue;
    }
    out.varint((f.tag << 3) | WIRE[f.kind]);
    writeScalar(out, f.kind, v);
  }
}

function writeSub(out: Out, f: FieldPlan, v: unknown) {
  if (typeof v !== "object" || v === null) throw new Unsupported(`${f.name}: not an object`);
  out.varint((f.tag << 3) | 2);
  const sub = out.begin();
  writeMessage(out, f.sub!(), v as Record<string, unknown>);
  out.end(sub);
}

const plans = new WeakMap<protobuf.Type, Plan>();

function kindOf(
  field: { name: string; parent: protobuf.Namespace | null },
  type: string,
): { kind: Kind; enumValues?: Record<string, number> } {
  if (SCALARS.has(type)) return { kind: type as Kind };
  const rt = field.parent!.lookup(type);
  if (rt && "values" in rt && !("fields" in rt)) {
    return { kind: "enum", enumValues: (rt as protobuf.Enum).values };
  }
  if (rt && "fieldsArray" in rt) return { kind: "message" };
  throw new Unsupported(`${field.name}: ${type} is not taken here`);
}

/**
 * `type`'s plan, with those of the types it holds, made into `made` (kept
 * in `plans` by the caller only once all of them could be made).
 */
function planOf(type: protobuf.Type, made: Map<protobuf.Type, Plan>): Plan {
  const kept = plans.get(type) ?? made.get(type);
  if (kept) return kept;
  const plan: Plan = [];
  made.set(type, plan); // a recursive type finds itself
  // protobufjs writes fields by number, not as declared.
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    field.resolve();
    if (field instanceof Object && "keyType" in field) {
      const mf = field as unknown as protobuf.MapField;
      const key = kindOf(mf, mf.keyType);
      const value = kindOf(mf, mf.type);
      const valueType = value.kind === "message" ? mf.resolvedType as protobuf.Type : undefined;
      const valuePlan = valueType ? planOf(valueType, made) : undefined;
      plan.push({
        name: field.name,
        tag: field.id,
        kind: "message",
        repeated: false,
        map: {
          key: key.kind,
          value: value.kind,
          valuePlan: valuePlan ? () => valuePlan : undefined,
          valueEnum: value.enumValues,
        },
      });
      continue;
    }
    const { kind, enumValues } = kindOf(field, field.type);
    const subType = kind === "message" ? field.resolvedType as protobuf.Type : undefined;
    const subPlan = subType ? planOf(subType, made) : undefined;
    plan.push({
      name: field.name,
      tag: field.id,
      kind,
      repeated: field.repeated,
      packed: field.packed,
      enumValues,
      sub: subPlan ? () => subPlan : undefined,
    });
  }
  return plan;
}

/**
 * An encoder for `type`'s plain objects, or undefined when the type (or one
 * it holds) has a field kind this encoder does not take. The encoder throws
 * on a value of the wrong shape where protobufjs would too (a message field
 * that is not an object, a repeated field that is not an array).
 */
export function fastEncoder(
  type: protobuf.Type,
): ((o: Record<string, unknown>) => Uint8Array) | undefined {
  let plan: Plan;
  const made = new Map<protobuf.Type, Plan>();
  try {
    plan = planOf(type, made);
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
  for (const [t, p] of made) plans.set(t, p);
  return (o) => {
    const out = new Out();
    writeMessage(out, plan, o);
    return out.buf.slice(0, out.at);
  };
}
