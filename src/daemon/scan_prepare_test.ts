import assert from "node:assert/strict";
import { type LoadPodsFn, scanManifests } from "./scan.ts";

/** A loader that counts its prepare() and refuses to parse before it. */
function loader(): LoadPodsFn & { prepared: number } {
  let ready = false;
  const fn = ((_text: string, file: string) => {
    if (!ready) throw new Error(`${file}: parsed before prepare()`);
    return [];
  }) as unknown as LoadPodsFn & { prepared: number };
  fn.prepared = 0;
  fn.prepare = () => {
    fn.prepared++;
    ready = true;
    return Promise.resolve();
  };
  return fn;
}

Deno.test("scanManifests prepares the parser only once there is a manifest to parse", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-scan-prepare-" });
  try {
    const load = loader();
    let scan = await scanManifests(dir, load);
    assert.equal(load.prepared, 0, "an empty directory loads no parser");
    assert.equal(scan.errors.size, 0);
    Deno.writeTextFileSync(`${dir}/a.yaml`, "kind: Pod\n");
    scan = await scanManifests(dir, load);
    assert.ok(load.prepared >= 1);
    assert.deepEqual([...scan.errors], [], "parsed after prepare()");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
