import assert from "node:assert/strict";
import { withExecEvents } from "./exec_events.ts";
import { eventLogPath } from "./event_log.ts";
import type { Host } from "./host.ts";
import { realFs } from "../sys/fs.ts";
import { NoExecutableError, RklError } from "../errors.ts";

Deno.test("withExecEvents(): create and start before the run, die after with its code or the command's exit code when it throws", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const host = {
      paths: { root, runRoot: `${root}/run` },
      now: () => new Date(),
      fs: realFs,
      warn: () => {},
    } as unknown as Host;
    const target = { name: "web", image: "busybox", pod: "p", labels: { tier: "front" } };
    const logged = () =>
      Deno.readTextFileSync(eventLogPath(host.paths)).split("\n").filter(Boolean).map((l) =>
        JSON.parse(l)
      );
    const seen: number[] = [];
    assert.equal(
      await withExecEvents(host, target, ["sh", "-c", "exit 3"], () => {
        seen.push(logged().length); // create and start are written before the process runs
        return Promise.resolve(3);
      }),
      3,
    );
    assert.deepEqual(seen, [2]);
    await assert.rejects(
      withExecEvents(host, target, ["nosuch"], () => Promise.reject(new NoExecutableError("x"))),
      NoExecutableError,
    );
    await assert.rejects(
      withExecEvents(host, target, ["true"], () => Promise.reject(new RklError("EX", "y"))),
      RklError,
    );
    const all = logged();
    assert.deepEqual(all.map((e) => [e.action, e.command ?? "", e.exitCode ?? ""]), [
      ["exec_create", "sh -c exit 3", ""],
      ["exec_start", "sh -c exit 3", ""],
      ["exec_die", "", 3],
      ["exec_create", "nosuch", ""],
      ["exec_start", "nosuch", ""],
      ["exec_die", "", 127],
      ["exec_create", "true", ""],
      ["exec_start", "true", ""],
      ["exec_die", "", 1],
    ]);
    // One id per exec, shared by its three lines; every line names the container as its events do.
    const ids = all.map((e) => e.execId);
    assert.match(ids[0], /^[0-9a-f]{64}$/);
    assert.equal(new Set(ids).size, 3);
    assert.deepEqual(ids.slice(0, 3), [ids[0], ids[0], ids[0]]);
    assert.ok(
      all.every((e) => e.container === "web" && e.pod === "p" && e.labels.tier === "front"),
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
