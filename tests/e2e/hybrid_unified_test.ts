/**
 * A hybrid host (cgroup v1, cgroup2 at /sys/fs/cgroup/unified with no
 * controllers): a container's processes are in its cgroup's twin in the
 * unified hierarchy (youki 0.7 leaves them in the v2 root; rkl moves the
 * init there between create and start, runc does it itself), so its PSI
 * files, which the CRI's ContainerStats reads, are its own; and `rm`
 * leaves nothing in unified/. Single containers (youki, runc) and a pod's.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirsBelow } from "../_helpers/census.ts";
import { detectCgroups } from "../../src/sys/cgroups/detect.ts";
import { hybridUnifiedRoot } from "../../src/sys/cgroups/hybrid.ts";
import { cgroupPressure } from "../../src/cri/server/metrics_cgroup.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "runc");
const cg = ready ? detectCgroups().manager : undefined;
const unified = cg ? hybridUnifiedRoot(cg) : undefined;
if (ready && unified === undefined && Deno.env.get("CI") === "true") {
  throw new Error("hybrid_unified_test: this host is not a hybrid cgroup host");
}
const hybrid = ready && unified !== undefined;
const env = hybrid ? await makeEnv("hyb", 41) : undefined;
const { test } = censusTests(hybrid, () => env!);
cleanupAfterAll(env, () => {
  assert.deepEqual(leftInUnified(), [], "left in unified/");
});

/** Every directory below the env's cgroup parent in the unified hierarchy. */
function leftInUnified(): string[] {
  return dirsBelow(`${unified}/${env!.cgroupParent}`);
}

/** The `0::` line of /proc/PID/cgroup: the process's cgroup v2 path. */
function v2Path(pid: number): string {
  const line = Deno.readTextFileSync(`/proc/${pid}/cgroup`).split("\n").find((l) =>
    l.startsWith("0::")
  );
  assert.ok(line, `no 0:: line for pid ${pid}`);
  return line.slice(3);
}

/** Asserts that the process is in its cgroup's twin and that its PSI reads from there. */
function assertInTwin(what: string, pid: number, cgroupPath: string): void {
  assert.equal(v2Path(pid), `/${cgroupPath}`, `${what}: pid ${pid}'s 0:: line`);
  const procs = Deno.readTextFileSync(`${unified}/${cgroupPath}/cgroup.procs`);
  assert.ok(procs.split("\n").includes(String(pid)), `${what}: ${procs}`);
  const psi = cgroupPressure(cg!, cgroupPath);
  for (const k of ["cpu", "memory", "io"] as const) {
    assert.ok(psi[k]?.Some, `${what}: no ${k} PSI read from ${unified}/${cgroupPath}`);
  }
}

test("a single container's processes are in its cgroup's twin in unified/, its PSI is read there, and rm -f removes it (youki, runc)", async () => {
  const file = `${env!.dir}/c.yaml`;
  await Deno.writeTextFile(
    file,
    `name: hyb\nimage: ${REPO}/bundles/busybox\ncommand: [sh, -c, "sleep 300 & wait"]\n`,
  );
  for (const runtime of ["youki", "runc"]) {
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    const s = JSON.parse(await rklOk(env!, ["container", "state", "hyb", "-o", "json"]));
    assert.ok(s.pid > 1, `${runtime}: pid ${s.pid}`);
    assertInTwin(runtime, s.pid, s.cgroup.path);
    // The init's children follow it (they were forked after the move).
    const kids = Deno.readTextFileSync(`/proc/${s.pid}/task/${s.pid}/children`).trim().split(/\s+/)
      .filter(Boolean).map(Number);
    assert.ok(kids.length > 0, `${runtime}: no child of ${s.pid}`);
    for (const k of kids) assert.equal(v2Path(k), `/${s.cgroup.path}`, `${runtime}: child ${k}`);
    await rklOk(env!, ["container", "rm", "-f", "hyb"]);
    assert.deepEqual(leftInUnified(), [], `${runtime}: left in unified/ after rm -f`);
  }
});

test("a pod's containers are in their twins in unified/ too, and pod rm -f leaves none", async () => {
  const link = `${env!.dir}/bundles`;
  await Deno.symlink(`${REPO}/bundles`, link).catch(() => {});
  const file = `${env!.dir}/pod.yaml`;
  await Deno.writeTextFile(
    file,
    `apiVersion: v1
kind: Pod
metadata: {name: hybp}
spec:
  containers:
    - {name: a, image: ./bundles/busybox, command: [sleep, "300"]}
    - {name: b, image: ./bundles/busybox, command: [sleep, "300"]}
`,
  );
  await rklOk(env!, ["pod", "run", "--network", env!.network, file], { cwd: env!.dir });
  const pod = JSON.parse(await rklOk(env!, ["pod", "state", "hybp", "-o", "json"]));
  const members = pod.containers as { name: string; pid: number }[];
  assert.equal(members.length, 2, JSON.stringify(pod));
  for (const m of members) {
    assertInTwin(`pod container ${m.name}`, m.pid, `${env!.cgroupParent}/pod-hybp/${m.name}`);
  }
  await rklOk(env!, ["pod", "rm", "-f", "hybp"]);
  assert.deepEqual(leftInUnified(), [], "left in unified/ after pod rm -f");
});
