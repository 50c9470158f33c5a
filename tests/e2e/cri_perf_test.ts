/**
 * What the CRI's faster calls leave out, and what they must not (issue 35):
 * CreateContainer runs nothing and mounts nothing until StartContainer (as
 * containerd leaves its task to the start), and RemoveContainer answers
 * before its teardown has ended, the container gone from every later call
 * all the same. Driven by crictl over `rkl daemon --cri-socket`; every test
 * ends with the host census as before.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { crictlTools } from "../_helpers/crictl.ts";
import { requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { mirrorBusybox, type Registry, startRegistry } from "../_helpers/oci.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "registry", "crictl");
const env = ready ? await makeEnv("criperf", 51) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let daemon: Deno.ChildProcess | undefined;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  env!.env.RKL_REGISTRIES_CONFIG = await mirrorBusybox(registry, env!.dir);
  Deno.writeTextFileSync(`${env!.dir}/crictl.yaml`, "debug: false\n");
  Deno.mkdirSync(`${env!.dir}/manifests`, { recursive: true });
  daemon = startDaemon(env!, `${env!.dir}/manifests`, {
    args: ["--cri-socket", sock()],
    stderr: Deno.env.get("RKL_TEST_DAEMON_LOG") ? "inherit" : "null",
  });
  await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);
}

/** The image, pulled for one test (the census counts the image store too: rmi at the end). */
async function withImage(fn: () => Promise<void>): Promise<void> {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  await fn();
  await crictlOk(["rmi", "busybox:1.36"]);
}

function writeJson(name: string, v: unknown): string {
  const p = `${env!.dir}/${name}`;
  Deno.writeTextFileSync(p, JSON.stringify(v));
  return p;
}

function podFile(name: string): string {
  return writeJson(`${name}-pod.json`, {
    metadata: { name, namespace: "default", uid: `uid-${name}`, attempt: 0 },
    log_directory: `${env!.dir}/logs/${name}`,
    linux: {},
  });
}

const ctrFile = (name: string) =>
  writeJson(`${name}-ctr.json`, {
    metadata: { name },
    image: { image: "busybox:1.36" },
    command: ["sleep", "300"],
    log_path: `${name}.log`,
    linux: {},
  });

interface Rec {
  id: string;
  cgroupPath: string;
  dirs: { rootfs: string; conmonDir: string };
  runtime: { root: string };
}

const record = (id: string): Rec =>
  JSON.parse(Deno.readTextFileSync(`${env!.root}/records/containers/${id}.json`));

const mounted = (path: string) =>
  Deno.readTextFileSync("/proc/self/mountinfo").split("\n").some((l) => l.split(" ")[4] === path);

const exists = (path: string) => {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

const state = async (id: string) => JSON.parse(await crictlOk(["inspect", id])).status.state;

test("CreateContainer runs and mounts nothing until StartContainer; a limit set between reaches the cgroup", () =>
  withImage(async () => {
    const pf = podFile("lazy");
    const pod = await crictlOk(["runp", pf]);
    const id = await crictlOk(["create", pod, ctrFile("app"), pf]);
    const rec = record(id);
    assert.equal(await state(id), "CONTAINER_CREATED");
    assert.ok(!mounted(rec.dirs.rootfs), "no rootfs mounted before the start");
    assert.ok(!exists(`${rec.runtime.root}/${rec.id}`), "no runtime container before the start");
    assert.ok(!exists(`${rec.dirs.conmonDir}/conmon.pid`), "no conmon before the start");
    // Not launched: the limit goes to config.json, and from there to the cgroup at the start.
    await crictlOk(["update", "--memory", String(96 * 1024 * 1024), id]);
    await crictlOk(["start", id]);
    assert.equal(await state(id), "CONTAINER_RUNNING");
    assert.ok(mounted(rec.dirs.rootfs));
    const limit = Deno.readTextFileSync(
      `/sys/fs/cgroup/memory/${rec.cgroupPath}/memory.limit_in_bytes`,
    ).trim();
    assert.equal(limit, String(96 * 1024 * 1024));
    assert.equal((await crictlOk(["exec", "-s", id, "echo", "up"])).trim(), "up");
    // A second one never started: StopPodSandbox ends it, RemovePodSandbox takes it all.
    const idle = await crictlOk(["create", pod, ctrFile("idle"), pf]);
    await crictlOk(["stopp", pod]);
    assert.equal(await state(idle), "CONTAINER_EXITED");
    assert.equal(await state(id), "CONTAINER_EXITED");
    await crictlOk(["rmp", pod]);
  }));

test("a created container removed without a start leaves nothing", () =>
  withImage(async () => {
    const pf = podFile("never");
    const pod = await crictlOk(["runp", pf]);
    const id = await crictlOk(["create", pod, ctrFile("app"), pf]);
    const rec = record(id);
    await crictlOk(["rm", id]);
    assert.equal((await crictlOk(["ps", "-a", "-q"])).trim(), "");
    // The removal of its sandbox waits for its own.
    await crictlOk(["rmp", "-f", pod]);
    assert.ok(!exists(`${env!.root}/containers/${rec.id}`), "its dir is gone");
  }));

test("RemoveContainer: gone from every later call at once, its sandbox's removal right after leaves nothing", () =>
  withImage(async () => {
    for (let i = 0; i < 3; i++) {
      const pf = podFile(`gone${i}`);
      const pod = await crictlOk(["runp", pf]);
      const id = await crictlOk(["create", pod, ctrFile("app"), pf]);
      await crictlOk(["start", id]);
      await crictlOk(["stop", "-t", "0", id]);
      await crictlOk(["rm", id]);
      // Asked at once, while its teardown may still run.
      assert.equal((await crictlOk(["ps", "-a", "-q"])).trim(), "");
      assert.notEqual((await crictl(["inspect", id])).code, 0);
      await crictlOk(["stopp", pod]);
      await crictlOk(["rmp", pod]);
      assert.equal((await crictlOk(["pods", "-q"])).trim(), "");
    }
  }));

cleanupAfterAll(env, async () => {
  if (daemon) await stopDaemon(daemon);
  await registry?.stop();
  const left = await rkl(env!, ["pod", "list", "-q"]);
  assert.equal(left.stdout.trim(), "", "no CRI sandbox is left once the tests are done");
  const ctrs = await rkl(env!, ["container", "list", "-q"]);
  assert.equal(ctrs.stdout.trim(), "", "no container record is left");
});
