/**
 * The CRI's proto as protobufjs parses it: the reference the codec
 * (src/cri/codec.ts) is made from and checked against, for the generator
 * below and the unit tests. The daemon does not load this module: protobufjs
 * (an npm package, which starts Deno's npm and Node layers) and its parsed
 * proto cost an idle daemon some 4-6 MB.
 *
 * `deno run -A src/cri/proto/reference.ts` writes src/cri/proto/api.json,
 * the descriptor the codec reads, from api.proto (run it when api.proto
 * changes; src/cri/codec_test.ts fails while they differ).
 */
import protobuf from "protobufjs";
import protoText from "./api.proto" with { type: "text" };

let parsed: protobuf.Root | undefined;

/** The parsed proto (parsed once; about 20 ms). */
export function criRoot(): protobuf.Root {
  return parsed ??= protobuf.parse(protoText, { keepCase: true }).root;
}

/** A field: [name, number, type, flags]; see src/cri/codec.ts. */
export type FieldDesc = [name: string, id: number, type: string, flags: number];

export interface Descriptor {
  /** Message types by full name, their fields by number. */
  types: Record<string, FieldDesc[]>;
  /** Enums by full name: value by name. */
  enums: Record<string, Record<string, number>>;
  /** Per service, per method: [request type, response type, server streaming]. */
  services: Record<string, Record<string, [string, string, boolean]>>;
}

export const REPEATED = 1;
export const PACKED = 2;

const SCALARS = new Set([
  "string",
  "bool",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "bytes",
  "double",
]);

/** The descriptor of the proto as protobufjs reads it (fields, packing and all). */
export function descriptor(root = criRoot()): Descriptor {
  const out: Descriptor = { types: {}, enums: {}, services: {} };
  const typeName = (field: protobuf.Field, type: string): string => {
    if (SCALARS.has(type)) return type;
    const rt = field.parent!.lookup(type);
    if (!rt) throw new Error(`${field.fullName}: no type ${type}`);
    const full = rt.fullName.replace(/^\./, "");
    if (rt instanceof protobuf.Enum) return `enum:${full}`;
    if (rt instanceof protobuf.Type) return `message:${full}`;
    throw new Error(`${field.fullName}: ${type} is neither a message nor an enum`);
  };
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      const full = obj.fullName.replace(/^\./, "");
      if (obj instanceof protobuf.Type) {
        const fields: FieldDesc[] = [];
        for (const f of [...obj.fieldsArray].sort((a, b) => a.id - b.id)) {
          f.resolve();
          if (f instanceof protobuf.MapField) {
            if (!SCALARS.has(f.keyType)) throw new Error(`${f.fullName}: map key ${f.keyType}`);
            fields.push([f.name, f.id, `map:${f.keyType}:${typeName(f, f.type)}`, 0]);
            continue;
          }
          if (!SCALARS.has(f.type) && !f.resolvedType) throw new Error(`${f.fullName}: unresolved`);
          const flags = (f.repeated ? REPEATED : 0) | (f.repeated && f.packed ? PACKED : 0);
          fields.push([f.name, f.id, typeName(f, f.type), flags]);
        }
        out.types[full] = fields;
      } else if (obj instanceof protobuf.Enum) {
        out.enums[full] = { ...obj.values };
      } else if (obj instanceof protobuf.Service) {
        const methods: Record<string, [string, string, boolean]> = {};
        for (const [name, m] of Object.entries(obj.methods)) {
          m.resolve();
          methods[name] = [
            m.resolvedRequestType!.fullName.replace(/^\./, ""),
            m.resolvedResponseType!.fullName.replace(/^\./, ""),
            !!m.responseStream,
          ];
        }
        out.services[obj.name] = methods;
      }
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) visit(obj);
    }
  };
  visit(root);
  return out;
}

if (import.meta.main) {
  const path = new URL("./api.json", import.meta.url).pathname;
  Deno.writeTextFileSync(path, JSON.stringify(descriptor()) + "\n");
  console.log(`wrote ${path}`);
}
