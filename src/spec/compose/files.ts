/**
 * Each compose file on its own: parsed with positions, interpolated in place
 * (so errors still point at the right line), its merge tags collected and its
 * schema checked.
 */
import { type Scalar, visit } from "../yaml.ts";
import { SpecError } from "../../errors.ts";
import { interpolate, InterpolationError } from "../interpolate.ts";
import { parseYamlDocuments, type SourceDoc, validate, type Warning } from "../source.ts";
import { collectTags } from "./merge.ts";
import { projectSchema } from "./schema.ts";
import type { Prepared } from "./types.ts";
import { isObj } from "./values.ts";

/** Interpolates every string scalar of the document in place, keeping node positions. */
/** Interpolates every value in place; returns a warning for each unset variable (once each). */
function interpolateDoc(src: SourceDoc, env: Record<string, string | undefined>): Warning[] {
  const warned = new Set<string>();
  const warnings: Warning[] = [];
  visit(src.doc, {
    Scalar(key, node: Scalar) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("$")) return;
      const unset = (name: string) => {
        if (warned.has(name)) return;
        warned.add(name);
        const pos = node.range ? src.lines.linePos(node.range[0]) : undefined;
        warnings.push({
          file: src.file,
          line: pos?.line,
          column: pos?.col,
          path: "",
          message: `variable ${name} is not set, using an empty string`,
        });
      };
      try {
        node.value = interpolate(node.value, env, unset);
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        const pos = node.range ? src.lines.linePos(node.range[0]) : undefined;
        throw new SpecError({ file: src.file, line: pos?.line, column: pos?.col }, e.message);
      }
    },
  });
  src.value = src.doc.toJS({ maxAliasCount: 100 });
  return warnings;
}

/** Interpolates, collects tags and validates one parsed file. */
export function prepareFile(
  src: SourceDoc,
  dir: string,
  env: Record<string, string | undefined>,
  warnings: Warning[],
): Prepared {
  warnings.push(...interpolateDoc(src, env));
  if (!isObj(src.value)) {
    throw new SpecError({ file: src.file, line: 1, column: 1 }, "a compose file must be a mapping");
  }
  const tags = collectTags(src);
  // The compose spec: keys starting with x- are extensions, ignored silently.
  const res = validate(src, projectSchema, { silent: (key) => key.startsWith("x-") });
  warnings.push(...res.warnings);
  return { src, raw: res.data, tags, dir };
}

export function parseOne(text: string, file: string): SourceDoc {
  const docs = parseYamlDocuments(text, file);
  if (docs.length > 1) {
    throw new SpecError({ file }, "a compose file holds one YAML document");
  }
  return docs[0];
}
