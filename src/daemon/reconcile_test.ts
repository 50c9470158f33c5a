import assert from "node:assert/strict";
import { isManifestName, reconcile } from "./reconcile.ts";

const d = (name: string, file = `/m/${name}.yaml`, hash = "h1") => ({ name, file, hash });

Deno.test("reconcile() creates what is missing and leaves what matches", () => {
  assert.deepEqual(
    reconcile([d("a"), d("b")], [{ name: "a", file: "/m/a.yaml", hash: "h1" }], new Set()),
    [
      { kind: "create", name: "b", file: "/m/b.yaml", hash: "h1" },
    ],
  );
});

Deno.test("reconcile() recreates a pod whose manifest changed", () => {
  assert.deepEqual(
    reconcile(
      [d("a", "/m/a.yaml", "h2")],
      [{ name: "a", file: "/m/a.yaml", hash: "h1" }],
      new Set(),
    ),
    [
      { kind: "recreate", name: "a", file: "/m/a.yaml", hash: "h2", oldHash: "h1" },
    ],
  );
});

Deno.test("reconcile() deletes static pods whose manifest is gone, first", () => {
  assert.deepEqual(
    reconcile([d("new")], [{ name: "old", file: "/m/old.yaml", hash: "h1" }], new Set()),
    [{ kind: "delete", name: "old", file: "/m/old.yaml" }, {
      kind: "create",
      name: "new",
      file: "/m/new.yaml",
      hash: "h1",
    }],
  );
});

Deno.test("reconcile() keeps the running pod of a broken manifest", () => {
  assert.deepEqual(
    reconcile([], [{ name: "a", file: "/m/a.yaml", hash: "h1" }], new Set(["/m/a.yaml"])),
    [],
  );
});

Deno.test("reconcile() never touches pods not made from manifests", () => {
  assert.deepEqual(reconcile([d("a")], [{ name: "a" }, { name: "mine" }], new Set()), []);
});

Deno.test("isManifestName() skips dotfiles, backups and other files", () => {
  assert.deepEqual(
    [
      "web.yaml",
      "db.yml",
      "x.json",
      ".web.yaml.swp",
      "web.yaml~",
      "#web.yaml#",
      "notes.txt",
      ".hidden.yaml",
    ].filter(isManifestName),
    ["web.yaml", "db.yml", "x.json"],
  );
});
