/** Exec hooks (compose post_start/pre_stop): what the record keeps and the process an exec runs. */
import assert from "node:assert/strict";
import { execProcessFor } from "./exec.ts";
import { storedHooks } from "./hooks.ts";

Deno.test("storedHooks() keeps exec hooks beside Kubernetes ones, and alone", () => {
  const post = [{ command: ["a"] }, { command: ["b"], user: { uid: 1, gid: 2 } }];
  assert.deepEqual(storedHooks(undefined, [], { postStart: post }), { postStartExec: post });
  assert.deepEqual(storedHooks(undefined, [], { postStart: [], preStop: [] }), undefined);
  assert.deepEqual(
    storedHooks({ preStop: { exec: { command: ["x"] } } }, [], { preStop: [{ command: ["y"] }] }),
    {
      postStart: undefined,
      preStop: { exec: { command: ["x"] } },
      preStopExec: [{ command: ["y"] }],
    },
  );
});

Deno.test("execProcessFor(): user, cwd, env over the container's; privileged gets every capability", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const caps = ["CAP_CHOWN", "CAP_KILL"];
    Deno.writeTextFileSync(
      `${dir}/config.json`,
      JSON.stringify({
        process: {
          terminal: false,
          user: { uid: 0, gid: 0 },
          args: ["sleep", "1"],
          env: ["PATH=/bin", "A=container"],
          cwd: "/",
          capabilities: { bounding: caps, effective: caps, permitted: caps },
          rlimits: [],
        },
      }),
    );
    const t = { dirs: { config: `${dir}/config.json`, conmonDir: dir } };
    const plain = execProcessFor(t, { argv: ["id"] });
    assert.deepEqual(plain.capabilities.effective, caps);
    const p = execProcessFor(t, {
      argv: ["id"],
      user: { uid: 1000, gid: 1000 },
      cwd: "/tmp",
      env: ["A=hook"],
      privileged: true,
    });
    assert.deepEqual(p.user, { uid: 1000, gid: 1000 });
    assert.equal(p.cwd, "/tmp");
    assert.deepEqual(p.env, ["PATH=/bin", "A=hook"]);
    assert.ok(p.capabilities.effective.length > caps.length, p.capabilities.effective.join(","));
    assert.ok(
      p.capabilities.bounding.includes("CAP_SYS_ADMIN") || p.capabilities.bounding.length > 2,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
