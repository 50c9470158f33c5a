import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { parseYamlDocuments } from "./source.ts";

Deno.test("a double-quoted \\' reads as an apostrophe, as go-yaml (kubectl, compose) reads it", () => {
  const text = [
    "a: \"echo \\'hello\\' && sleep 1\"",
    'b: "it\\\\\'s"', // `\\` then `'`: a backslash and an apostrophe
    "c:",
    "  - \"one \\'",
    '    two"',
    '"k\\\'ey": 1',
    "",
  ].join("\n");
  const [doc] = parseYamlDocuments(text, "t.yaml");
  assert.deepEqual(doc.value, {
    a: "echo 'hello' && sleep 1",
    b: "it\\'s",
    c: ["one ' two"],
    "k'ey": 1,
  });
});

Deno.test("other bad double-quoted escapes are still refused with their line", () => {
  assert.throws(
    () => parseYamlDocuments('a: "fine \\\'"\nb: "x\\qy"\n', "t.yaml"),
    (e) => e instanceof SpecError && /^t\.yaml:2:.*escape/i.test(e.message),
  );
});

Deno.test("a single-quoted scalar keeps its backslash", () => {
  const [doc] = parseYamlDocuments("a: 'it\\'\n", "t.yaml");
  assert.deepEqual(doc.value, { a: "it\\" });
});
