/**
 * The container lifecycle through the CLI, against the real OCI runtime,
 * conmon, CNI plugins, iptables and cgroupfs. Runs as root.
 */
import assert from "node:assert/strict";
import { type Census, census } from "../_helpers/census.ts";
import {
  assertRejected,
  cleanupAfterAll,
  envTest,
  makeEnv,
  rkl,
  rklOk,
  waitFor,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles") && requires("youki") &&
  requires("runc");
const env = ready ? await makeEnv("ctr", 1) : undefined;
/**
 * Taken when this file's first test starts (deno loads every test file before
 * running any, so a load-time census would miss what earlier files changed).
 */
let baseline: Census | undefined;
const BUSYBOX = `${REPO}/bundles/busybox`;

async function specFile(name: string, body: string): Promise<string> {
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(path, `name: ${name}\nimage: ${BUSYBOX}\n${body}`);
  return path;
}

async function state(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await rklOk(env!, ["container", "state", name, "-o", "json"]));
}

async function assertCensusUnchanged(): Promise<void> {
  assert.deepEqual(await census(env!), baseline, "the host census changed");
}

function test(name: string, fn: () => Promise<void>): void {
  envTest(ready, () => env!, name, async () => {
    baseline ??= await census(env!);
    await fn();
  });
}

test("rkl container run: rk8s's example runs and its limits land in cgroupfs", async () => {
  const file = `${env!.dir}/single.yaml`;
  const text = await Deno.readTextFile(`${REPO}/tests/fixtures/single.yaml`);
  await Deno.writeTextFile(file, text.replace("./bundles/busybox", BUSYBOX));
  assert.equal(
    await rklOk(env!, ["container", "run", "--network", env!.network, file]),
    "single-container-test\n",
  );
  const s = await state("single-container-test");
  assert.equal(s.status, "running");
  assert.match(String(s.ip), new RegExp(`^${env!.subnet.split(".").slice(0, 3).join("\\.")}\\.`));
  const cg = `${env!.cgroupParent}/single-container-test`;
  assert.equal(Deno.readTextFileSync(`/sys/fs/cgroup/cpu/${cg}/cpu.cfs_quota_us`).trim(), "50000");
  assert.equal(
    Deno.readTextFileSync(`/sys/fs/cgroup/cpu/${cg}/cpu.cfs_period_us`).trim(),
    "100000",
  );
  assert.equal(
    Deno.readTextFileSync(`/sys/fs/cgroup/memory/${cg}/memory.limit_in_bytes`).trim(),
    String(233 * 1024 * 1024),
  );
  // The container's pid is in that cgroup.
  const procs = Deno.readTextFileSync(`/sys/fs/cgroup/memory/${cg}/cgroup.procs`).split("\n").map(
    Number,
  );
  assert.ok(procs.includes(s.pid as number), `pid ${s.pid} not in ${procs}`);
  const list = JSON.parse(await rklOk(env!, ["container", "list", "-o", "json"]));
  assert.deepEqual(list.map((c: { name: string }) => c.name), ["single-container-test"]);
  assert.equal(
    await rklOk(env!, ["container", "rm", "-f", "single-container-test"]),
    "single-container-test\n",
  );
  await assertCensusUnchanged();
});

