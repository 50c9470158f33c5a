/**
 * The layer order of src/ and cli/, enforced (docs/architecture.md#layers describes it).
 *
 * Reads every non-test `.ts` file under src/ and cli/, takes each relative
 * import and `export … from` (static, type-only and dynamic `import("…")`),
 * maps both ends to their unit (a folder, or one of the top-level files) and
 * fails, listing file:line, on any import of a unit that is not in a layer
 * below. Then it fails on any import cycle between units and on any cycle
 * between two files of src/.
 */
import assert from "node:assert/strict";

/**
 * Top to bottom. A file may import from its own unit and from any unit of a
 * lower layer; units of one layer never import each other.
 */
const LAYERS: { units: string[]; what: string }[] = [
  {
    units: ["cli", "testing"],
    what: "argv, the real Host, printing, exit codes; the FakeHost for unit tests",
  },
  { units: ["daemon"], what: "static-pod daemon; starts the CRI server on demand" },
  { units: ["cri"], what: "CRI gRPC server and streaming" },
  { units: ["workloads"], what: "containers, pods, compose: plan and apply through a Host" },
  {
    units: ["image", "node", "doctor.ts", "versions.ts"],
    what: "image store and pulls; node install; host checks and tool versions",
  },
  { units: ["oci"], what: "config.json from a spec, the runtime CLI, conmon" },
  { units: ["spec", "net", "store"], what: "YAML to typed specs; CNI; the state store" },
  { units: ["sys"], what: "libc, syscalls, cgroups, mounts, commands" },
  { units: ["base"], what: "errors, names and quantities grammar, byte and time helpers" },
];

/** Top-level files of src/ that belong to the bottom layer, with src/base/. */
const BASE_FILES = ["errors.ts", "bytes.ts", "cancel.ts", "timeouts.ts", "trace.ts"];

/**
 * Imports that other branches remove; the lead empties this list after merging
 * them. A listed import that no longer exists fails the test, so it cannot go stale.
 */
interface Pending {
  from: string;
  to: string;
  owner: string;
}
const PENDING: Pending[] = [];

/** File cycles in src/ that other branches remove (same rule as PENDING). */
const PENDING_FILE_CYCLES: { files: string[]; owner: string }[] = [];

export interface ImportLine {
  specifier: string;
  line: number;
}

const STATIC = new RegExp(
  String.raw`^(?:import|export)\s+(?:type\s+)?` +
    String
      .raw`(?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+)\s+from\s*["']([^"']+)["']`,
  "gm",
);
const BARE = /^import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every module specifier `text` imports or re-exports, with its line (comments skipped). */
export function importsOf(text: string): ImportLine[] {
  const out: ImportLine[] = [];
  const lineAt = (i: number) => text.slice(0, i).split("\n").length;
  for (const re of [STATIC, BARE]) {
    for (const m of text.matchAll(re)) out.push({ specifier: m[1], line: lineAt(m.index) });
  }
  // A dynamic import can sit anywhere; skip the ones in a comment line.
  for (const m of text.matchAll(DYNAMIC)) {
    const start = text.lastIndexOf("\n", m.index) + 1;
    const before = text.slice(start, m.index).trimStart();
    if (before.startsWith("//") || before.startsWith("*") || before.startsWith("/*")) continue;
    out.push({ specifier: m[1], line: lineAt(m.index) });
  }
  return out.sort((a, b) => a.line - b.line);
}

/** The unit a repo-relative path belongs to, or undefined when it is outside src/ and cli/. */
export function unitOf(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] === "cli") return "cli";
  if (parts[0] !== "src") return undefined;
  if (parts.length === 2) return BASE_FILES.includes(parts[1]) ? "base" : parts[1];
  return parts[1];
}

function rankOf(unit: string): number | undefined {
  const i = LAYERS.findIndex((l) => l.units.includes(unit));
  return i < 0 ? undefined : i;
}

/** `specifier` as a repo-relative path, seen from `from`; undefined when it is not relative. */
function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const parts = from.split("/").slice(0, -1);
  for (const s of specifier.split("/")) {
    if (s === "..") parts.pop();
    else if (s !== ".") parts.push(s);
  }
  return parts.join("/");
}

export interface Edge {
  from: string;
  line: number;
  to: string;
}

/** What is wrong with these edges: imports outside the order, and unit cycles. */
export function check(edges: Edge[], pending: Pending[] = []): string[] {
  const problems: string[] = [];
  const pendingSeen = new Set<number>();
  const units = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = unitOf(e.from)!, b = unitOf(e.to);
    if (b === undefined) {
      problems.push(`${e.from}:${e.line} imports ${e.to}, outside src/ and cli/`);
      continue;
    }
    if (a === b) continue;
    const p = pending.findIndex((x) => x.from === e.from && x.to === e.to);
    if (p >= 0) {
      pendingSeen.add(p);
      continue;
    }
    if (!units.has(a)) units.set(a, new Set());
    units.get(a)!.add(b);
    const ra = rankOf(a), rb = rankOf(b);
    if (ra === undefined) problems.push(`${e.from}: unit "${a}" is in no layer`);
    else if (rb === undefined) problems.push(`${e.to}: unit "${b}" is in no layer`);
    else if (rb < ra) problems.push(`${e.from}:${e.line} imports ${e.to}: ${a} is below ${b}`);
    else if (rb === ra) {
      problems.push(`${e.from}:${e.line} imports ${e.to}: ${a} and ${b} share a layer`);
    }
  }
  pending.forEach((x, i) => {
    if (!pendingSeen.has(i)) {
      problems.push(`PENDING lists ${x.from} -> ${x.to} (${x.owner}): gone now, remove it`);
    }
  });
  for (const c of cycles(units)) problems.push(`unit cycle: ${c.join(", ")}`);
  return [...new Set(problems)];
}

