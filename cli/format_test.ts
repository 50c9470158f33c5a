import assert from "node:assert/strict";
import { keyValues, table } from "./format.ts";

Deno.test("table() escapes control characters, so a hostile cell cannot forge a row or move the cursor", () => {
  const out = table(["NAME", "IMAGE"], [["web\nFORGED   Running", "evil\x1b[2J\x1b[1;1H"], [
    "db",
    "x",
  ]]);
  assert.equal(out.split("\n").length, 4, out); // header, two rows, final newline
  assert.equal(
    out,
    "NAME                    IMAGE\nweb\\nFORGED   Running   evil\\x1b[2J\\x1b[1;1H\ndb                      x\n",
  );
  assert.equal(keyValues([["Name", "a\rb"], ["PID", 7]], 6), "Name: a\\rb\nPID:  7\n");
}); // deno-fmt-ignore
