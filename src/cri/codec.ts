/**
 * The CRI's protobuf coding, from a descriptor of api.proto made ahead of
 * time (src/cri/proto/api.json, written by src/cri/proto/reference.ts from
 * protobufjs's reading of the proto). The daemon so never loads protobufjs:
 * an npm package, whose loading starts Deno's npm and Node layers, and its
 * parsed proto cost an idle daemon some 4-6 MB of its RSS.
 *
 * Messages are plain objects with the proto's field names, as protobufjs
 * made them before (src/cri/codec_test.ts checks both ways against it):
 *
 * - decode: every field present in the answer (defaults: "", 0, false, "0"
 *   for 64-bit integers, the enum's name for 0, null for a message, [] and
 *   {} for repeated fields and maps), 64-bit integers as decimal strings,
 *   enums as names (a number the proto does not name stays a number), bytes
 *   as Uint8Array;
 * - encode: the same octets as protobufjs's `encode(fromObject(o))`: fields
 *   by number, a field written whenever its value is neither null nor
 *   undefined (zeros and empty strings too), maps as entries, repeated
 *   numbers packed or not as protobufjs reads the proto; int64 from a
 *   decimal string, a number or a Long; enums from a name or a number (an
 *   unknown name: not written).
 */
import api from "./proto/api.json" with { type: "json" };

export type Message = Record<string, unknown>;

type Kind =
  | "string"
  | "bool"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "bytes"
  | "double"
  | "enum"
  | "message"
  | "map";

interface Field {
  name: string;
  id: number;
  kind: Kind;
  repeated: boolean;
  packed: boolean;
  /** enum: value by name, and name by value. */
  values?: Record<string, number>;
  names?: Map<number, string>;
  /** message: its type's full name. */
  type?: string;
  /** map: the key's kind and field (number 1 of the entry), and the value's (number 2). */
  key?: Kind;
  keyField?: Field;
  value?: Field;
}

interface Type {
  name: string;
  fields: Field[];
  byId: Map<number, Field>;
}

const REPEATED = 1;
const PACKED = 2;

const desc = api as unknown as {
  types: Record<string, [string, number, string, number][]>;
  enums: Record<string, Record<string, number>>;
  services: Record<string, Record<string, [string, string, boolean]>>;
};

const types = new Map<string, Type>();
const enumNames = new Map<string, Map<number, string>>();

function fieldOf(name: string, id: number, type: string, flags: number): Field {
  const f: Field = {
    name,
    id,
    kind: type as Kind,
    repeated: (flags & REPEATED) !== 0,
    packed: (flags & PACKED) !== 0,
  };
  if (type.startsWith("enum:")) {
    const e = type.slice(5);
    f.kind = "enum";
    f.values = desc.enums[e];
    let names = enumNames.get(e);
    if (!names) {
      // The first name of a value, as protobufjs's valuesById keeps it.
      names = new Map();
      for (const [n, v] of Object.entries(f.values)) if (!names.has(v)) names.set(v, n);
      enumNames.set(e, names);
    }
    f.names = names;
  } else if (type.startsWith("message:")) {
    f.kind = "message";
    f.type = type.slice(8);
  } else if (type.startsWith("map:")) {
    const [, key, ...value] = type.split(":");
    f.kind = "map";
    f.key = key as Kind;
    f.keyField = fieldOf("key", 1, key, 0);
    f.value = fieldOf("value", 2, value.join(":"), 0);
  }
  return f;
}

/** The type `name` ("runtime.v1.ContainerStatus"), made from the descriptor on first use. */
export function typeOf(name: string): Type {
  let t = types.get(name);
  if (t) return t;
  const fields = desc.types[name];
  if (!fields) throw new Error(`no message type ${name}`);
  t = { name, fields: fields.map((f) => fieldOf(...f)), byId: new Map() };
  for (const f of t.fields) t.byId.set(f.id, f);
  types.set(name, t);
  return t;
}

/** The services' methods: [request type, response type, server streaming], by service and name. */
export function services(): Record<string, Record<string, [string, string, boolean]>> {
  return desc.services;
}

// ---- encoding ----

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

  double(v: number) {
    this.room(8);
    new DataView(this.buf.buffer).setFloat64(this.at, v, true);
    this.at += 8;
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

  bytes(b: Uint8Array) {
    const start = this.begin();
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
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
  throw new TypeError(`not an int64: ${String(v)}`);
}

function writeInt64(out: Out, v: unknown) {
  const n = int64Of(v);
  if (typeof n === "number") {
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) return out.varint(n);
    return out.varint64(BigInt(n));
  }
  out.varint64(n);
}

/** bytes as fromObject takes them: octets, or base64 text. */
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return Uint8Array.from(atob(v), (c) => c.charCodeAt(0));
  if (Array.isArray(v)) return Uint8Array.from(v as number[]);
  throw new TypeError(`not bytes: ${typeof v}`);
}

