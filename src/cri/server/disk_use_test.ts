import assert from "node:assert/strict";
import { diskUse } from "./_common.ts";

Deno.test("diskUse counts as du does: allocated blocks, the root included, a hard link once", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-du-" });
  try {
    const blocks = (p: string) => Deno.lstatSync(p).blocks! * 512;
    const empty = diskUse(dir);
    // An empty layer still takes its directory's block: 11 bytes written are a block, not 11.
    assert.deepEqual(empty, { bytes: blocks(dir), inodes: 1 });
    Deno.writeTextFileSync(`${dir}/small`, "some bytes\n");
    Deno.mkdirSync(`${dir}/sub`);
    Deno.writeFileSync(`${dir}/sub/big`, new Uint8Array(100_000));
    const one = diskUse(dir);
    const want = blocks(dir) + blocks(`${dir}/small`) + blocks(`${dir}/sub`) +
      blocks(`${dir}/sub/big`);
    assert.deepEqual(one, { bytes: want, inodes: 4 });
    assert.ok(one.bytes >= 1024 + 100_000, "blocks, not apparent sizes");
    // A hard link adds no bytes and no inode; a missing dir is nothing.
    Deno.linkSync(`${dir}/sub/big`, `${dir}/big2`);
    assert.deepEqual(diskUse(dir), one);
    assert.deepEqual(diskUse(`${dir}/nope`), { bytes: 0, inodes: 0 });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
