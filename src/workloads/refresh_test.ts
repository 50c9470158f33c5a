import assert from "node:assert/strict";
import { listExitFiles } from "./container.ts";
import { realFs } from "../sys/fs.ts";

Deno.test("listExitFiles() lists each exit directory once and leaves out those it cannot read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rkl-exits-test-" });
  try {
    Deno.writeTextFileSync(`${dir}/c1`, "0");
    const got = listExitFiles({ fs: realFs }, [dir, dir, `${dir}/missing`]);
    assert.deepEqual([...got.keys()], [dir]);
    assert.deepEqual([...got.get(dir)!], ["c1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
