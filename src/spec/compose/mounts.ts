/** A service's mounts: `volumes` (binds, named, anonymous, tmpfs) and `tmpfs`. */
import type { PathSegment } from "../source.ts";
import { joinPath } from "../paths.ts";
import type { Located } from "./located.ts";
import type { RawService } from "./schema.ts";
import type { ComposeMount } from "./types.ts";
import { dockerBytes } from "./values.ts";

export function parseVolumes(
  L: Located,
  svc: string,
  raw: NonNullable<RawService["volumes"]>,
  dir: string,
  declared: Set<string>,
  env: Record<string, string | undefined>,
): ComposeMount[] {
  return raw.map((v, i): ComposeMount => {
    const where: PathSegment[] = ["services", svc, "volumes", i];
    let source: string | undefined,
      target: string,
      readOnly = false,
      createHostPath = true, // docker compose makes a missing bind source for the short syntax
      type: "bind" | "volume" | "tmpfs" | undefined;
    if (typeof v === "string") {
      const parts = v.split(":");
      if (parts.length === 1) [target] = parts;
      else {
        [source, target] = parts;
        const mode = parts[2] ?? "";
        if (parts.length > 3 || !/^(ro|rw|z|Z|ro,z|ro,Z|rw,z|rw,Z|)$/.test(mode)) {
          throw L.error(where, `volume ${JSON.stringify(v)} must look like "SOURCE:TARGET[:ro]"`);
        }
        readOnly = mode.startsWith("ro");
      }
      type = source === undefined ? undefined : /^[./~]/.test(source) ? "bind" : "volume";
    } else {
      source = v.source;
      target = v.target;
      readOnly = v.read_only ?? false;
      type = v.type;
      createHostPath = v.bind?.create_host_path ?? false;
      if (type === "tmpfs") {
        if (!v.target.startsWith("/")) {
          throw L.error(where, `target ${JSON.stringify(v.target)} must be an absolute path`);
        }
        const options = ["nosuid", "nodev"];
        if (v.tmpfs?.size !== undefined) {
          options.push(`size=${tmpfsBytes(L, [...where, "tmpfs", "size"], v.tmpfs.size)}`);
        }
        if (v.tmpfs?.mode !== undefined) options.push(`mode=${v.tmpfs.mode.toString(8)}`);
        return { kind: "tmpfs", source: "", target: v.target, readOnly, options };
      }
    }
    if (!target.startsWith("/")) {
      throw L.error(where, `target ${JSON.stringify(target)} must be an absolute path`);
    }
    if (source === undefined) return { kind: "anonymous", source: "", target, readOnly };
    if (type === "bind") {
      const home = env.HOME ?? "/root";
      return {
        kind: "bind",
        source: joinPath(dir, source.startsWith("~") ? home + source.slice(1) : source),
        target,
        readOnly,
        createHostPath,
        loc: L.at(where),
      };
    }
    if (!declared.has(source)) {
      throw L.error(
        where,
        `volume ${JSON.stringify(source)} is not declared in the top-level volumes`,
      );
    }
    return {
      kind: "volume",
      source,
      target,
      readOnly,
      ...(typeof v !== "string" && v.volume?.nocopy ? { nocopy: true } : {}),
    };
  });
}

/** A tmpfs size (`64m`, `1g`, bytes) as a number of bytes, at least 1. */
function tmpfsBytes(L: Located, where: PathSegment[], v: string | number): string {
  let bytes: string;
  try {
    bytes = dockerBytes(v);
  } catch (e) {
    throw L.error(where, (e as Error).message);
  }
  if (!/^[1-9]\d*$/.test(bytes)) throw L.error(where, `size ${JSON.stringify(v)} must be above 0`);
  return bytes;
}

/**
 * Service `tmpfs`: `PATH` or `PATH:OPTIONS` (docker's `--tmpfs`), mounted
 * rw,noexec,nosuid,nodev unless the options say otherwise. Options are a
 * fixed set: they become mount(2) data, never free text.
 */
export function parseTmpfs(
  L: Located,
  svc: string,
  raw: string | string[] | undefined,
): ComposeMount[] {
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((entry, i): ComposeMount => {
    const where: PathSegment[] = ["services", svc, "tmpfs", ...(Array.isArray(raw) ? [i] : [])];
    const colon = entry.indexOf(":");
    const target = colon < 0 ? entry : entry.slice(0, colon);
    const opts = colon < 0 ? [] : entry.slice(colon + 1).split(",").filter(Boolean);
    if (!target.startsWith("/") || target.split("/").includes("..")) {
      throw L.error(where, `tmpfs target ${JSON.stringify(target)} must be an absolute path`);
    }
    const { options, readOnly } = tmpfsOptions(L, where, opts, ["noexec", "nosuid", "nodev"]);
    return { kind: "tmpfs", source: "", target, readOnly, options };
  });
}

/**
 * tmpfs mount options as docker reads them (`--tmpfs`, a local volume's
 * `driver_opts.o`): a fixed set, turned into mount(2) data, never free text.
 * `defaults`: the flags set unless an option clears them.
 */
export function tmpfsOptions(
  L: Located,
  where: PathSegment[],
  opts: string[],
  defaults: string[],
): { options: string[]; readOnly: boolean } {
  const flags = new Map([["exec", "noexec"], ["suid", "nosuid"], ["dev", "nodev"]]);
  const set = new Set(defaults);
  const values: string[] = [];
  let readOnly = false;
  for (const o of opts) {
    const [k, v] = o.includes("=")
      ? [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)]
      : [o];
    if (v === undefined && flags.has(k)) set.delete(flags.get(k)!);
    else if (v === undefined && [...flags.values()].includes(k)) set.add(k);
    else if (v === undefined && (k === "ro" || k === "rw")) readOnly = k === "ro";
    else if (k === "size" && v) values.push(`size=${tmpfsBytes(L, where, v)}`);
    else if (k === "mode" && v && /^[0-7]{1,4}$/.test(v)) values.push(`mode=${v}`);
    else if ((k === "uid" || k === "gid") && v && /^\d{1,10}$/.test(v)) values.push(`${k}=${v}`);
    else {
      throw L.error(
        where,
        `tmpfs option ${
          JSON.stringify(o)
        } must be size=SIZE, mode=OCTAL, uid=N, gid=N, ro, rw, exec, noexec, suid, nosuid, dev or nodev`,
      );
    }
  }
  return { options: [...set, ...values], readOnly };
}
