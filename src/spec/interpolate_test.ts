import assert from "node:assert/strict";
import { interpolate, InterpolationError, parseDotEnv, shellSplit } from "./interpolate.ts";

const ENV = { A: "a", EMPTY: "", PORT: "8080" };

Deno.test("interpolate() follows the compose-spec forms", () => {
  const cases: [string, string][] = [
    ["$A", "a"],
    ["${A}", "a"],
    ["x${A}y", "xay"],
    ["${MISSING}", ""],
    ["${MISSING:-def}", "def"],
    ["${EMPTY:-def}", "def"],
    ["${EMPTY-def}", ""],
    ["${MISSING-def}", "def"],
    ["${A:+alt}", "alt"],
    ["${EMPTY:+alt}", ""],
    ["${EMPTY+alt}", "alt"],
    ["${MISSING:-${PORT}}", "8080"],
    ["$$A", "$A"],
    ["cost: $$5", "cost: $5"],
    ["${PORT}:80", "8080:80"],
  ];
  for (const [input, want] of cases) assert.equal(interpolate(input, ENV), want, input);
});

Deno.test("interpolate() reports required variables and bad syntax", () => {
  assert.throws(
    () => interpolate("${MISSING:?set MISSING please}", ENV),
    /required variable MISSING is not set: set MISSING please/,
  );
  assert.throws(() => interpolate("${EMPTY:?}", ENV), /EMPTY is empty/);
  assert.equal(interpolate("${EMPTY?}", ENV), "");
  assert.throws(() => interpolate("${A", ENV), InterpolationError);
  assert.throws(() => interpolate("${1X}", ENV), InterpolationError);
  assert.throws(() => interpolate("50$", ENV), /use "\$\$"/);
});

Deno.test("parseDotEnv() reads comments, quotes and export", () => {
  assert.deepEqual(
    parseDotEnv(
      '# c\nA=1\nexport B=two words\nC="q \\"x\\""\nD=\'$lit\'\nE=v # trailing\n\nbad line\n',
    ),
    {
      A: "1",
      B: "two words",
      C: 'q "x"',
      D: "$lit",
      E: "v",
    },
  );
});

Deno.test("shellSplit() splits like a shell", () => {
  assert.deepEqual(shellSplit(`sh -c 'echo "hi there"; exit 3'`), [
    "sh",
    "-c",
    'echo "hi there"; exit 3',
  ]);
  assert.deepEqual(shellSplit(`a "b c" d\\ e ""`), ["a", "b c", "d e", ""]);
  assert.throws(() => shellSplit("'open"), InterpolationError);
});
