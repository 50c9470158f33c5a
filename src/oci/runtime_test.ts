import assert from "node:assert/strict";
import { RuncCliRuntime } from "./runtime.ts";
import type { CommandOptions, CommandResult, CommandRunner } from "../sys/command.ts";

/** A runner answering `state` from a script of results, counting the calls. */
function scripted(results: CommandResult[]): CommandRunner & { calls: number } {
  const r = {
    calls: 0,
    run(_cmd: string, _o?: CommandOptions): Promise<CommandResult> {
      const res = results[Math.min(r.calls, results.length - 1)];
      r.calls++;
      return Promise.resolve(res);
    },
    runInteractive(): Promise<number> {
      return Promise.resolve(0);
    },
  };
  return r;
}

/** Without the sealed copy's lookup (an env read unit tests may not do). */
class Runtime extends RuncCliRuntime {
  constructor(cmd: CommandRunner) {
    super("youki", "/usr/bin/youki", "/run/x", cmd);
  }
  override get exe(): string {
    return this.binary;
  }
}

const STATE = JSON.stringify({ ociVersion: "1.0.2", id: "c1", status: "running", pid: 42 });
const TORN = { code: 1, stdout: "", stderr: "could not load state for container c1\n" };

Deno.test("state: a state.json read while youki rewrites it is read again", async () => {
  const cmd = scripted([TORN, TORN, { code: 0, stdout: STATE, stderr: "" }]);
  const rt = new Runtime(cmd);
  const st = await rt.state("c1");
  assert.equal(st?.status, "running");
  assert.equal(cmd.calls, 3);
});

Deno.test("state: a state that stays unreadable is an error after a few tries", async () => {
  const cmd = scripted([TORN]);
  const rt = new Runtime(cmd);
  await assert.rejects(rt.state("c1"), /Cannot read state of "c1"/);
  assert.equal(cmd.calls, 5);
});

Deno.test("state: an unknown container is undefined at once, other errors are not retried", async () => {
  const gone = scripted([{ code: 1, stdout: "", stderr: "container c1 does not exist\n" }]);
  assert.equal(await new Runtime(gone).state("c1"), undefined);
  assert.equal(gone.calls, 1);
  const other = scripted([{ code: 1, stdout: "", stderr: "permission denied\n" }]);
  await assert.rejects(new Runtime(other).state("c1"));
  assert.equal(other.calls, 1);
});
