import assert from "node:assert/strict";
import { execHandlers } from "./exec.ts";
import { criContainer, criSandbox, failsWith, id64, never, testHost } from "./_testing.ts";
import { Status } from "../grpc.ts";

Deno.test("ExecSync runs the command through the container's runtime and answers its output as bytes", async () => {
  const t = testHost();
  const exec = execHandlers(t.host, {});
  try {
    const c = criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" });
    t.store.put("containers", c);
    // The exec'd process is the container's own, from its config.json, with the command as argv.
    Deno.mkdirSync(c.dirs.bundle, { recursive: true });
    Deno.writeTextFileSync(
      c.dirs.config,
      JSON.stringify({ process: { args: ["sh"], env: ["PATH=/bin", "A=1"], cwd: "/w" } }),
    );
    t.execResult = { code: 7, stdout: "out", stderr: "err", timedOut: false };
    const res = await exec.handlers.ExecSync(
      { container_id: "1", cmd: ["ls", "/"], timeout: 2 },
      never,
    );
    assert.equal(res.exit_code, 7);
    assert.equal(new TextDecoder().decode(res.stdout), "out");
    assert.equal(new TextDecoder().decode(res.stderr), "err");
    assert.deepEqual(t.execs.map((e) => [e.id, e.args, e.timeoutMs]), [[
      id64("1"),
      ["ls", "/"],
      2000,
    ]]);
    t.execResult = { code: -1, stdout: "", stderr: "", timedOut: true };
    await failsWith(
      () => exec.handlers.ExecSync({ container_id: "1", cmd: ["sleep", "9"], timeout: 1 }, never),
      Status.DEADLINE_EXCEEDED,
      /timed out after 1s/,
    );
    await failsWith(
      () => exec.handlers.ExecSync({ container_id: "1", cmd: [] }, never),
      Status.INVALID_ARGUMENT,
      /cmd: must not be empty/,
    );
  } finally {
    await exec.close();
    t.cleanup();
  }
});

Deno.test("ExecSync, Exec and Attach need a running container; no URL is given out otherwise", async () => {
  const t = testHost();
  const exec = execHandlers(t.host, {});
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "exited" }),
    );
    t.store.put(
      "containers",
      criContainer(t, id64("2"), { sandboxId: id64("a"), status: "running" }),
    );
    for (const m of ["ExecSync", "Exec", "Attach"]) {
      await failsWith(
        () => exec.handlers[m]({ container_id: id64("1"), cmd: ["true"], stdout: true }, never),
        Status.FAILED_PRECONDITION,
        /is exited, not running/,
      );
    }
    await failsWith(
      () => exec.handlers.Exec({ container_id: id64("2"), cmd: ["true"] }, never),
      Status.INVALID_ARGUMENT,
      /one of stdin, stdout and stderr/,
    );
    await failsWith(
      () => exec.handlers.Attach({ container_id: id64("2"), tty: true, stdout: true }, never),
      Status.INVALID_ARGUMENT,
      /created with tty false/,
    );
    assert.deepEqual(t.execs, []);
  } finally {
    await exec.close();
    t.cleanup();
  }
});

Deno.test("PortForward needs a ready sandbox and ports from 1 to 65535", async () => {
  const t = testHost();
  const exec = execHandlers(t.host, {});
  try {
    t.store.put("pods", criSandbox(id64("a"), {}, { ready: false }));
    t.store.put("pods", criSandbox(id64("b")));
    await failsWith(
      () => exec.handlers.PortForward({ pod_sandbox_id: id64("a"), port: [80] }, never),
      Status.FAILED_PRECONDITION,
      /is not ready/,
    );
    await failsWith(
      () => exec.handlers.PortForward({ pod_sandbox_id: id64("b"), port: [0] }, never),
      Status.INVALID_ARGUMENT,
      /port: every port/,
    );
  } finally {
    await exec.close();
    t.cleanup();
  }
});
