import assert from "node:assert/strict";
import { NoExecutableError, NotFoundError } from "../errors.ts";
import type { ExecCaptured, OciRuntime } from "../oci/runtime.ts";
import type { OciProcess } from "../oci/spec.ts";
import { readConmonMessage } from "../oci/conmon.ts";
import type { ContainerRecord } from "./container.ts";
import { execAttached, execProcessFor, execSync, NO_EXEC_LIMIT_MS } from "./exec.ts";
import { runHook } from "./hooks.ts";
import type { Host } from "./host.ts";
import { realFs } from "../sys/fs.ts";
import { containerTarget, runProbe } from "./probes.ts";

type Call =
  | { kind: "capture"; id: string; process: OciProcess; timeoutMs: number; fileDir: string }
  | { kind: "exec"; id: string; process: OciProcess; interactive: boolean; fileDir: string };

/** A runtime that records exec calls and answers them with `answer`. */
function fakeRuntime(calls: Call[], answer: Partial<ExecCaptured> = {}): OciRuntime {
  return {
    execCapture(id: string, process: OciProcess, o: { timeoutMs: number; fileDir: string }) {
      calls.push({ kind: "capture", id, process, ...o });
      return Promise.resolve({
        code: 0,
        output: "",
        stdout: "",
        stderr: "",
        timedOut: false,
        ...answer,
      });
    },
    exec(id: string, process: OciProcess, o: { interactive: boolean; fileDir: string }) {
      calls.push({ kind: "exec", id, process, ...o });
      return Promise.resolve(answer.code ?? 0);
    },
  } as unknown as OciRuntime;
}

const PROCESS: OciProcess = {
  terminal: false,
  user: { uid: 1000, gid: 1000 },
  args: ["/bin/sh", "-c", "sleep 1000"],
  env: ["PATH=/usr/bin:/bin", "HOME=/home/app"],
  cwd: "/srv",
  capabilities: { bounding: [], effective: [], permitted: [] },
  rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
  noNewPrivileges: true,
};