const WIRE: Record<Kind, number> = {
  string: 2,
  bool: 0,
  int32: 0,
  uint32: 0,
  int64: 0,
  uint64: 0,
  bytes: 2,
  double: 1,
  enum: 0,
  message: 2,
  map: 2,
};

/** The enum value protobufjs's fromObject keeps: a number, a known name, else none. */
function enumOf(v: unknown, values: Record<string, number>): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string" && Object.hasOwn(values, v)) return values[v];
  return undefined;
}

/** A value of a non-message kind, without its tag. */
function writeValue(out: Out, f: Field, v: unknown) {
  switch (f.kind) {
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
    case "uint64":
      return writeInt64(out, v);
    case "double":
      return out.double(Number(v));
    case "bytes":
      return out.bytes(bytesOf(v));
    case "enum": {
      const n = v as number;
      return n >= 0 ? out.varint(n) : out.varint64(BigInt(n));
    }
  }
}

function writeMessage(out: Out, t: Type, o: Message) {
  if (typeof o !== "object" || o === null) throw new TypeError(`${t.name}: not an object`);
  for (const f of t.fields) {
    const v = o[f.name];
    if (v === null || v === undefined) continue;
    if (f.kind === "map") {
      if (typeof v !== "object") throw new TypeError(`${f.name}: not an object`);
      const m = v as Message;
      const keys = Object.keys(m);
      const vf = f.value!;
      for (let i = 0; i < keys.length; i++) {
        out.varint((f.id << 3) | 2);
        const entry = out.begin();
        out.varint((1 << 3) | WIRE[f.key!]);
        writeValue(out, f.keyField!, keys[i]);
        const val = m[keys[i]];
        if (vf.kind === "message") {
          out.varint((2 << 3) | 2);
          const sub = out.begin();
          writeMessage(out, typeOf(vf.type!), val as Message);
          out.end(sub);
        } else {
          out.varint((2 << 3) | WIRE[vf.kind]);
          writeValue(out, vf, vf.kind === "enum" ? enumOf(val, vf.values!) ?? 0 : val);
        }
        out.end(entry);
      }
      continue;
    }
    if (f.repeated) {
      if (!Array.isArray(v)) throw new TypeError(`${f.name}: not an array`);
      if (v.length === 0) continue;
      if (f.kind === "message") {
        for (const item of v) writeSub(out, f, item);
      } else if (f.packed && WIRE[f.kind] !== 2) {
        out.varint((f.id << 3) | 2);
        const packed = out.begin();
        for (const item of v) {
          writeValue(out, f, f.kind === "enum" ? enumOf(item, f.values!) ?? 0 : item);
        }
        out.end(packed);
      } else {
        for (const item of v) {
          out.varint((f.id << 3) | WIRE[f.kind]);
          writeValue(out, f, f.kind === "enum" ? enumOf(item, f.values!) ?? 0 : item);
        }
      }
      continue;
    }
    if (f.kind === "message") {
      writeSub(out, f, v);
      continue;
    }
    if (f.kind === "enum") {
      const n = enumOf(v, f.values!);
      if (n === undefined) continue;
      out.varint(f.id << 3);
      writeValue(out, f, n);
      continue;
    }
    out.varint((f.id << 3) | WIRE[f.kind]);
    writeValue(out, f, v);
  }
}

function writeSub(out: Out, f: Field, v: unknown) {
  if (typeof v !== "object" || v === null) throw new TypeError(`${f.name}: not an object`);
  out.varint((f.id << 3) | 2);
  const sub = out.begin();
  writeMessage(out, typeOf(f.type!), v as Message);
  out.end(sub);
}

/** `o` encoded as the message type `type` (a full name). */
export function encode(type: string, o: Message): Uint8Array {
  const out = new Out();
  writeMessage(out, typeOf(type), o);
  return out.buf.slice(0, out.at);
}

// ---- decoding ----

export class DecodeError extends Error {}

