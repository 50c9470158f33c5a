/**
 * The node e2e harness's systemctl stand-in against a stand-in kubelet (a
 * copy of /bin/sh looping, so its executable is ours): what the suite's
 * restart helpers ask — list-units with and without --state=running, kill,
 * restart with the same argv, environment and working directory, stop — and
 * what it refuses. No root, no containers: `deno test -A tests/node_e2e/systemctl_test.ts`.
 */
import assert from "node:assert/strict";
import { kubeletPids, type StandinEnv, systemctl, UNIT } from "./systemctl.ts";

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "rkl-systemctl-test-" });
  Deno.copyFileSync("/bin/sh", `${dir}/kubelet`);
  Deno.chmodSync(`${dir}/kubelet`, 0o755);
  Deno.mkdirSync(`${dir}/cwd`);
  const env: StandinEnv = {
    kubelet: `${dir}/kubelet`,
    match: `unix://${dir}/rkl.sock`,
    state: `${dir}/state`,
    log: `${dir}/kubelet.log`,
  };
  // $0 of the loop is the CRI endpoint the stand-in looks for; it prints its flag and env once.
  const first = new Deno.Command(env.kubelet, {
    args: ["-c", 'echo "up $1 $KFLAG $(pwd)"; while :; do sleep 0.2; done', env.match, "--v=4"],
    cwd: `${dir}/cwd`,
    env: { KFLAG: "kept" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { dir, env, first };
}

async function run(args: string[], env: StandinEnv) {
  let out = "";
  let err = "";
  const code = await systemctl(args, env, (s) => out += s, (s) => err += s);
  return { code, out, err };
}

Deno.test("systemctl stand-in: list-units, kill, restart with the same command line, stop", async () => {
  const { dir, env, first } = await fixture();
  try {
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(kubeletPids(env.kubelet, env.match), [first.pid]);

    // The suite's findKubeletServiceName: the first `kubelet-\w+` of the answer.
    let r = await run(["list-units", "*kubelet*", "--state=running"], env);
    assert.deepEqual(r.code, 0);
    assert.deepEqual(/(kubelet-\w+)/.exec(r.out)?.[1], UNIT);
    assert.deepEqual((await run(["reset-failed", UNIT], env)).code, 0);

    // kill: signals it, does not start another.
    assert.deepEqual((await run(["kill", "-s", "SIGKILL", UNIT], env)).code, 0);
    assert.deepEqual((await first.status).signal, "SIGKILL");
    assert.deepEqual((await run(["list-units", "*kubelet*", "--state=running"], env)).out, "");
    assert.match((await run(["list-units", "*kubelet*"], env)).out, /inactive dead/);
    assert.deepEqual((await run(["is-active", UNIT], env)).code, 3);

    // restart: the same argv, environment and working directory, output to the log.
    r = await run(["restart", `${UNIT}.service`], env);
    assert.deepEqual(r.code, 0, r.err);
    const [second] = kubeletPids(env.kubelet, env.match);
    assert(second && second !== first.pid);
    const argv = new TextDecoder().decode(Deno.readFileSync(`/proc/${second}/cmdline`))
      .split("\0");
    assert.deepEqual(argv.slice(1, 5), [argv[1], argv[2], env.match, "--v=4"]);
    assert.deepEqual(Deno.readLinkSync(`/proc/${second}/cwd`), `${dir}/cwd`);
    for (let i = 0; i < 50 && !Deno.readTextFileSync(env.log).includes("up"); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(Deno.readTextFileSync(env.log).trim(), `up --v=4 kept ${dir}/cwd`);

    // restart of a running one: the old one exits first.
    assert.deepEqual((await run(["restart", UNIT], env)).code, 0);
    const [third] = kubeletPids(env.kubelet, env.match);
    assert(third && third !== second);
    assert.deepEqual(kubeletPids(env.kubelet, env.match).length, 1);

    assert.deepEqual((await run(["stop", UNIT], env)).code, 0);
    assert.deepEqual(kubeletPids(env.kubelet, env.match), []);

    // Anything else: refused, one line.
    r = await run(["restart", "containerd"], env);
    assert.deepEqual(r.code, 5);
    assert.deepEqual(r.err, "Unit containerd not loaded.\n");
    r = await run(["enable", "--now", UNIT], env);
    assert.deepEqual(r.code, 1);
    assert.match(r.err, /'enable' is not supported/);
  } finally {
    for (const p of kubeletPids(env.kubelet, env.match)) Deno.kill(p, "SIGKILL");
    try {
      first.kill("SIGKILL");
    } catch { /* gone */ }
    await first.status;
    await Deno.remove(dir, { recursive: true });
  }
});
