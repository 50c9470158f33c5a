/**
 * Pods through the CLI, against the real runtime, conmon, CNI and cgroupfs:
 * a pause sandbox, containers that share its namespaces, init containers,
 * emptyDir, pod-level cgroups, and a host left as it was.
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

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "runc");
const env = ready ? await makeEnv("pod", 2) : undefined;
/**
 * Taken when this file's first test starts (deno loads every test file before
 * running any, so a load-time census would miss what earlier files changed).
 */
let baseline: Census | undefined;

function test(name: string, fn: () => Promise<void>): void {
  envTest(ready, () => env!, name, async () => {
    baseline ??= await census(env!);
    await fn();
  });
}

/** Writes a manifest next to symlinks to the repo's bundles, so `./bundles/...` works as in rk8s. */
async function manifest(name: string, text: string): Promise<string> {
  const link = `${env!.dir}/bundles`;
  try {
    await Deno.lstat(link);
  } catch {
    await Deno.symlink(`${REPO}/bundles`, link);
  }
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(path, text);
  return path;
}

async function podState(name: string) {
  return JSON.parse(await rklOk(env!, ["pod", "state", name, "-o", "json"]));
}

async function assertCensusUnchanged(): Promise<void> {
  assert.deepEqual(await census(env!), baseline, "the host census changed");
}

function run(file: string, ...extra: string[]) {
  return rkl(env!, [...extra, "pod", "run", "--network", env!.network, file]);
}

test("rk8s's pod example runs, and its container sees its limits in its cgroup", async () => {
  const file = await manifest(
    "rk8s",
    await Deno.readTextFile(`${REPO}/tests/fixtures/rk8s-pod.yaml`),
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "simple-container-task\n");
  const s = await podState("simple-container-task");
  assert.equal(s.phase, "Running");
  assert.deepEqual(s.containers.map((c: { name: string; status: string }) => [c.name, c.status]), [[
    "main-container1",
    "running",
  ]]);
  const inside = await rkl(env!, [
    "pod",
    "exec",
    "simple-container-task",
    "main-container1",
    "--",
    "cat",
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
  ]);
  assert.equal(inside.stdout, `50000\n100000\n${512 * 1024 * 1024}\n`);
  // The pod-level cgroup that holds it, written by rkl itself.
  const podCg = `${env!.cgroupParent}/pod-simple-container-task`;
  assert.equal(
    Deno.readTextFileSync(`/sys/fs/cgroup/cpu/${podCg}/cpu.cfs_quota_us`).trim(),
    "50000",
  );
  assert.equal(
    Deno.readTextFileSync(`/sys/fs/cgroup/memory/${podCg}/memory.limit_in_bytes`).trim(),
    String(512 * 1024 * 1024),
  );
  await rklOk(env!, ["pod", "rm", "-f", "simple-container-task"]);
  await assertCensusUnchanged();
});

const DUO = (share: boolean) =>
  `apiVersion: v1
kind: Pod
metadata:
  name: duo
spec:
  shareProcessNamespace: ${share}
  containers:
    - name: web
      image: ./bundles/busybox
      command: [sh, -c, "echo pong > /tmp/ping; exec httpd -f -p 8080 -h /tmp"]
      ports: [{containerPort: 8080, hostPort: 18491}]
      resources: {limits: {cpu: 200m, memory: 64Mi}}
    - name: client
      image: ./bundles/busybox
      command: [sleep, "3600"]
      workingDir: /tmp
      env: [{name: ROLE, value: client}]
      resources: {limits: {cpu: 300m, memory: 32Mi}}
`;

