import assert from "node:assert/strict";
import { MemFs } from "../testing/mem_fs.ts";
import { removeConmonLinks } from "./conmon_links.ts";

const ID = "a".repeat(40) + "b".repeat(24);

Deno.test("removeConmonLinks: the entry named by the id and its shortened link to the bundle go; others stay", () => {
  const fs = new MemFs();
  fs.mkdir("/s/" + ID, { recursive: true });
  fs.mkdir("/bundles/mine", { recursive: true });
  fs.mkdir("/bundles/other", { recursive: true });
  fs.symlink("/bundles/mine", "/s/" + ID.slice(0, 40)); // cut short by conmon
  fs.symlink("/bundles/other", "/s/" + ID.slice(0, 41)); // same prefix, another bundle
  fs.symlink("/bundles/mine", "/s/" + ID.slice(0, 31)); // too short to be conmon's
  fs.mkdir("/s/" + ID.slice(0, 45)); // a prefix, but not a link
  assert.equal(removeConmonLinks(fs, "/s", ID, "/bundles/mine"), 2);
  assert.deepEqual(
    fs.readDir("/s").map((e) => e.name).sort(),
    [ID.slice(0, 31), ID.slice(0, 41), ID.slice(0, 45)].sort(),
  );
  assert.equal(removeConmonLinks(fs, "/missing", ID, "/bundles/mine"), 0);
});