/** The strongly connected components with more than one node (Tarjan). */
export function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !p.endsWith("_test.ts")) out.push(p);
  }
  return out.sort();
}

function edgesOf(files: string[]): Edge[] {
  const edges: Edge[] = [];
  for (const from of files) {
    for (const i of importsOf(Deno.readTextFileSync(`${ROOT}/${from}`))) {
      const to = resolve(from, i.specifier);
      if (to !== undefined) edges.push({ from, line: i.line, to });
    }
  }
  return edges;
}

/** The order as docs/architecture.md writes it. */
export function orderLine(): string {
  return LAYERS.map((l) => l.units.join(" | ")).join(" → ");
}

Deno.test("importsOf() finds static, type-only, re-export, bare and dynamic imports, with lines", () => {
  const text = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b/b.ts";',
    "import {",
    "  c,",
    "  type D,",
    '} from "./c.ts";',
    'export * from "./e.ts";',
    'export { f } from "./f.ts";',
    'import G, { h } from "./g.ts";',
    'import * as i from "./i.ts";',
    'import "./j.ts";',
    'const k = await import("./k.ts");',
    '// not this: import("./comment.ts")',
    "const l = await import(",
    '  "./l.ts"',
    ");",
    'export const from = "./not.ts";',
    'import { m } from "npm:yaml";',
  ].join("\n");
  assert.deepEqual(importsOf(text), [
    { specifier: "./a.ts", line: 1 },
    { specifier: "../b/b.ts", line: 2 },
    { specifier: "./c.ts", line: 3 },
    { specifier: "./e.ts", line: 7 },
    { specifier: "./f.ts", line: 8 },
    { specifier: "./g.ts", line: 9 },
    { specifier: "./i.ts", line: 10 },
    { specifier: "./j.ts", line: 11 },
    { specifier: "./k.ts", line: 12 },
    { specifier: "./l.ts", line: 14 },
    { specifier: "npm:yaml", line: 18 },
  ]);
});

Deno.test("check() fails an import that goes up or sideways, and a unit cycle", () => {
  assert.deepEqual(check([{ from: "src/spec/pod.ts", line: 8, to: "src/spec/quantity.ts" }]), []);
  assert.deepEqual(check([{ from: "src/workloads/x.ts", line: 3, to: "src/errors.ts" }]), []);
  assert.deepEqual(check([{ from: "src/sys/x.ts", line: 2, to: "src/spec/quantity.ts" }]), [
    "src/sys/x.ts:2 imports src/spec/quantity.ts: sys is below spec",
  ]);
  assert.deepEqual(check([{ from: "src/net/x.ts", line: 9, to: "src/spec/names.ts" }]), [
    "src/net/x.ts:9 imports src/spec/names.ts: net and spec share a layer",
  ]);
  assert.deepEqual(check([{ from: "src/versions.ts", line: 4, to: "cli/build_info.ts" }]), [
    "src/versions.ts:4 imports cli/build_info.ts: versions.ts is below cli",
  ]);
  assert.deepEqual(check([{ from: "src/foo/x.ts", line: 1, to: "src/errors.ts" }]), [
    'src/foo/x.ts: unit "foo" is in no layer',
  ]);
  const up = { from: "src/workloads/hooks.ts", line: 9, to: "src/daemon/probes.ts" };
  const pending = [{ from: up.from, to: up.to, owner: "someone" }];
  assert.deepEqual(check([up], pending), []);
  assert.deepEqual(check([], pending), [
    "PENDING lists src/workloads/hooks.ts -> src/daemon/probes.ts (someone): gone now, remove it",
  ]);
  assert.deepEqual(
    cycles(new Map([["a", new Set(["b"])], ["b", new Set(["c"])], ["c", new Set(["a"])]])),
    [["a", "b", "c"]],
  );
});

Deno.test("every import in src/ and cli/ points down the layer order, and no units form a cycle", () => {
  const files = [...sourceFiles("src"), ...sourceFiles("cli")];
  const problems = check(edgesOf(files), PENDING);
  const present = new Set(files.map((f) => unitOf(f)!));
  for (const l of LAYERS) {
    for (const u of l.units) if (!present.has(u)) problems.push(`layer unit "${u}" has no file`);
  }
  assert.deepEqual(problems, []);
});

Deno.test("no two files of src/ import each other, directly or around a loop", () => {
  const graph = new Map<string, Set<string>>();
  for (const e of edgesOf(sourceFiles("src"))) {
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    graph.get(e.from)!.add(e.to);
  }
  const found = cycles(graph);
  const problems = found.filter((c) =>
    !PENDING_FILE_CYCLES.some((p) => p.files.toSorted().join() === c.join())
  ).map((c) => `file cycle: ${c.join(", ")}`);
  for (const p of PENDING_FILE_CYCLES) {
    if (!found.some((c) => c.join() === p.files.toSorted().join())) {
      problems.push(`PENDING_FILE_CYCLES lists ${p.files.join(", ")} (${p.owner}): gone now`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("docs/architecture.md states the order this test enforces", () => {
  const doc = Deno.readTextFileSync(`${ROOT}/docs/architecture.md`);
  assert.ok(doc.includes(orderLine()), `docs/architecture.md lacks the line: ${orderLine()}`);
});