test("two containers talk over localhost, share the hostname, keep their own limits", async () => {
  const file = await manifest("duo", DUO(false));
  assert.equal((await run(file)).code, 0);
  let got = "";
  await waitFor("httpd on localhost:8080", async () => {
    const r = await rkl(env!, [
      "pod",
      "exec",
      "duo",
      "client",
      "--",
      "wget",
      "-qO-",
      "http://localhost:8080/ping",
    ]);
    got = r.stdout;
    return r.code === 0;
  });
  assert.equal(got, "pong\n");
  const who = await rklOk(env!, [
    "pod",
    "exec",
    "duo",
    "client",
    "--",
    "sh",
    "-c",
    'echo "$(hostname) $ROLE $(pwd)"',
  ]);
  assert.equal(who, "duo client /tmp\n");
  assert.equal(await rklOk(env!, ["pod", "exec", "duo", "web", "--", "hostname"]), "duo\n");
  // /etc/hosts names the pod with its IP.
  const s = await podState("duo");
  const hosts = await rklOk(env!, ["pod", "exec", "duo", "web", "--", "cat", "/etc/hosts"]);
  assert.match(hosts, new RegExp(`^${s.ip.replaceAll(".", "\\.")}\\tduo$`, "m"));
  // Published for the pod through portmap.
  const body = await (await fetch("http://127.0.0.1:18491/ping")).text();
  assert.equal(body, "pong\n");
  // Each container keeps its own limits.
  for (const [c, quota, mem] of [["web", "20000", 64], ["client", "30000", 32]] as const) {
    const cg = `${env!.cgroupParent}/pod-duo/${c}`;
    assert.equal(Deno.readTextFileSync(`/sys/fs/cgroup/cpu/${cg}/cpu.cfs_quota_us`).trim(), quota);
    assert.equal(
      Deno.readTextFileSync(`/sys/fs/cgroup/memory/${cg}/memory.limit_in_bytes`).trim(),
      String(mem * 1024 * 1024),
    );
  }
  // Without shareProcessNamespace, the client does not see httpd.
  const ps = await rklOk(env!, ["pod", "exec", "duo", "client", "--", "ps", "-o", "comm"]);
  assert.ok(!ps.split("\n").includes("httpd"), ps);
  await rklOk(env!, ["pod", "rm", "-f", "duo"]);
  await assertCensusUnchanged();
});

test("shareProcessNamespace lets one container see the other's processes (runc)", async () => {
  const file = await manifest("duoshare", DUO(true));
  assert.equal((await run(file, "--runtime", "runc")).code, 0);
  await waitFor("httpd visible", async () => {
    const ps = await rklOk(env!, ["pod", "exec", "duo", "client", "--", "ps", "-o", "comm"]);
    return ps.split("\n").includes("httpd");
  });
  // PID 1 of the shared namespace is the pause process.
  const one = await rklOk(env!, ["pod", "exec", "duo", "client", "--", "cat", "/proc/1/cmdline"]);
  assert.match(one, /catatonit/);
  await rklOk(env!, ["pod", "rm", "-f", "duo"]);
  await assertCensusUnchanged();
});

test("init containers run in order before the app containers, sharing an emptyDir", async () => {
  const file = await manifest(
    "inits",
    `apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
    - {name: first, image: ./bundles/busybox, command: [sh, -c, "echo one >> /w/order"], volumeMounts: [{name: work, mountPath: /w}]}
    - {name: second, image: ./bundles/busybox, command: [sh, -c, "sleep 0.2; echo two >> /w/order"], volumeMounts: [{name: work, mountPath: /w}]}
  containers:
    - {name: app, image: ./bundles/busybox, command: [sh, -c, "cat /w/order; sleep 3600"], volumeMounts: [{name: work, mountPath: /w}]}
`,
  );
  assert.equal((await run(file)).code, 0);
  await waitFor(
    "app output",
    async () => (await rkl(env!, ["pod", "logs", "inits", "app"])).stdout === "one\ntwo\n",
  );
  const s = await podState("inits");
  assert.deepEqual(
    s.containers.map((
      c: { name: string; init: boolean; status: string; exitCode: number | null },
    ) => [c.name, c.init, c.status, c.exitCode]),
    [["first", true, "exited", 0], ["second", true, "exited", 0], ["app", false, "running", null]],
  );
  await rklOk(env!, ["pod", "rm", "-f", "inits"]);
  await assertCensusUnchanged();
});

