/**
 * Cgroups against the container: a non-privileged container cannot lift its
 * own limits or make sub-cgroups (cgroupfs is read-only inside, under youki
 * and runc); sub-cgroups a container or anyone else made below its cgroup
 * never stop the first `rm -f`; an OOM kill shows as the reason `OOMKilled`
 * in `container state` and `pod state`. Each ends with the host census unchanged.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirsBelow } from "../_helpers/census.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "runc");
const env = ready ? await makeEnv("cgro", 16) : undefined;
const { test } = censusTests(ready, () => env!);

const BUSYBOX = `${REPO}/bundles/busybox`;
const RUNTIMES = ["youki", "runc"];

async function write(name: string, text: string): Promise<string> {
  const path = `${env!.dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

interface State {
  status: string;
  pid: number | null;
  exitCode: number | null;
  reason: string | null;
  cgroup: { path: string };
}

async function state(name: string): Promise<State> {
  return JSON.parse(await rklOk(env!, ["container", "state", name, "-o", "json"]));
}

/** The container's directory in each host hierarchy it has one in. */
function hostDirs(cgroupPath: string): string[] {
  return [...Deno.readDirSync("/sys/fs/cgroup")].map((h) =>
    `/sys/fs/cgroup/${h.name}/${cgroupPath}`
  )
    .filter((d) => {
      try {
        return Deno.statSync(d).isDirectory;
      } catch {
        return false;
      }
    });
}

/** Every directory below the test's cgroup parent, in every hierarchy. */
function leftBelowParent(): string[] {
  return [...Deno.readDirSync("/sys/fs/cgroup")].flatMap((h) =>
    dirsBelow(`/sys/fs/cgroup/${h.name}/${env!.cgroupParent}`)
  );
}

const limited = (name: string, command: string, extra = "") =>
  write(
    `${name}.yaml`,
    `name: ${name}
image: ${BUSYBOX}
command: [sh, -c, ${JSON.stringify(command)}]
resources:
  limits: {cpu: 500m, memory: 64Mi}
${extra}`,
  );

