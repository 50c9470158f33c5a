/**
 * Containers created one after another in a pod that shares its PID
 * namespace (CRI NamespaceMode POD for pid, as shareProcessNamespace), with
 * youki on a cgroup v1 host. youki 0.7.0 as published read /proc/<the new
 * container's pid inside the pod> on the runtime's /proc while mounting the
 * container's cgroups: a host pid that happened not to exist failed the
 * create ("failed to prepare rootfs", Procfs(NotFound("/proc/N"))), and one
 * that existed lent its cgroup to the container's mounts. rkl's patch
 * (scripts/youki/libcontainer-cgroup-v1-joined-pidns.patch) reads pid 1 there.
 *
 * To make the bad case certain rather than a matter of which host pids
 * exist, every other create first sets the pod namespace's ns_last_pid so
 * that the new container gets a pid no host process has.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, waitFor } from "../_helpers/env.ts";
import { crictlTools } from "../_helpers/crictl.ts";
import { requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { mirrorBusybox, type Registry, startRegistry } from "../_helpers/oci.ts";

const ready = requires(
  "root",
  "conmon",
  "cni",
  "iptables",
  "ip",
  "bundles",
  "youki",
  "registry",
  "crictl",
);
const env = ready ? await makeEnv("sharedpid", 29) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let daemon: Deno.ChildProcess | undefined;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);
const dec = new TextDecoder();

function writeJson(name: string, v: unknown): string {
  const p = `${env!.dir}/${name}`;
  Deno.writeTextFileSync(p, JSON.stringify(v));
  return p;
}

function hostPidExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** The next process made in the PID namespace of host process `member` gets pid `next`. */
async function nextPidInPod(member: number, next: number): Promise<void> {
  // The write applies to the writer's own PID namespace: nsenter -p runs sh in the pod's.
  const out = await new Deno.Command("nsenter", {
    args: [
      "-t",
      String(member),
      "-p",
      "--",
      "sh",
      "-c",
      `echo ${next - 1} > /proc/sys/kernel/ns_last_pid`,
    ],
    stdin: "null",
  }).output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
}

test("20 creates in a shared-PID pod succeed, each container mounted with its own cgroup", async () => {
  registry = await startRegistry(`${env!.dir}/registry`);
  await mirrorBusybox(registry, env!.dir);
  Deno.mkdirSync(`${env!.dir}/manifests`);
  daemon = startDaemon(
    { ...env!, env: { ...env!.env, RKL_REGISTRIES_CONFIG: `${env!.dir}/registries.yaml` } },
    `${env!.dir}/manifests`,
    { args: ["--cri-socket", sock(), "--pause-image", ""] },
  );
  await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);
  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = writeJson("pod.json", {
    metadata: { name: "sharedpid", namespace: "default", uid: "uid-sharedpid", attempt: 0 },
    log_directory: `${env!.dir}/logs`,
    // pid 0 is NamespaceMode POD: one PID namespace for the pod's containers.
    linux: { security_context: { namespace_options: { pid: 0 } } },
  });
  const pod = await crictlOk(["runp", podFile]);
  try {
    // A long-running member, to enter the pod's PID namespace from the host.
    const anchor = await crictlOk([
      "create",
      pod,
      writeJson("anchor.json", {
        metadata: { name: "anchor" },
        image: { image: "busybox:1.36" },
        command: ["sleep", "3600"],
        log_path: "anchor.log",
      }),
      podFile,
    ]);
    await crictlOk(["start", anchor]);
    const anchorPid = JSON.parse(await crictlOk(["inspect", anchor])).info.pid as number;
    assert.ok(anchorPid > 1, `anchor pid ${anchorPid}`);

    const failures: string[] = [];
    let forced = 400;
    for (let i = 0; i < 20; i++) {
      let want: number | undefined;
      if (i % 2 === 0) {
        // A pod pid with no host process of that number (youki 0.7.0's NotFound case).
        while (hostPidExists(forced)) forced++;
        want = forced;
        forced += 7;
        await nextPidInPod(anchorPid, want);
      }
      const c = await crictl([
        "create",
        pod,
        writeJson(`c${i}.json`, {
          metadata: { name: `c${i}` },
          image: { image: "busybox:1.36" },
          // The container's cgroup mounts are its own when they list its pid.
          command: [
            "sh",
            "-c",
            "for h in pids memory cpu; do grep -qx $$ /sys/fs/cgroup/$h/cgroup.procs || " +
            'echo "not-in-$h"; done; echo "pid-$$"',
          ],
          log_path: `c${i}.log`,
        }),
        podFile,
      ]);
      if (c.code !== 0) {
        const line = c.stderr.trim().split("\n").filter((l) => /rror|fail/.test(l)).pop();
        failures.push(
          `#${i} (pod pid ${want ?? "any"}): create failed: ${line ?? c.stderr.trim()}`,
        );
        continue;
      }
      const id = c.stdout.trim();
      await crictlOk(["start", id]);
      await waitFor(`c${i} to exit`, async () => {
        const s = JSON.parse(await crictlOk(["inspect", id])).status;
        return s.state === "CONTAINER_EXITED";
      }, 20_000);
      const out = (await crictlOk(["logs", id])).trim();
      const expected = want === undefined ? /^pid-\d+$/ : new RegExp(`^pid-${want}$`);
      if (!expected.test(out)) {
        failures.push(`#${i} (pod pid ${want ?? "any"}): ${JSON.stringify(out)}`);
      }
      await crictlOk(["rm", id]);
    }
    assert.deepEqual(failures, [], `${failures.length}/20 creates went wrong`);
  } finally {
    await crictl(["rmp", "-f", pod]);
    // The image is part of the census: it goes too.
    await crictl(["rmi", "busybox:1.36"]);
  }
});

cleanupAfterAll(env, async () => {
  if (daemon) await stopDaemon(daemon);
  await registry?.stop();
});