/** A container directory with config.json and a rootfs holding /bin/sh; removed at dispose. */
function container(name = "web"): ContainerRecord & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-exec-test-" });
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify({ process: PROCESS, mounts: [] }));
  Deno.mkdirSync(`${dir}/rootfs/bin`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/rootfs/bin/sh`, "");
  return {
    id: `r0000-${name}`,
    name,
    runtime: { name: "youki", binary: "/usr/bin/youki", root: "/run/youki" },
    dirs: { config: `${dir}/config.json`, conmonDir: `${dir}/conmon`, rootfs: `${dir}/rootfs` },
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  } as unknown as ContainerRecord & Disposable;
}

function fakeHost(calls: Call[], recs: ContainerRecord[] = [], answer?: Partial<ExecCaptured>) {
  return {
    runtimeFor: () => fakeRuntime(calls, answer),
    fs: realFs,
    store: { get: (_kind: string, name: string) => recs.find((r) => r.name === name) },
    sleep: () => Promise.resolve(),
  } as unknown as Host;
}

Deno.test("execProcessFor() is the container's process with the request's argv, env, cwd, user and size", () => {
  using c = container();
  const p = execProcessFor(c, {
    argv: ["env"],
    env: ["HOME=/root", "DEBUG=1"],
    cwd: "/tmp",
    user: { uid: 0, gid: 0 },
    tty: true,
    size: { width: 80, height: 24 },
  });
  assert.deepEqual(p.args, ["env"]);
  assert.deepEqual(p.env, ["PATH=/usr/bin:/bin", "HOME=/root", "DEBUG=1"]);
  assert.equal(p.cwd, "/tmp");
  assert.deepEqual(p.user, { uid: 0, gid: 0 });
  assert.equal(p.terminal, true);
  assert.deepEqual(p.consoleSize, { height: 24, width: 80 });
  // What the request leaves alone stays the container's own.
  assert.deepEqual(p.rlimits, PROCESS.rlimits);
  assert.equal(p.noNewPrivileges, true);
  const plain = execProcessFor(c, { argv: ["id"], size: { width: 80, height: 24 } });
  assert.equal(plain.cwd, "/srv");
  assert.deepEqual(plain.user, PROCESS.user);
  assert.equal(plain.terminal, false);
  assert.equal(plain.consoleSize, undefined, "no terminal, no size");
});

Deno.test("execSync() makes one runtime exec with the built process, in the container's conmon dir", async () => {
  const calls: Call[] = [];
  using c = container();
  const host = fakeHost(calls, [c], { code: 3, stdout: "out", stderr: "err", output: "outerr" });
  const res = await execSync(host, { container: "web", argv: ["false"], timeoutMs: 1500 });
  assert.equal(res.code, 3);
  assert.equal(res.stdout, "out");
  assert.equal(calls.length, 1);
  const call = calls[0];
  assert.equal(call.kind, "capture");
  if (call.kind !== "capture") return;
  assert.equal(call.id, c.id);
  assert.equal(call.timeoutMs, 1500);
  assert.equal(call.fileDir, c.dirs.conmonDir);
  assert.deepEqual(call.process.args, ["false"]);
  assert.equal(call.process.terminal, false);
  // No limit asked: a day (the CRI's ExecSync with timeout 0).
  await execSync(host, { container: c, argv: ["true"] });
  assert.equal((calls[1] as { timeoutMs: number }).timeoutMs, NO_EXEC_LIMIT_MS);
});

Deno.test("execSync() of an unknown container is NotFoundError and calls no runtime", async () => {
  const calls: Call[] = [];
  await assert.rejects(
    () => execSync(fakeHost(calls), { container: "ghost", argv: ["true"] }),
    (e) => e instanceof NotFoundError && /"ghost"/.test(e.message),
  );
  assert.equal(calls.length, 0);
});

Deno.test("execAttached() refuses a command missing from the rootfs (exit 127) before the runtime runs", async () => {
  const calls: Call[] = [];
  using c = container();
  const host = fakeHost(calls, [c]);
  await assert.rejects(
    () => execAttached(host, { container: c, argv: ["nosuch"] }),
    (e) => e instanceof NoExecutableError && e.exitCode === 127 && /"nosuch"/.test(e.message),
  );
  assert.equal(calls.length, 0);
  assert.equal(await execAttached(host, { container: c, argv: ["sh"], stdin: true }), 0);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].kind, "exec");
  assert.equal((calls[0] as { interactive: boolean }).interactive, true);
});

Deno.test("an exec probe and an exec hook run through execSync with their time limits", async () => {
  const calls: Call[] = [];
  using c = container();
  const host = fakeHost(calls, [c], { code: 1, output: "first\nnot ready\n" });
  const passed = await runProbe(
    { exec: { command: ["cat", "/ready"] }, timeoutSeconds: 2 },
    containerTarget(host, c, { ip: "127.0.0.1", ports: [] }),
  );
  assert.equal(passed, false);
  assert.equal(calls.length, 1);
  assert.deepEqual((calls[0] as { process: OciProcess }).process.args, ["cat", "/ready"]);
  assert.equal((calls[0] as { timeoutMs: number }).timeoutMs, 2000);
  const why = await runHook(host, c, { exec: { command: ["check"] } }, 0);
  assert.equal(why, `"check" exited with code 1: not ready`);
  // A zero grace period is a zero limit, not "no limit".
  assert.equal((calls[1] as { timeoutMs: number }).timeoutMs, 0);
});

Deno.test('readConmonMessage() reads report by report; a "}" in a message does not cut it short', async () => {
  const path = Deno.makeTempFileSync({ prefix: "rkl-conmon-msg-" });
  Deno.writeTextFileSync(
    path,
    '{"data": -1, "message": "bad config {\\"a\\": 1}"}\n{"data": 42}\n{"data": 0, "mess',
  );
  try {
    using f = Deno.openSync(path, { read: true });
    const carry = { text: "" };
    assert.deepEqual(await readConmonMessage(f, carry), {
      data: -1,
      message: 'bad config {"a": 1}',
    });
    assert.deepEqual(await readConmonMessage(f, carry), { data: 42 });
    assert.equal(await readConmonMessage(f, carry), undefined, "cut off at the end: no report");
  } finally {
    Deno.removeSync(path);
  }
});