test("a native sidecar (init container with restartPolicy Always) starts, keeps running, and the pod goes on", async () => {
  const file = await manifest(
    "sidecar",
    `apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{name: logs, emptyDir: {}}]
  initContainers:
    - name: shipper
      image: ./bundles/busybox
      restartPolicy: Always
      command: [sh, -c, "touch /logs/app.log; tail -f /logs/app.log"]
      volumeMounts: [{name: logs, mountPath: /logs}]
    - {name: setup, image: ./bundles/busybox, command: [sh, -c, "echo ready > /logs/app.log"], volumeMounts: [{name: logs, mountPath: /logs}]}
  containers:
    - {name: app, image: ./bundles/busybox, command: [sh, -c, "echo hello >> /logs/app.log; sleep 3600"], volumeMounts: [{name: logs, mountPath: /logs}]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(
    "the sidecar ships the app's line",
    async () => (await rkl(env!, ["pod", "logs", "sidecar", "shipper"])).stdout.includes("hello"),
  );
  const s = await podState("sidecar");
  assert.equal(s.phase, "Running");
  assert.deepEqual(
    s.containers.map((c: { name: string; status: string }) => [c.name, c.status]),
    [["shipper", "running"], ["setup", "exited"], ["app", "running"]],
  );
  await rklOk(env!, ["pod", "stop", "sidecar"]);
  const stopped = await podState("sidecar");
  assert.ok(stopped.containers.every((c: { status: string }) => c.status === "exited"));
  await rklOk(env!, ["pod", "rm", "-f", "sidecar"]);
  await assertCensusUnchanged();
});

test("hostPath types: DirectoryOrCreate and FileOrCreate make the path; Directory and a missing source fail at their line", async () => {
  const made = `${env!.dir}/made/dir`;
  const file = `${env!.dir}/made-file`;
  const ok = await manifest(
    "hptypes",
    `apiVersion: v1
kind: Pod
metadata: {name: hptypes}
spec:
  volumes:
    - {name: d, hostPath: {path: ${made}, type: DirectoryOrCreate}}
    - {name: f, hostPath: {path: ${file}, type: FileOrCreate}}
  containers:
    - {name: app, image: ./bundles/busybox, command: [sh, -c, "echo hi > /d/x; sleep 3600"], volumeMounts: [{name: d, mountPath: /d}, {name: f, mountPath: /f}]}
`,
  );
  assert.equal((await run(ok)).code, 0);
  await waitFor("written through", () => {
    try {
      return Deno.readTextFileSync(`${made}/x`) === "hi\n";
    } catch {
      return false;
    }
  });
  assert.ok(Deno.statSync(file).isFile);
  await rklOk(env!, ["pod", "rm", "-f", "hptypes"]);
  for (
    const [type, want] of [
      ["Directory", /bad-hp\.yaml:6:\d+: .*does not exist \(type Directory\)/],
      ["File", /bad-hp\.yaml:6:\d+: .*is not what type File asks for/],
    ] as const
  ) {
    const path = type === "File" ? made : `${env!.dir}/missing-${type.length}`;
    const bad = await manifest(
      "bad-hp",
      `apiVersion: v1\nkind: Pod\nmetadata: {name: badhp}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: ${path}, type: ${type}}}\n  containers:\n    - {name: app, image: ./bundles/busybox, command: [sleep, "1"], volumeMounts: [{name: d, mountPath: /d}]}\n`,
    );
    assertRejected(`hostPath type ${type}`, await run(bad), want);
  }
  await assertCensusUnchanged();
});

test("pod validate checks and plans a file without creating anything", async () => {
  const missing = `${env!.dir}/validate-would-make`;
  const file = await manifest(
    "validate",
    `apiVersion: v1
kind: Pod
metadata: {name: val, creationTimestamp: null}
spec:
  volumes: [{name: d, hostPath: {path: ${missing}, type: DirectoryOrCreate}}]
  initContainers:
    - {name: side, image: ./bundles/busybox, restartPolicy: Always, command: [sleep, "60"]}
  containers:
    - {name: app, image: ./bundles/busybox, command: [sleep, "60"], ports: [{containerPort: 80, hostPort: 18610}], volumeMounts: [{name: d, mountPath: /d}]}
status: {}
`,
  );
  const r = await rkl(env!, ["pod", "validate", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `pod val: ok (1 container, 0 init, 1 sidecar; ports 18610->80/tcp)\n  hostPath ${missing} will be created (DirectoryOrCreate)\n`,
  );
  assert.equal(r.stderr, "");
  assert.throws(() => Deno.statSync(missing), Deno.errors.NotFound);
  const bad = await manifest(
    "validate-bad",
    `apiVersion: v1\nkind: Pod\nmetadata: {name: val}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: a, image: ./bundles/busybox, command: [sh]}]\n`,
  );
  assertRejected(
    "validate runAsNonRoot",
    await rkl(env!, ["pod", "validate", bad]),
    /validate-bad\.yaml:6:\d+: .*runAsNonRoot is set but the container would run as root/,
  );
  await assertCensusUnchanged();
});

test("a failing init container fails the pod with a clear error and leaves nothing", async () => {
  const file = await manifest(
    "badinit",
    `apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  initContainers:
    - name: check
      image: ./bundles/busybox
      command: [sh, -c, "echo database not ready >&2; exit 3"]
  containers:
    - {name: app, image: ./bundles/busybox, command: [sleep, "3600"], ports: [{containerPort: 80, hostPort: 18492}]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /badinit\.yaml:6:13: Cannot start pod "badinit": init container "check" exited with code 3 \(last output: database not ready\)/,
  );
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  await assertCensusUnchanged();
});