class In {
  at = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(end: number): number {
    // Up to 2^49 exactly (tags and lengths); the rest of a longer varint is read and dropped.
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= end) throw new DecodeError("truncated varint");
      const b = this.buf[this.at++];
      if (i < 7) v += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) return v;
    }
    throw new DecodeError("varint longer than 10 octets");
  }

  varint64(end: number): bigint {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.at >= end) throw new DecodeError("truncated varint");
      const b = this.buf[this.at++];
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) return BigInt.asUintN(64, v);
    }
    throw new DecodeError("varint longer than 10 octets");
  }

  /** The low 32 bits of a varint (int32 and enums may be sent as 10 octets), as protobufjs reads them. */
  varint32(end: number): number {
    let v = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= end) throw new DecodeError("truncated varint");
      const b = this.buf[this.at++];
      if (i < 5) v |= (b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return v;
    }
    throw new DecodeError("varint longer than 10 octets");
  }

  /** A length-delimited part's end (its octets start at `at`). */
  sub(end: number): number {
    const len = this.varint(end);
    if (this.at + len > end) throw new DecodeError("length beyond the message");
    return this.at + len;
  }

  skip(wire: number, end: number) {
    switch (wire) {
      case 0:
        this.varint32(end);
        return;
      case 1:
        this.at += 8;
        break;
      case 2:
        this.at += this.varint(end);
        break;
      case 5:
        this.at += 4;
        break;
      default:
        throw new DecodeError(`wire type ${wire} is not taken`);
    }
    if (this.at > end) throw new DecodeError("field beyond the message");
  }

  /** UTF-8 text up to `end`: short ASCII built here, the rest by TextDecoder. */
  text(end: number): string {
    const n = end - this.at;
    if (n <= 32) {
      let s = "";
      let i = this.at;
      for (; i < end; i++) {
        const c = this.buf[i];
        if (c > 0x7f) break;
        s += String.fromCharCode(c);
      }
      if (i === end) {
        this.at = end;
        return s;
      }
    }
    const s = DECODER.decode(this.buf.subarray(this.at, end));
    this.at = end;
    return s;
  }
}

const DECODER = new TextDecoder();

function defaultOf(f: Field): unknown {
  switch (f.kind) {
    case "string":
      return "";
    case "bool":
      return false;
    case "int32":
    case "uint32":
    case "double":
      return 0;
    case "int64":
    case "uint64":
      return "0";
    case "bytes":
      return new Uint8Array(0);
    case "enum":
      return f.names!.get(0) ?? 0;
    case "message":
      return null;
  }
}

function readValue(r: In, f: Field, end: number): unknown {
  switch (f.kind) {
    case "string":
      return r.text(r.sub(end));
    case "bytes": {
      const e = r.sub(end);
      const b = r.buf.slice(r.at, e);
      r.at = e;
      return b;
    }
    case "bool":
      return r.varint32(end) !== 0;
    case "int32":
      return r.varint32(end) | 0;
    case "uint32":
      return r.varint32(end) >>> 0;
    case "int64":
      return BigInt.asIntN(64, r.varint64(end)).toString();
    case "uint64":
      return r.varint64(end).toString();
    case "double": {
      if (r.at + 8 > end) throw new DecodeError("truncated double");
      const v = new DataView(r.buf.buffer, r.buf.byteOffset).getFloat64(r.at, true);
      r.at += 8;
      return v;
    }
    case "enum": {
      const n = r.varint32(end) | 0;
      return f.names!.get(n) ?? n;
    }
    case "message":
      return readMessage(r, typeOf(f.type!), r.sub(end));
  }
}

function readMessage(r: In, t: Type, end: number): Message {
  const o: Message = {};
  for (const f of t.fields) {
    o[f.name] = f.kind === "map" ? {} : f.repeated ? [] : defaultOf(f);
  }
  while (r.at < end) {
    const tag = r.varint(end);
    const id = Math.floor(tag / 8);
    const wire = tag & 7;
    const f = t.byId.get(id);
    if (!f) {
      r.skip(wire, end);
      continue;
    }
    if (f.kind === "map") {
      if (wire !== 2) throw new DecodeError(`${t.name}.${f.name}: wire type ${wire}`);
      const e = r.sub(end);
      let key: unknown = defaultOf(f.keyField!);
      let value: unknown = defaultOf(f.value!);
      while (r.at < e) {
        const et = r.varint(e);
        if (et === ((1 << 3) | WIRE[f.key!])) key = readValue(r, f.keyField!, e);
        else if (et === ((2 << 3) | WIRE[f.value!.kind])) value = readValue(r, f.value!, e);
        else r.skip(et & 7, e);
      }
      (o[f.name] as Message)[String(key)] = value;
      continue;
    }
    if (f.repeated) {
      const list = o[f.name] as unknown[];
      if (wire === 2 && WIRE[f.kind] !== 2) {
        const e = r.sub(end);
        while (r.at < e) list.push(readValue(r, f, e));
      } else if (wire === WIRE[f.kind]) list.push(readValue(r, f, end));
      else throw new DecodeError(`${t.name}.${f.name}: wire type ${wire}`);
      continue;
    }
    if (wire !== WIRE[f.kind]) throw new DecodeError(`${t.name}.${f.name}: wire type ${wire}`);
    o[f.name] = readValue(r, f, end);
  }
  if (r.at !== end) throw new DecodeError("field beyond the message");
  return o;
}

/** `bytes` decoded as the message type `type` (a full name). */
export function decode(type: string, bytes: Uint8Array): Message {
  return readMessage(new In(bytes), typeOf(type), bytes.length);
}
