import assert from "node:assert/strict";
import { loadPods } from "../spec/pod.ts";
import { prepareHostPaths } from "./container.ts";
import { realFs } from "../sys/fs.ts";

const host = { fs: realFs };

function podWith(path: string, type?: string) {
  const t = type === undefined ? "" : `, type: ${type}`;
  const [p] = loadPods(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: ${path}${t}}}\n  containers:\n    - {name: a, image: b, command: [sh], volumeMounts: [{name: d, mountPath: /d}]}\n`,
    "h.yaml",
  );
  return p.spec.containers[0];
}

Deno.test("a hostPath with no type whose path is missing becomes a directory, as containerd's CRI makes it", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-hostpath-" });
  try {
    const missing = `${dir}/a/b`;
    // A dry run (pod validate) only says what it would make.
    assert.deepEqual(prepareHostPaths(host, podWith(missing), { dryRun: true }), [
      `hostPath ${missing} will be created (a directory)`,
    ]);
    assert.throws(() => Deno.statSync(missing), Deno.errors.NotFound);
    prepareHostPaths(host, podWith(missing));
    const st = Deno.statSync(missing);
    assert.ok(st.isDirectory);
    assert.equal(st.mode! & 0o777 & ~0o755, 0, "no more than 0755");
    // An existing file is used as it is: no type means no check.
    Deno.writeTextFileSync(`${dir}/f`, "x");
    prepareHostPaths(host, podWith(`${dir}/f`));
    prepareHostPaths(host, podWith(`${dir}/f`, '""'));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the checked hostPath types still refuse a missing path at its line", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-hostpath-" });
  try {
    for (const type of ["Directory", "File", "Socket", "CharDevice", "BlockDevice"]) {
      assert.throws(
        () => prepareHostPaths(host, podWith(`${dir}/missing`, type)),
        (e: Error) =>
          new RegExp(`^h\\.yaml:6:\\d+: .*does not exist \\(type ${type}\\)`).test(e.message),
      );
    }
    assert.throws(() => Deno.statSync(`${dir}/missing`), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