test("a pod that fails half-way (third container cannot start) is rolled back completely", async () => {
  const file = await manifest(
    "third",
    `apiVersion: v1
kind: Pod
metadata: {name: third}
spec:
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
    - {name: a, image: ./bundles/busybox, command: [sleep, "3600"], ports: [{containerPort: 80, hostPort: 18493}]}
    - {name: b, image: ./bundles/busybox, command: [sleep, "3600"], volumeMounts: [{name: scratch, mountPath: /s}]}
    - {name: c, image: ./bundles/busybox, command: ["/no/such/program"]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /Cannot create container "third_c": youki create failed: .*\/no\/such\/program/,
  );
  await assertCensusUnchanged();
});

test("pod rm works after the pod's containers died on their own", async () => {
  const file = await manifest(
    "brief",
    `apiVersion: v1
kind: Pod
metadata: {name: brief}
spec:
  restartPolicy: Never
  containers:
    - {name: once, image: ./bundles/busybox, command: [sh, -c, "echo done"]}
    - {name: fails, image: ./bundles/busybox, command: [sh, -c, "exit 4"]}
`,
  );
  assert.equal((await run(file)).code, 0);
  await waitFor("both exited", async () => (await podState("brief")).phase === "Failed");
  const s = await podState("brief");
  assert.deepEqual(s.containers.map((c: { exitCode: number }) => c.exitCode), [0, 4]);
  assert.equal((await rkl(env!, ["pod", "logs", "brief", "once"])).stdout, "done\n");
  await rklOk(env!, ["pod", "rm", "brief"]);
  await assertCensusUnchanged();
});

test("stop honours the grace period, then start is refused for exited containers; list shows phases", async () => {
  const file = await manifest(
    "grace",
    `apiVersion: v1
kind: Pod
metadata: {name: grace}
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - {name: polite, image: ./bundles/busybox, command: [sh, -c, "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"]}
`,
  );
  assert.equal((await run(file)).code, 0);
  await new Promise((r) => setTimeout(r, 300));
  const list = JSON.parse(await rklOk(env!, ["pod", "list", "-o", "json"]));
  assert.deepEqual(list.map((p: { name: string; phase: string }) => [p.name, p.phase]), [[
    "grace",
    "Running",
  ]]);
  await rklOk(env!, ["pod", "stop", "grace"]);
  const s = await podState("grace");
  assert.equal(s.phase, "Succeeded");
  assert.equal(s.containers[0].exitCode, 0);
  assert.equal((await rkl(env!, ["pod", "logs", "grace"])).stdout, "bye\n");
  await rklOk(env!, ["pod", "rm", "grace"]);
  await assertCensusUnchanged();
});

test("a multi-document file runs every pod; with no shared PID namespace there is no pause process, only pinned namespaces", async () => {
  const doc = (n: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${n}}\nspec:\n  containers:\n    - {name: main, image: ./bundles/busybox, command: [sleep, "3600"]}\n`;
  const file = await manifest("multi", `${doc("one")}---\n${doc("two")}`);
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "one\ntwo\n");
  const list = JSON.parse(await rklOk(env!, ["pod", "list", "-o", "json"]));
  assert.deepEqual(list.map((p: { name: string; phase: string }) => [p.name, p.phase]), [[
    "one",
    "Running",
  ], ["two", "Running"]]);
  // No pause container: the members join IPC and UTS namespaces pinned as files.
  const one = await podState("one");
  assert.equal(one.pausePid, null);
  const names = JSON.parse(await rklOk(env!, ["container", "list", "-o", "json"]))
    .map((c: { name: string }) => c.name);
  assert.ok(!names.some((n: string) => n.endsWith("__pause")), names.join(" "));
  for (const t of ["ipc", "uts"]) {
    const pin = Deno.statSync(`${env!.runRoot}/ns/p_one/${t}`).ino;
    assert.equal(Deno.statSync(`/proc/${one.containers[0].pid}/ns/${t}`).ino, pin, t);
    assert.notEqual(Deno.statSync(`/proc/self/ns/${t}`).ino, pin, `${t} is not the host's`);
  }
  const hn = await rkl(env!, ["pod", "exec", "one", "main", "--", "hostname"]);
  assert.equal(hn.stdout.trim(), "one");
  // Two pods on one network reach each other by IP.
  const two = await podState("two");
  const ping = await rkl(env!, [
    "pod",
    "exec",
    "one",
    "main",
    "--",
    "ping",
    "-c",
    "1",
    "-W",
    "2",
    two.ip,
  ]);
  assert.equal(ping.code, 0, ping.stdout + ping.stderr);
  await rklOk(env!, ["pod", "rm", "-f", "one"]);
  await rklOk(env!, ["pod", "rm", "-f", "two"]);
  await assertCensusUnchanged();
});