test("a container cannot raise its limits or make sub-cgroups: cgroupfs is read-only inside (youki, runc)", async () => {
  // Each write prints its exit status: 0 would mean the container changed its own cgroup.
  const probe = [
    "echo 4294967296 > /sys/fs/cgroup/memory/memory.limit_in_bytes; echo mem=$?",
    "echo max > /sys/fs/cgroup/pids/pids.max; echo pids=$?",
    "echo -1 > /sys/fs/cgroup/cpu/cpu.cfs_quota_us; echo cpu=$?",
    "mkdir /sys/fs/cgroup/memory/child; echo mkdir=$?",
    "mkdir /sys/fs/cgroup/pids/child; echo mkdir2=$?",
    "echo 1 > /sys/fs/cgroup/memory/cgroup.clone_children; echo clone=$?",
  ].join("; ");
  for (const runtime of RUNTIMES) {
    const file = await limited("lim", "sleep 300");
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    const s = await state("lim");
    const dirs = hostDirs(s.cgroup.path);
    const mem = dirs.find((d) => d.includes("/memory/"))!;
    const pids = dirs.find((d) => d.includes("/pids/"))!;
    const cpu = dirs.find((d) => /\/cpu(,cpuacct)?\//.test(d))!;
    assert.ok(mem && pids && cpu, `${runtime}: host cgroup dirs ${dirs}`);
    const read = (f: string) => Deno.readTextFileSync(f).trim();
    const before = [
      read(`${mem}/memory.limit_in_bytes`),
      read(`${pids}/pids.max`),
      read(`${cpu}/cpu.cfs_quota_us`),
    ];
    assert.deepEqual(before, [String(64 * 1024 * 1024), "4096", "50000"], runtime);

    const out = (await rkl(env!, ["container", "exec", "lim", "--", "sh", "-c", probe])).stdout;
    for (const k of ["mem", "pids", "cpu", "mkdir", "mkdir2", "clone"]) {
      const m = new RegExp(`^${k}=(\\d+)$`, "m").exec(out);
      assert.ok(m, `${runtime}: no ${k}= in ${out}`);
      assert.notEqual(m[1], "0", `${runtime}: the container could write ${k}: ${out}`);
    }
    // Every cgroup hierarchy inside is mounted read-only.
    const mounts = await rklOk(env!, ["container", "exec", "lim", "--", "cat", "/proc/mounts"]);
    const cg = mounts.split("\n").filter((l) => l.split(" ")[2] === "cgroup");
    assert.ok(cg.length >= 4, `${runtime}: cgroup mounts inside: ${mounts}`);
    for (const l of cg) assert.match(l.split(" ")[3], /^ro,/, `${runtime}: ${l}`);

    // On the host nothing moved, and no child appeared.
    assert.deepEqual(
      [
        read(`${mem}/memory.limit_in_bytes`),
        read(`${pids}/pids.max`),
        read(`${cpu}/cpu.cfs_quota_us`),
      ],
      before,
      runtime,
    );
    for (const d of dirs) {
      assert.deepEqual(
        [...Deno.readDirSync(d)].filter((e) => e.isDirectory).map((e) => e.name),
        [],
        `${runtime}: ${d}`,
      );
    }
    const rm = await rkl(env!, ["container", "rm", "-f", "lim"]);
    assert.equal(rm.code, 0, `${runtime}: first rm -f: ${rm.stderr}`);
    assert.deepEqual(leftBelowParent(), [], runtime);
  }
});

test("a privileged container keeps a writable cgroupfs; the sub-cgroups it makes go with the first rm -f (youki, runc)", async () => {
  for (const runtime of RUNTIMES) {
    // It makes children of its own cgroups, then waits.
    const file = await limited(
      "priv",
      "mkdir -p /sys/fs/cgroup/memory/sub/deeper /sys/fs/cgroup/pids/sub && echo made; sleep 300",
      "securityContext: {privileged: true}\n",
    );
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    await waitFor(
      `${runtime}: the container's mkdir`,
      async () => (await rklOk(env!, ["container", "logs", "priv"])).includes("made"),
    );
    const s = await state("priv");
    const dirs = hostDirs(s.cgroup.path);
    const mem = dirs.find((d) => d.includes("/memory/"))!;
    const pids = dirs.find((d) => d.includes("/pids/"))!;
    assert.ok(Deno.statSync(`${mem}/sub/deeper`).isDirectory, runtime);
    assert.ok(Deno.statSync(`${pids}/sub`).isDirectory, runtime);
    const rm = await rkl(env!, ["container", "rm", "-f", "priv"]);
    assert.equal(rm.code, 0, `${runtime}: first rm -f: ${rm.stderr}`);
    assert.deepEqual(leftBelowParent(), [], runtime);
    assert.equal((await rkl(env!, ["container", "list", "-q"])).stdout, "");
  }
});

test("sub-cgroups made from the host below a container's cgroup, one holding its task, go with the first rm -f (youki, runc)", async () => {
  for (const runtime of RUNTIMES) {
    const file = await limited("hostchild", "sleep 300");
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    const s = await state("hostchild");
    const dirs = hostDirs(s.cgroup.path);
    for (const d of dirs) Deno.mkdirSync(`${d}/a/b`, { recursive: true });
    const mem = dirs.find((d) => d.includes("/memory/"))!;
    Deno.writeTextFileSync(`${mem}/a/b/cgroup.procs`, String(s.pid));
    const rm = await rkl(env!, ["container", "rm", "-f", "hostchild"]);
    assert.equal(rm.code, 0, `${runtime}: first rm -f: ${rm.stderr}`);
    assert.deepEqual(leftBelowParent(), [], runtime);
  }
});

test("an OOM-killed container shows exit 137 and reason OOMKilled in container state and pod state (text and json)", async () => {
  // The shell doubles a string until the 16 MiB limit is hit.
  const hog = "x=a; while :; do x=$x$x; done";
  const file = await write(
    "oom.yaml",
    `name: oom
image: ${BUSYBOX}
command: [sh, -c, ${JSON.stringify(hog)}]
resources:
  limits: {memory: 16Mi}
`,
  );
  await rklOk(env!, ["container", "run", "--network", "none", file]);
  await waitFor("the OOM kill", async () => (await state("oom")).status === "exited", 30_000);
  const s = await state("oom");
  assert.deepEqual([s.exitCode, s.reason], [137, "OOMKilled"]);
  assert.match(
    await rklOk(env!, ["container", "state", "oom"]),
    /^Status:\s+exited \(exit code 137, OOMKilled\)$/m,
  );
  // A container that ends by itself says so, and one killed otherwise is not OOMKilled.
  const done = await write(
    "done.yaml",
    `name: done\nimage: ${BUSYBOX}\ncommand: [sh, -c, "exit 3"]\n`,
  );
  await rklOk(env!, ["container", "run", "--network", "none", done]);
  await waitFor("exit 3", async () => (await state("done")).status === "exited");
  assert.deepEqual([(await state("done")).exitCode, (await state("done")).reason], [3, "Error"]);
  await rklOk(env!, ["container", "rm", "-f", "oom"]);
  await rklOk(env!, ["container", "rm", "-f", "done"]);

  const pod = await write(
    "oompod.yaml",
    `apiVersion: v1
kind: Pod
metadata: {name: oompod}
spec:
  restartPolicy: Never
  containers:
    - name: hog
      image: ${BUSYBOX}
      command: [sh, -c, ${JSON.stringify(hog)}]
      resources: {limits: {memory: 16Mi}}
    - name: idle
      image: ${BUSYBOX}
      command: [sleep, "300"]
`,
  );
  await rklOk(env!, ["pod", "run", "--network", "none", pod]);
  type PodState = {
    containers: { name: string; status: string; exitCode: number | null; reason: string | null }[];
  };
  const podState = async (): Promise<PodState> =>
    JSON.parse(await rklOk(env!, ["pod", "state", "oompod", "-o", "json"]));
  await waitFor(
    "the pod's OOM kill",
    async () => (await podState()).containers.find((c) => c.name === "hog")?.status === "exited",
    30_000,
  );
  const ps = await podState();
  assert.deepEqual(
    ps.containers.map((c) => [c.name, c.status, c.exitCode, c.reason]),
    [["hog", "exited", 137, "OOMKilled"], ["idle", "running", null, null]],
  );
  const text = await rklOk(env!, ["pod", "state", "oompod"]);
  assert.match(text, /^\s+hog\s+exited\s+-\s+137\s+OOMKilled\s/m, text);
  await rklOk(env!, ["pod", "rm", "-f", "oompod"]);
});

cleanupAfterAll(env);