test("a busybox httpd answers on its published hostPort from the host", async () => {
  const www = `${env!.dir}/www`;
  await Deno.mkdir(www);
  await Deno.writeTextFile(`${www}/index.html`, "hello from rkl\n");
  const file = await specFile(
    "web",
    `command: ["httpd", "-f", "-p", "80", "-h", "/www"]\nports:\n  - containerPort: 80\n    hostPort: 18481\nvolumeMounts:\n  - {mountPath: /www, hostPath: ${www}, readOnly: true}\n`,
  );
  await rklOk(env!, ["container", "run", "--network", env!.network, file]);
  let body = "";
  await waitFor("httpd on 127.0.0.1:18481", async () => {
    try {
      body = await (await fetch("http://127.0.0.1:18481/index.html")).text();
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(body, "hello from rkl\n");
  const s = await state("web");
  assert.deepEqual(s.ports, [{ hostPort: 18481, containerPort: 80, protocol: "tcp" }]);

  // The same hostPort again is refused, naming the file and line, and leaves nothing.
  const before = await census(env!);
  const dup = await specFile(
    "web2",
    `args: [sleep, "30"]\nports:\n  - containerPort: 80\n    hostPort: 18481\n`,
  );
  const r = await rkl(env!, ["container", "run", "--network", env!.network, dup]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${dup}:6:15: Cannot publish port 18481/tcp`));
  assert.deepEqual(await census(env!), before);

  await rklOk(env!, ["container", "rm", "-f", "web"]);
  await assertCensusUnchanged();
});

test("tty: true runs on a terminal conmon holds, and its output reaches the log", async () => {
  for (const runtime of ["youki", "runc"]) {
    const file = await specFile(
      "tty",
      `tty: true\ncommand: [sh, -c, "tty; echo hello; sleep 60"]\n`,
    );
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    await waitFor(
      "terminal output",
      async () => (await rkl(env!, ["container", "logs", "tty"])).stdout.includes("hello"),
    );
    assert.match(
      (await rkl(env!, ["container", "logs", "tty"])).stdout,
      /^\/dev\/pts\/\d+\nhello\n$/,
    );
    await rklOk(env!, ["container", "rm", "-f", "tty"]);
  }
  await assertCensusUnchanged();
});

test("exec passes the command's exit code through and sees the container's env and workingDir", async () => {
  const file = await specFile(
    "ex",
    `command: [sleep, "60"]\nworkingDir: /tmp\nenv:\n  - {name: GREETING, value: hi}\n`,
  );
  await rklOk(env!, ["container", "run", "--network", env!.network, file]);
  const r = await rkl(env!, [
    "container",
    "exec",
    "ex",
    "--",
    "sh",
    "-c",
    'echo "$GREETING from $(pwd) on $(hostname)"; exit 7',
  ]);
  assert.equal(r.code, 7);
  assert.equal(r.stdout, "hi from /tmp on ex\n");
  const fail = await rkl(env!, ["container", "exec", "ex", "--", "/no/such/binary"]);
  assert.notEqual(fail.code, 0);
  await rklOk(env!, ["container", "rm", "-f", "ex"]);
  await assertCensusUnchanged();
});

test("logs are in CRI format after rkl exited, and the exit code is recorded", async () => {
  const file = await specFile(
    "talk",
    `command: [sh, -c, "echo out-line; echo err-line >&2; sleep 0.5; echo late; exit 3"]\n`,
  );
  await rklOk(env!, ["container", "run", "--network", env!.network, file]);
  // rkl has exited; conmon keeps writing.
  await waitFor("exit", async () => (await state("talk")).status === "exited");
  const s = await state("talk");
  assert.equal(s.exitCode, 3);
  const raw = Deno.readTextFileSync(String(s.logPath));
  const lines = raw.trimEnd().split("\n");
  assert.equal(lines.length, 3);
  for (const l of lines) {
    assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) F /);
  }
  assert.match(lines[1], / stderr F err-line$/);
  const logs = await rkl(env!, ["container", "logs", "talk"]);
  assert.equal(logs.stdout, "out-line\nlate\n");
  assert.equal(logs.stderr, "err-line\n");
  assert.equal((await rkl(env!, ["container", "logs", "--tail", "1", "talk"])).stdout, "late\n");
  // -f on an exited container prints everything and returns.
  assert.equal((await rkl(env!, ["container", "logs", "-f", "talk"])).stdout, "out-line\nlate\n");
  await rklOk(env!, ["container", "rm", "talk"]);
  await assertCensusUnchanged();
});

test("stop: a SIGTERM handler gets its grace period; an ignoring process is killed after -t", async () => {
  const polite = await specFile(
    "polite",
    `command: [sh, -c, "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"]\n`,
  );
  await rklOk(env!, ["container", "run", "--network", env!.network, polite]);
  await waitFor("trap installed", async () => (await state("polite")).status === "running");
  await new Promise((r) => setTimeout(r, 300));
  await rklOk(env!, ["container", "stop", "-t", "5", "polite"]);
  let s = await state("polite");
  assert.equal(s.status, "exited");
  assert.equal(s.exitCode, 0);
  assert.equal((await rkl(env!, ["container", "logs", "polite"])).stdout, "bye\n");

  const stubborn = await specFile("stubborn", `command: [sleep, "600"]\n`);
  await rklOk(env!, ["container", "run", "--network", env!.network, stubborn]);
  const t0 = performance.now();
  await rklOk(env!, ["container", "stop", "-t", "1", "stubborn"]);
  const waited = performance.now() - t0;
  s = await state("stubborn");
  assert.equal(s.exitCode, 137, "SIGKILL after the grace period");
  assert.ok(waited >= 1000, `stop returned after ${waited} ms, before the 1 s grace period`);
  await rklOk(env!, ["container", "rm", "polite"]);
  await rklOk(env!, ["container", "rm", "stubborn"]);
  await assertCensusUnchanged();
});

test("create + start + rm without -f refused while running", async () => {
  const file = await specFile("twostep", `command: [sleep, "60"]\n`);
  await rklOk(env!, ["container", "create", "--network", env!.network, file]);
  assert.equal((await state("twostep")).status, "created");
  await rklOk(env!, ["container", "start", "twostep"]);
  assert.equal((await state("twostep")).status, "running");
  const r = await rkl(env!, ["container", "rm", "twostep"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Cannot remove container "twostep": it is running/);
  await rklOk(env!, ["container", "rm", "-f", "twostep"]);
  await assertCensusUnchanged();
});

test("the runc runtime works too (--runtime runc), with --network none", async () => {
  const file = await specFile("viarunc", `command: [sh, -c, "ip -o link | wc -l; exit 5"]\n`);
  await rklOk(env!, ["--runtime", "runc", "container", "run", "--network", "none", file]);
  await waitFor("exit", async () => (await state("viarunc")).status === "exited");
  const s = await state("viarunc");
  assert.equal(s.runtime, "runc");
  assert.equal(s.exitCode, 5);
  assert.equal((await rkl(env!, ["container", "logs", "viarunc"])).stdout.trim(), "1", "only lo");
  await rklOk(env!, ["container", "rm", "viarunc"]);
  await assertCensusUnchanged();
});

test("a container keeps the runtime it was created with: runc container, later commands without --runtime", async () => {
  const file = await specFile("keeprt", `command: [sleep, "600"]\n`);
  await rklOk(env!, ["--runtime", "runc", "container", "run", "--network", env!.network, file]);
  assert.equal((await state("keeprt")).status, "running");
  assert.equal((await rkl(env!, ["container", "exec", "keeprt", "--", "true"])).code, 0);
  await rklOk(env!, ["container", "rm", "-f", "keeprt"]);
  await assertCensusUnchanged();
});

test("bad input: each gives one located error, exit code 2, and creates nothing", async () => {
  const cases: [string, string, RegExp][] = [
    ["syntax", "name: a\nimage: [x\n", /syntax\.yaml:\d+:\d+: Cannot parse YAML/],
    [
      "type",
      `name: a\nimage: ${BUSYBOX}\nargs: sleep\n`,
      /type\.yaml:3:7: args: Expected array, received string/,
    ],
    [
      "quantity",
      `name: a\nimage: ${BUSYBOX}\nargs: [sh]\nresources:\n  limits:\n    memory: 1GB\n`,
      /quantity\.yaml:6:13: resources\.limits\.memory: quantity "1GB"/,
    ],
    [
      "name",
      `name: Bad_Name\nimage: ${BUSYBOX}\nargs: [sh]\n`,
      /name\.yaml:1:7: name: "Bad_Name" is not a DNS-1123 label/,
    ],
    [
      "bundle",
      `name: a\nimage: ./no-such-bundle\nargs: [sh]\n`,
      /bundle\.yaml:2:8: image: bundle ".*no-such-bundle" has no rootfs\/ directory/,
    ],
  ];
  for (const [label, text, want] of cases) {
    const file = `${env!.dir}/${label}.yaml`;
    await Deno.writeTextFile(file, text);
    assertRejected(
      label,
      await rkl(env!, ["container", "run", "--network", env!.network, file]),
      want,
    );
  }
  const missing = await rkl(env!, ["container", "run", `${env!.dir}/nope.yaml`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml: Cannot read file/);
  await assertCensusUnchanged();
});

test("a run that fails half-way (runtime create fails) rolls everything back", async () => {
  const file = await specFile(
    "broken",
    `command: ["/no/such/program"]\nports:\n  - containerPort: 80\n    hostPort: 18482\n`,
  );
  const r = await rkl(env!, ["container", "run", "--network", env!.network, file]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /Cannot create container "broken": youki create failed: .*\/no\/such\/program.* not found/,
  );
  assert.ok(!/__libc_start_main|csu\//.test(r.stderr), "no backtrace in the message");
  await assertCensusUnchanged();
  // The name is free again.
  assert.equal((await rkl(env!, ["container", "state", "broken"])).code, 1);
});

test("a second container with the same name is refused with the file and line", async () => {
  const file = await specFile("dupe", `command: [sleep, "60"]\n`);
  await rklOk(env!, ["container", "run", "--network", env!.network, file]);
  const before = await census(env!);
  const r = await rkl(env!, ["container", "run", "--network", env!.network, file]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`${file}:1:7: Cannot create container: name "dupe" is already in use`),
  );
  assert.deepEqual(await census(env!), before);
  await rklOk(env!, ["container", "rm", "-f", "dupe"]);
  await assertCensusUnchanged();
});

cleanupAfterAll(env);
