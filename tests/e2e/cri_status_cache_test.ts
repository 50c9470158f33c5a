/**
 * ContainerStatus from the daemon's memory (src/cri/server/status_cache.ts)
 * is never stale: the first status asked after a container's process has
 * ended says EXITED with its exit code, and a record another process writes
 * is what the next status shows. Driven over `rkl daemon --cri-socket` by a
 * gRPC client in this process (crictl's 20-30 ms a call would ask too
 * late to catch the moment after an exit); every test ends with the census.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { censusTests, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { crictlTools } from "../_helpers/crictl.ts";
import { requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { mirrorBusybox, type Registry, startRegistry } from "../_helpers/oci.ts";
import { serviceDefinition } from "../../src/cri/grpc.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "registry", "crictl");
const env = ready ? await makeEnv("cristat", 31) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let daemon: Deno.ChildProcess | undefined;
// deno-lint-ignore no-explicit-any
let client: any;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;

function call(method: string, req: Msg): Promise<Msg> {
  return new Promise((resolve, reject) =>
    client[method](req, (err: Error | null, res: Msg) => err ? reject(err) : resolve(res))
  );
}

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  env!.env.RKL_REGISTRIES_CONFIG = await mirrorBusybox(registry, env!.dir);
  Deno.mkdirSync(`${env!.dir}/manifests`, { recursive: true });
  daemon = startDaemon(env!, `${env!.dir}/manifests`, {
    args: ["--cri-socket", sock()],
    stderr: Deno.env.get("RKL_TEST_DAEMON_LOG") ? "inherit" : "null",
  });
  await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);
  const Rt = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
  client = new Rt(`unix://${sock()}`, grpc.credentials.createInsecure());
}

/** The image, pulled for one test (the census counts the image store too: rmi at the end). */
async function withImage(fn: () => Promise<void>): Promise<void> {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  await fn();
  await crictlOk(["rmi", "busybox:1.36"]);
}

const podConfig = (name: string) => ({
  metadata: { name, namespace: "default", uid: `uid-${name}`, attempt: 0 },
  log_directory: `${env!.dir}/logs/${name}`,
  linux: {},
});

/** A sandbox and a started container running `command`; its status asked twice (kept). */
async function started(name: string, command: string[]) {
  const config = podConfig(name);
  const { pod_sandbox_id } = await call("RunPodSandbox", { config });
  const { container_id } = await call("CreateContainer", {
    pod_sandbox_id,
    config: {
      metadata: { name: "app" },
      image: { image: "busybox:1.36" },
      command,
      log_path: "app.log",
      linux: {},
    },
    sandbox_config: config,
  });
  await call("StartContainer", { container_id });
  const first = await status(container_id);
  assert.equal(first.state, "CONTAINER_RUNNING");
  assert.equal((await status(container_id)).state, "CONTAINER_RUNNING");
  const verbose = await call("ContainerStatus", { container_id, verbose: true });
  const pid = JSON.parse(verbose.info.info).pid as number;
  assert.ok(pid > 1, `a pid: ${verbose.info.info}`);
  return { pod: pod_sandbox_id as string, id: container_id as string, pid };
}

const status = async (container_id: string) =>
  (await call("ContainerStatus", { container_id })).status;

/** Whether `pid` has ended (a zombie or reaped): read from /proc, as any process may. */
function ended(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

/** Polls (1 ms apart, with a deadline) until `pid` has ended. */
async function untilEnded(pid: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ended(pid)) {
    if (Date.now() > end) throw new Error(`process ${pid} still runs after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function removePod(pod: string): Promise<void> {
  await call("StopPodSandbox", { pod_sandbox_id: pod });
  await call("RemovePodSandbox", { pod_sandbox_id: pod });
}

test("the first ContainerStatus after the container's process ends says EXITED with its code", () =>
  withImage(async () => {
    for (let i = 0; i < 3; i++) {
      // Killed from outside (no CRI call, no record written): 128 + 9.
      const killed = await started(`kill${i}`, ["sleep", "300"]);
      Deno.kill(killed.pid, "SIGKILL");
      await untilEnded(killed.pid);
      const k = await status(killed.id);
      assert.equal(k.state, "CONTAINER_EXITED", `round ${i}: killed, then ${k.state}`);
      assert.equal(k.exit_code, 137);
      assert.equal(k.reason, "Error");
      assert.notEqual(k.finished_at, "0");
      assert.deepEqual(await status(killed.id), k, "the exited answer stays");
      // Ends by itself with a code of its own.
      const own = await started(`exit${i}`, ["sh", "-c", "sleep 0.3; exit 7"]);
      await untilEnded(own.pid);
      const o = await status(own.id);
      assert.equal(o.state, "CONTAINER_EXITED", `round ${i}: exited, then ${o.state}`);
      assert.equal(o.exit_code, 7);
      await removePod(killed.pod);
      await removePod(own.pod);
    }
  }));

const recordPath = (id: string) => `${env!.root}/records/containers/${id}.json`;

/** Writes the record as another rkl process does: a new file renamed over it. */
function rewrite(id: string, change: (r: Msg) => void): void {
  const rec = JSON.parse(Deno.readTextFileSync(recordPath(id)));
  change(rec);
  const tmp = `${recordPath(id)}.tmp-test`;
  Deno.writeTextFileSync(tmp, JSON.stringify(rec, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, recordPath(id));
}

test("a record another process writes is what the next ContainerStatus shows", () =>
  withImage(async () => {
    const c = await started("edited", ["sleep", "300"]);
    assert.equal((await status(c.id)).resources.linux.memory_limit_in_bytes, "0");
    // A new limit written by another process, at once and again later.
    for (const mb of [64, 96]) {
      rewrite(c.id, (r) => r.limits = { ...r.limits, memoryLimit: mb << 20 });
      const s = await status(c.id);
      assert.equal(s.resources.linux.memory_limit_in_bytes, String(mb << 20));
      assert.equal(s.state, "CONTAINER_RUNNING");
    }
    // The daemon's own write again (UpdateContainerResources), then another process's.
    await call("UpdateContainerResources", {
      container_id: c.id,
      linux: { memory_limit_in_bytes: String(128 << 20) },
    });
    assert.equal((await status(c.id)).resources.linux.memory_limit_in_bytes, String(128 << 20));
    assert.equal((await status(c.id)).resources.linux.memory_limit_in_bytes, String(128 << 20));
    rewrite(c.id, (r) => r.source.meta.labels = { ...r.source.meta.labels, edited: "yes" });
    assert.equal((await status(c.id)).labels.edited, "yes");
    // Another rkl, in its own process, stops the container: seen at once.
    const stop = await rkl({ ...env!, env: { ...env!.env, RKL_NO_DAEMON: "1" } }, [
      "container",
      "stop",
      "-t",
      "0",
      c.id,
    ]);
    assert.equal(stop.code, 0, stop.stderr);
    const s = await status(c.id);
    assert.equal(s.state, "CONTAINER_EXITED");
    assert.equal(s.exit_code, 137);
    await removePod(c.pod);
    await assert.rejects(status(c.id), /NOT_FOUND|not found/);
  }));

cleanupAfterAll(env, async () => {
  client?.close();
  if (daemon) await stopDaemon(daemon);
  await registry?.stop();
  const left = await rkl(env!, ["pod", "list", "-q"]);
  assert.equal(left.stdout.trim(), "", "no CRI sandbox is left once the tests are done");
});