test("pod create leaves the app containers created (phase Pending); pod start runs them", async () => {
  const file = await manifest(
    "twostep",
    `apiVersion: v1\nkind: Pod\nmetadata: {name: twostep}\nspec:\n  containers:\n    - {name: main, image: ./bundles/busybox, command: [sleep, "3600"]}\n`,
  );
  assert.equal((await rkl(env!, ["pod", "create", "--network", env!.network, file])).code, 0);
  let s = await podState("twostep");
  assert.equal(s.phase, "Pending");
  assert.equal(s.containers[0].status, "created");
  await rklOk(env!, ["pod", "start", "twostep"]);
  s = await podState("twostep");
  assert.equal(s.phase, "Running");
  const again = await rkl(env!, ["pod", "create", "--network", env!.network, file]);
  assert.equal(again.code, 1);
  assert.match(
    again.stderr,
    /twostep\.yaml:3:18: Cannot create pod: name "twostep" is already in use/,
  );
  await rklOk(env!, ["pod", "rm", "-f", "twostep"]);
  await assertCensusUnchanged();
});

test("bad pod specs each give one located error, exit 2, and create nothing", async () => {
  const head = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n";
  const cases: [string, string, RegExp][] = [
    [
      "kind",
      "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {}\n",
      /kind\.yaml:2:7: kind: StatefulSet is not run by rkl: run it as a Deployment/,
    ],
    [
      "dupname",
      head +
      "    - {name: a, image: ./bundles/busybox, args: [sh]}\n    - {name: a, image: ./bundles/busybox, args: [sh]}\n",
      /dupname\.yaml:7:14: spec\.containers\[1\]\.name: container name "a" is already used in spec\.containers\[0\]/,
    ],
    [
      "novolume",
      head +
      "    - {name: a, image: ./bundles/busybox, args: [sh], volumeMounts: [{name: data, mountPath: /d}]}\n",
      /novolume\.yaml:6:77: spec\.containers\[0\]\.volumeMounts\[0\]\.name: volume "data" is not declared/,
    ],
    [
      "quantity",
      head +
      "    - name: a\n      image: ./bundles/busybox\n      args: [sh]\n      resources: {limits: {cpu: 1.5.0}}\n",
      /quantity\.yaml:9:33: spec\.containers\[0\]\.resources\.limits\.cpu: quantity "1\.5\.0"/,
    ],
    [
      "podname",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad.Name}\nspec:\n  containers: [{name: a, image: x}]\n",
      /podname\.yaml:3:18: metadata\.name: "Bad\.Name" is not a DNS-1123 label/,
    ],
    [
      "bundle3",
      head +
      "    - {name: a, image: ./bundles/busybox, args: [sh]}\n    - {name: b, image: ./bundles/busybox, args: [sh]}\n    - {name: c, image: ./bundles/nope, args: [sh]}\n",
      /bundle3\.yaml:8:24: spec\.containers\[2\]\.image: bundle ".*bundles\/nope" has no rootfs\/ directory/,
    ],
    [
      "empty",
      head.replace("  containers:\n", "  containers: []\n"),
      /empty\.yaml:5:15: spec\.containers: a pod needs at least one container/,
    ],
  ];
  for (const [label, text, want] of cases) {
    const file = await manifest(label, text);
    assertRejected(label, await run(file), want);
  }
  await assertCensusUnchanged();
});

cleanupAfterAll(env);
