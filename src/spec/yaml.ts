/**
 * The yaml package as ES modules. Its package.json sends Deno, which
 * resolves with the "node" condition, to its CommonJS build: 74 files
 * required one by one through Deno's CommonJS layer, 25-35 ms of a `pod run`
 * or `kube play` on a 2-core host. The same code ships as ES modules in the
 * same package (the build its "default" condition names, beside the first),
 * and loads in about 5 ms. Where that file cannot be loaded (a layout
 * without it), the CommonJS build is used. Modules that parse or build YAML
 * import it from here, so one copy is loaded.
 *
 * The two builds differ in two places rkl does not reach: the ES build
 * prints yaml's own warnings with console.warn (not process.emitWarning),
 * and decodes `!!binary` (YAML 1.1 only) to a Uint8Array (not a Buffer).
 */
import type * as Yaml from "yaml";

async function load(): Promise<typeof Yaml> {
  try {
    return await import(new URL("../browser/index.js", import.meta.resolve("yaml")).href);
  } catch {
    return await import("yaml");
  }
}

const yaml = await load();

export const {
  Document,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Pair,
  parse,
  parseAllDocuments,
  parseDocument,
  Scalar,
  stringify,
  visit,
  YAMLMap,
} = yaml;
export type Document<C extends Yaml.Node = Yaml.Node, S extends boolean = true> = Yaml.Document<
  C,
  S
>;
export type LineCounter = Yaml.LineCounter;
export type Pair<K = unknown, V = unknown> = Yaml.Pair<K, V>;
export type Scalar<T = unknown> = Yaml.Scalar<T>;
export type YAMLMap<K = unknown, V = unknown> = Yaml.YAMLMap<K, V>;
