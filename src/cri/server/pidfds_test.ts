import assert from "node:assert/strict";
import { pathExists } from "./pidfds.ts";

// With FFI (`deno test -A`) access(2) answers; without it (-P=unit) the
// answer is undefined and the caller reads the file its own way.
Deno.test("pathExists: a file there, gone, and never made; undefined without FFI", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-pathexists-" });
  try {
    const f = `${dir}/exit`;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      assert.equal(pathExists(f), undefined);
      return;
    }
    assert.equal(pathExists(f), false);
    Deno.writeTextFileSync(f, "0");
    assert.equal(pathExists(f), true);
    Deno.removeSync(f);
    assert.equal(pathExists(f), false);
    assert.equal(pathExists(`${dir}/no/such/dir`), false);
    assert.equal(pathExists(`${dir}/a\0b`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
