/**
 * What `pod rm` loads: the modules a removal reaches through value imports
 * (what Deno loads at start, before any dynamic import) must not include the
 * YAML parser or zod. Each is dozens of modules (yaml's ES build 74, zod 99)
 * that a removal never uses: 5-10 ms of an in-process `pod rm`.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../../", import.meta.url);

/** Repo-relative specifiers a file loads with its own static value imports. */
export function valueImports(text: string): string[] {
  const out: string[] = [];
  const re =
    /^(?:import|export)\s+(type\s+)?((?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+))\s+from\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) {
    if (m[1]) continue; // `import type` / `export type`
    const names = m[2].trim();
    if (names.startsWith("{")) {
      const inner = names.slice(1, -1).split(",").map((s) => s.trim()).filter(Boolean);
      // `import { type A, type B }` loads nothing: the import is dropped.
      if (inner.length > 0 && inner.every((s) => s.startsWith("type "))) continue;
    }
    out.push(m[3]);
  }
  for (const m of text.matchAll(/^import\s*["']([^"']+)["']/gm)) out.push(m[1]);
  return out;
}

/** Every module `entry` (repo-relative) loads through static value imports; bare names as given. */
export function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (!file.endsWith(".ts")) continue; // a bare specifier ("zod", "node:…")
    const text = Deno.readTextFileSync(new URL(file, ROOT));
    for (const spec of valueImports(text)) {
      if (!spec.startsWith(".")) {
        todo.push(spec);
        continue;
      }
      const parts = file.split("/").slice(0, -1);
      for (const s of spec.split("/")) {
        if (s === "..") parts.pop();
        else if (s !== ".") parts.push(s);
      }
      todo.push(parts.join("/"));
    }
  }
  return seen;
}

Deno.test("valueImports(): type-only imports load nothing", () => {
  assert.deepEqual(
    valueImports(
      'import type { A } from "./a.ts";\nimport { type B, type C } from "./b.ts";\n' +
        'import { type D, e } from "./d.ts";\nexport { f } from "./f.ts";\nimport "./g.ts";\n' +
        'export type { H } from "./h.ts";\nimport * as i from "yaml";\n',
    ),
    ["./d.ts", "./f.ts", "yaml", "./g.ts"],
  );
});

Deno.test("pod rm's modules load neither yaml nor zod, and remove.ts not the create path", () => {
  for (
    const entry of [
      "src/workloads/pod/remove.ts",
      "src/workloads/pod/lifecycle.ts",
      "cli/commands/pod.ts",
    ]
  ) {
    const loaded = staticClosure(entry);
    assert.ok(loaded.has("src/workloads/pod/teardown.ts"), `${entry}: the walk reaches teardown`);
    for (const heavy of ["src/spec/yaml.ts", "yaml", "src/spec/zod.ts", "zod/v3", "zod"]) {
      assert.ok(!loaded.has(heavy), `${entry} loads ${heavy} at start`);
    }
  }
  // What cli/direct.ts loads for `pod rm`: the teardown, not the creates.
  const rm = staticClosure("src/workloads/pod/remove.ts");
  for (
    const create of [
      "src/workloads/container/create.ts",
      "src/workloads/pod/create.ts",
      "src/workloads/container.ts",
      "src/oci/generate.ts",
    ]
  ) {
    assert.ok(!rm.has(create), `remove.ts loads ${create} at start`);
  }
});

Deno.test("the Host's modules (every in-process command) load neither the installer nor doctor", () => {
  const loaded = staticClosure("cli/host.ts");
  assert.ok(loaded.has("cli/self.ts"), "the walk reaches self.ts");
  assert.ok(loaded.has("src/daemon/launch.ts"), "self.ts still finds isDenoExe");
  for (const heavy of ["src/daemon/install.ts", "src/doctor.ts"]) {
    assert.ok(!loaded.has(heavy), `cli/host.ts loads ${heavy} at start`);
  }
});
