import assert from "node:assert/strict";
import { FieldError, locateFieldError } from "../errors.ts";
import { loadPods } from "../spec/pod.ts";
import { prepareHostPaths } from "./container.ts";
import { realFs } from "../sys/fs.ts";

const host = { fs: realFs };

function podYaml(path: string, type?: string): string {
  const t = type === undefined ? "" : `, type: ${type}`;
  return `apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: ${path}${t}}}\n  containers:\n    - {name: a, image: b, command: [sh], volumeMounts: [{name: d, mountPath: /d}]}\n`;
}

function podWith(path: string, type?: string) {
  return loadPods(podYaml(path, type), "h.yaml")[0].spec.containers[0];
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
      // The core names the field (the pod's path); the pod's source places it in the file.
      const [pod] = loadPods(podYaml(`${dir}/missing`, type), "h.yaml");
      let err: unknown;
      try {
        prepareHostPaths(host, pod.spec.containers[0]);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof FieldError);
      assert.deepEqual(err.path, ["spec", "volumes", 0, "hostPath", "path"]);
      const located = locateFieldError(err, pod.source) as Error;
      assert.match(
        located.message,
        new RegExp(
          `^h\\.yaml:6:\\d+: spec\\.volumes\\[0\\]\\.hostPath\\.path: hostPath .*does not exist \\(type ${type}\\)$`,
        ),
      );
    }
    assert.throws(() => Deno.statSync(`${dir}/missing`), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
