import assert from "node:assert/strict";
import { plainStatsNoStream } from "./serve.ts";

Deno.test("plainStatsNoStream(): the daemon skips the CLI framework only for plain `stats --no-stream`", () => {
  for (
    const argv of [
      ["stats", "--no-stream"],
      ["--root", "/r", "--run-root=/x", "--debug", "stats", "--no-stream"],
      ["--runtime", "youki", "stats", "--no-stream"],
      ["--root", "stats", "stats", "--no-stream"], // --root's value is "stats"
    ]
  ) assert.equal(plainStatsNoStream(argv), true, argv.join(" "));
  for (
    const argv of [
      ["stats"],
      ["stats", "--no-stream", "web"],
      ["stats", "web", "--no-stream"],
      ["stats", "stats", "--no-stream"], // a container named stats
      ["stats", "-a", "--no-stream"],
      ["stats", "--format", "json", "--no-stream"],
      ["stats", "--help", "--no-stream"],
      ["--root", "stats", "--no-stream"], // --root's value is "stats": no command
      ["ps", "stats", "--no-stream"],
      ["--bogus", "stats", "--no-stream"],
    ]
  ) assert.equal(plainStatsNoStream(argv), false, argv.join(" "));
});
