/**
 * YAML text → plain JS value, keeping every node's position, and zod
 * validation whose issues are reported as `file:line:col: path: message`.
 *
 * Unknown keys do not fail: schemas are strict, and each `unrecognized_keys`
 * issue becomes a warning with the key's own line, after which the key is
 * dropped and validation runs again.
 */
import {
  type Document,
  isMap,
  isScalar,
  LineCounter,
  parseAllDocuments,
  parseDocument,
  Scalar,
  visit,
  type YAMLMap,
} from "./yaml.ts";
import type * as z from "./zod.ts";
import { formatLocated, SpecError } from "../errors.ts";
import { escapeControl } from "./names.ts";

export type PathSegment = string | number;

/** One parsed YAML document of a file, with what is needed to locate its nodes. */
export interface SourceDoc {
  file: string;
  doc: Document;
  lines: LineCounter;
  value: unknown;
}

export interface Warning {
  file: string;
  line?: number;
  column?: number;
  path: string;
  message: string;
}

export function formatWarning(w: Warning): string {
  return formatLocated(w, w.path, w.message);
}

/** Parses every YAML document in `text`. Empty documents (a trailing `---`) are dropped. */
export function parseYamlDocuments(text: string, file: string): SourceDoc[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
    // `<<: *anchor` merge keys (YAML 1.1), which compose files' `x-` anchors rely on.
    merge: true,
  });
  if (!Array.isArray(docs)) {
    // An empty stream parses to an EmptyStream object.
    throw new SpecError({ file }, "Cannot parse YAML: the file is empty");
  }
  const out: SourceDoc[] = [];
  for (const doc of docs) {
    acceptEscapedApostrophe(doc, text);
    const err = doc.errors[0];
    if (err) {
      const pos = lines.linePos(err.pos[0]);
      const detail = err.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      throw new SpecError(
        { file, line: pos.line, column: pos.col },
        `Cannot parse YAML: ${detail}`,
      );
    }
    // An empty document (a trailing `---`, or only comments) holds nothing to run.
    let value: unknown;
    try {
      value = doc.contents === null ? null : doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      // The yaml library refuses alias expansion that would blow up ("billion laughs").
      const at = doc.contents?.range ? lines.linePos(doc.contents.range[0]) : undefined;
      throw new SpecError(
        { file, line: at?.line, column: at?.col },
        `Cannot load YAML: ${
          /alias/i.test((e as Error).message)
            ? "too many aliases expand here (more than 100); write the values out"
            : (e as Error).message
        }`,
      );
    }
    if (value === null || value === undefined) continue;
    out.push({ file, doc, lines, value });
  }
  if (out.length === 0) throw new SpecError({ file }, "Cannot parse YAML: the file is empty");
  return out;
}

/**
 * `\'` inside a double-quoted scalar is not a YAML 1.2 escape, but libyaml and
 * go-yaml (v2 under sigs.k8s.io/yaml, so the API server and kubectl; v3 under
 * compose-go) read it as `'`, and manifests published on kubernetes.io use it.
 * Accept exactly that one escape the same way: drop its BAD_DQ_ESCAPE errors
 * and decode the scalars again with `\'` written as `\x27`. Every other bad
 * escape stays an error.
 */
function acceptEscapedApostrophe(doc: Document, text: string): void {
  const isApostrophe = (e: { code: string; pos: [number, number] }) =>
    e.code === "BAD_DQ_ESCAPE" && text.slice(e.pos[0], e.pos[0] + 2) === "\\'";
  const at = doc.errors.filter(isApostrophe).map((e) => e.pos[0]);
  if (at.length === 0) return;
  const fixed: [number, number][] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (node.type !== Scalar.QUOTE_DOUBLE || !node.range) return;
      const [start, end] = node.range;
      if (!at.some((p) => p >= start && p < end)) return;
      // Re-decode the scalar's own text; `\\` pairs are skipped so `\\'` stays `\` + `'`.
      const raw = text.slice(start, end).replace(/\\(.)/gs, (m, c) => c === "'" ? "\\x27" : m);
      const again = parseDocument(raw);
      const value = again.contents;
      if (again.errors.length === 0 && isScalar(value) && typeof value.value === "string") {
        node.value = value.value;
        fixed.push([start, end]);
      }
    },
  });
  doc.errors = doc.errors.filter((e) =>
    !(isApostrophe(e) && fixed.some(([s, t]) => e.pos[0] >= s && e.pos[0] < t))
  );
}

