/**
 * compose's merge rules: a later file over an earlier one, a service over the
 * one it `extends`, with the `!reset` and `!override` tags.
 */
import { isMap, isScalar, isSeq } from "../yaml.ts";
import type { PathSegment, SourceDoc } from "../source.ts";
import type { RawService } from "./schema.ts";
import type { Tags } from "./types.ts";
import { dependsMap, envMap, isObj, networksMap } from "./values.ts";

/**
 * Collects the `!reset` and `!override` tags of a document (compose's merge
 * tags) and drops the `!reset` values from its plain value: the value given
 * there is ignored, the key goes back to its default.
 */
export function collectTags(src: SourceDoc): Tags {
  const tags: Tags = { reset: [], override: [] };
  const walk = (node: unknown, path: PathSegment[]) => {
    if (!node || typeof node !== "object") return;
    const tag = (node as { tag?: string }).tag;
    if (tag === "!reset") {
      tags.reset.push(path);
      return;
    }
    if (tag === "!override") tags.override.push(path);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key)) walk(pair.value, [...path, String(pair.key.value)]);
      }
    } else if (isSeq(node)) node.items.forEach((it, i) => walk(it, [...path, i]));
  };
  walk(src.doc.contents, []);
  // Last first, so that list indexes stay right while elements are removed.
  for (const p of [...tags.reset].reverse()) deleteIn(src.value, p);
  return tags;
}

/** Removes the value at `path` (a map key or a list element), if there is one. */
export function deleteIn(root: unknown, path: readonly PathSegment[]): void {
  if (path.length === 0) return;
  let node = root;
  for (const seg of path.slice(0, -1)) {
    if (!node || typeof node !== "object") return;
    node = (node as Record<string, unknown>)[seg as string];
  }
  const last = path[path.length - 1];
  if (Array.isArray(node) && typeof last === "number") node.splice(last, 1);
  else if (isObj(node)) delete node[String(last)];
}

/** The tags below `prefix`, with paths relative to it. */
export function tagsUnder(tags: Tags, prefix: readonly PathSegment[]): Tags {
  const under = (ps: PathSegment[][]) =>
    ps.filter((p) => p.length > prefix.length && prefix.every((x, i) => p[i] === x))
      .map((p) => p.slice(prefix.length));
  return { reset: under(tags.reset), override: under(tags.override) };
}

/** Lists merged by a unique key (compose's merge rules): a later entry replaces an earlier one. */
function portKey(p: unknown): string {
  if (isObj(p)) {
    return `${p.host_ip ?? ""}|${p.published ?? ""}|${p.target}|${p.protocol ?? "tcp"}`;
  }
  const [main, proto = "tcp"] = String(p).split("/");
  const parts = main.split(":");
  const target = parts.pop();
  const published = parts.pop() ?? "";
  return `${parts.join(":")}|${published}|${target}|${proto}`;
}

function volumeKey(x: unknown): string {
  if (isObj(x)) return String(x.target);
  const parts = String(x).split(":");
  return parts.length === 1 ? parts[0] : parts[1];
}

function fileRefKey(kind: "secrets" | "configs") {
  return (x: unknown): string => {
    const source = isObj(x) ? String(x.source) : String(x);
    const target = isObj(x) && x.target !== undefined ? String(x.target) : undefined;
    // As the mount is made: a relative target is below /run/secrets.
    if (target !== undefined) return target.startsWith("/") ? target : `/run/secrets/${target}`;
    return kind === "secrets" ? `/run/secrets/${source}` : `/${source}`;
  };
}

function tmpfsKey(x: unknown): string {
  return String(x).split(":")[0];
}

function mergeByKey(a: unknown[], b: unknown[], key: (x: unknown) => string): unknown[] {
  const later = new Set(b.map(key));
  return [...a.filter((x) => !later.has(key(x))), ...b];
}

const BY_KEY: Record<string, (x: unknown) => string> = {
  ports: portKey,
  volumes: volumeKey,
  secrets: fileRefKey("secrets"),
  configs: fileRefKey("configs"),
  tmpfs: tmpfsKey,
};

/** Keys whose list form is `KEY=VALUE` (or a bare name) and whose map form merges by key. */
const MAP_LIKE = new Set(["environment", "labels", "sysctls"]);

/** A sequence or mapping value of a service that merges by key, as a mapping. */
function normalizeKey(k: string, v: unknown): unknown {
  if (MAP_LIKE.has(k) && Array.isArray(v)) return envMap(v as string[]);
  if (k === "networks" && Array.isArray(v)) return networksMap(v as string[]);
  if (k === "depends_on" && Array.isArray(v)) return dependsMap(v as string[]);
  return v;
}

/** Values that the later file replaces whole (compose: shell commands, healthcheck test). */
const REPLACED = new Set(["command", "entrypoint", "healthcheck.test", "extends"]);

/** compose's merge of two values at `path` (below a service or a top-level resource). */
export function mergeValue(path: string, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (REPLACED.has(path)) return b;
  if (isObj(a) && isObj(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) {
      out[k] = k in out ? mergeValue(path ? `${path}.${k}` : k, out[k], v) : v;
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const key = BY_KEY[path];
    if (key) return mergeByKey(a, b, key);
    // Other sequences append, without repeating a scalar already there.
    return [...a, ...b.filter((x) => isObj(x) || Array.isArray(x) || !a.includes(x))];
  }
  return b;
}

/**
 * Merges a service definition over another, compose's way (a later file over
 * an earlier one, a service over the one it `extends`): mappings merge by
 * key, ports/volumes/secrets/configs by their unique key, other sequences
 * append, command/entrypoint/healthcheck.test are replaced. The later one's
 * `!reset` and `!override` paths (relative to the service) drop the earlier
 * value first.
 */
export function mergeService(
  a: RawService,
  b: RawService,
  tags: Tags = { reset: [], override: [] },
) {
  const base: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(structuredClone(a))) base[k] = normalizeKey(k, v);
  for (const p of [...tags.reset, ...tags.override]) {
    if (typeof p[0] === "string" && p.length > 1) {
      base[p[0]] = normalizeKey(p[0], base[p[0]]);
    }
    deleteIn(base, p);
  }
  const later: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(b)) {
    if (v !== undefined) later[k] = k in base ? normalizeKey(k, v) : v;
  }
  return mergeValue("", base, later) as RawService;
}