/** `spec.containers[0].image` */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${escapeControl(seg)}` : escapeControl(seg);
  }
  return out;
}

/**
 * Position of the node at `path`; with `key`, of the map key itself. A path
 * with no node (a missing required field) is located at its nearest parent.
 */
export function locate(
  src: SourceDoc,
  path: readonly PathSegment[],
  options: { key?: boolean } = {},
): { line?: number; column?: number } {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n);
    let offset: number | undefined;
    if (options.key && n === path.length && n > 0) {
      const parent = src.doc.getIn(sub.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = (parent as YAMLMap).items.find((p) =>
          isScalar(p.key) && String(p.key.value) === String(sub[n - 1])
        );
        const k = pair?.key as { range?: [number, number, number] } | undefined;
        offset = k?.range?.[0];
      }
    }
    if (offset === undefined) {
      const node = n === 0 ? src.doc.contents : src.doc.getIn(sub, true);
      offset = (node as { range?: [number, number, number] } | undefined)?.range?.[0];
    }
    if (offset !== undefined) {
      const pos = src.lines.linePos(offset);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

/** A SpecError located at `path` in `src`. */
export function specErrorAt(
  src: SourceDoc,
  path: readonly PathSegment[],
  detail: string,
  options: { key?: boolean; pathPrefix?: readonly PathSegment[] } = {},
): SpecError {
  const full = [...(options.pathPrefix ?? []), ...path];
  return new SpecError(
    { file: src.file, ...locate(src, full, options), path: formatPath(full) },
    detail,
  );
}

function dropKey(value: unknown, path: readonly PathSegment[], key: string): void {
  let cur: unknown = value;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  if (cur && typeof cur === "object") delete (cur as Record<string, unknown>)[key];
}

/**
 * Validates `value` (a node of `src` found at `prefix`) against `schema`.
 * Returns the parsed data and the warnings for unknown keys; throws the first
 * real issue as a located {@linkcode SpecError}.
 */
export function validate<S extends z.ZodType>(
  src: SourceDoc,
  schema: S,
  options: {
    value?: unknown;
    prefix?: readonly PathSegment[];
    /** Unknown keys dropped without a warning (compose's `x-*`, server-set Kubernetes fields). */
    silent?: (key: string, path: readonly PathSegment[]) => boolean;
  } = {},
): { data: z.output<S>; warnings: Warning[] } {
  const prefix = options.prefix ?? [];
  const input = structuredClone(options.value ?? src.value);
  const warnings: Warning[] = [];
  for (let round = 0; round < 32; round++) {
    const res = schema.safeParse(input);
    if (res.success) {
      warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
      return { data: res.data, warnings };
    }
    const real = res.error.issues.filter((i) => i.code !== "unrecognized_keys");
    if (real.length > 0) {
      const issue = real[0];
      const path = issue.path.filter((p): p is PathSegment => typeof p !== "symbol");
      throw specErrorAt(src, path, issue.message, { pathPrefix: prefix });
    }
    for (const issue of res.error.issues) {
      if (issue.code !== "unrecognized_keys") continue;
      const path = issue.path.filter((p): p is PathSegment => typeof p !== "symbol");
      for (const key of issue.keys) {
        const full = [...prefix, ...path, key];
        if (options.silent?.(key, path)) {
          dropKey(input, path, key);
          continue;
        }
        warnings.push({
          file: src.file,
          ...locate(src, full, { key: true }),
          path: formatPath(full),
          message: "unknown field, ignored",
        });
        dropKey(input, path, key);
      }
    }
  }
  throw new SpecError({ file: src.file }, "Cannot validate: too many unknown fields");
}

/** The text a scalar was written as (`0644`, not 644), for fields YAML 1.1 reads differently. */
export function scalarSource(src: SourceDoc, path: readonly PathSegment[]): string | undefined {
  const node = src.doc.getIn(path, true) as { source?: unknown } | undefined;
  return isScalar(node) && typeof node.source === "string" ? node.source : undefined;
}
