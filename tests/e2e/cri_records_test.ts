/**
 * The CRI's metadata on disk: a sandbox and a container made through the CRI
 * keep it as their record's `source` (kind cri), not as core fields; records
 * an older rkl wrote with a `cri` field still load after a daemon restart,
 * list, answer status and exec, stop (rewritten in the new shape) and go.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
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
const env = ready ? await makeEnv("crirec", 36) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let daemon: Deno.ChildProcess | undefined;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);

async function startCriDaemon(): Promise<void> {
  Deno.mkdirSync(`${env!.dir}/manifests`, { recursive: true });
  daemon = startDaemon(env!, `${env!.dir}/manifests`, {
    args: ["--cri-socket", sock()],
    stderr: Deno.env.get("RKL_TEST_DAEMON_LOG") ? "inherit" : "null",
  });
  await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);
}

function writeJson(name: string, v: unknown): string {
  const p = `${env!.dir}/${name}`;
  Deno.writeTextFileSync(p, JSON.stringify(v));
  return p;
}

const records = (kind: string, id: string) => `${env!.dir}/root/records/${kind}/${id}.json`;
const readRecord = (kind: string, id: string) =>
  JSON.parse(Deno.readTextFileSync(records(kind, id)));

/** Writes a record back as an rkl from before record sources did: the CRI's metadata in `cri`. */
function toOldShape(kind: string, id: string): void {
  const rec = readRecord(kind, id);
  rec.cri = rec.source.meta;
  delete rec.source;
  const tmp = `${records(kind, id)}.old-shape`;
  Deno.writeTextFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  Deno.renameSync(tmp, records(kind, id));
}

test("CRI records keep the CRI's metadata as their source; old records with a cri field load and go", async () => {
  registry = await startRegistry(`${env!.dir}/registry`);
  env!.env.RKL_REGISTRIES_CONFIG = await mirrorBusybox(registry, env!.dir);
  await startCriDaemon();

  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = writeJson("pod.json", {
    metadata: { name: "old", namespace: "ns1", uid: "uid-old-1", attempt: 0 },
    hostname: "old",
    log_directory: `${env!.dir}/logs/old`,
    labels: { app: "old" },
    linux: {},
  });
  const pod = await crictlOk(["runp", podFile]);
  const ctr = await crictlOk([
    "create",
    pod,
    writeJson("ctr.json", {
      metadata: { name: "app" },
      image: { image: "busybox:1.36" },
      command: ["sleep", "300"],
      log_path: "app/0.log",
      labels: { tier: "web" },
    }),
    podFile,
  ]);
  await crictlOk(["start", ctr]);

  // On disk: a source of kind cri with the CRI's metadata, and no CRI-only field.
  const p = readRecord("pods", pod);
  assert.equal(p.cri, undefined);
  assert.equal(p.source.kind, "cri");
  assert.equal(p.source.name, "ns1/old");
  assert.equal(p.source.meta.uid, "uid-old-1");
  const c = readRecord("containers", ctr);
  assert.equal(c.cri, undefined);
  assert.deepEqual([c.source.kind, c.source.meta.sandboxId], ["cri", pod]);
  const listed = await rkl(env!, ["pod", "list"]);
  assert.match(listed.stdout, /cri ns1\/old/);

  // An older rkl's records: the daemon restarts over them.
  await stopDaemon(daemon!, "SIGKILL");
  toOldShape("pods", pod);
  toOldShape("containers", ctr);
  assert.equal(readRecord("pods", pod).cri.namespace, "ns1");
  await startCriDaemon();
  assert.equal(await crictlOk(["pods", "-q", "--state", "ready", "--label", "app=old"]), pod);
  assert.equal(await crictlOk(["ps", "-q", "--state", "running", "--label", "tier=web"]), ctr);
  const st = JSON.parse(await crictlOk(["inspect", ctr]));
  assert.equal(st.status.metadata.name, "app");
  assert.equal(st.status.logPath, `${env!.dir}/logs/old/app/0.log`);
  assert.equal(await crictlOk(["exec", "-s", ctr, "echo", "alive"]), "alive");
  assert.match((await rkl(env!, ["pod", "list"])).stdout, /cri ns1\/old/);

  // Stopped: written back in the new shape.
  await crictlOk(["stop", ctr]);
  await crictlOk(["stopp", pod]);
  const stopped = readRecord("pods", pod);
  assert.equal(stopped.cri, undefined);
  assert.deepEqual([stopped.source.kind, stopped.source.meta.ready], ["cri", false]);
  assert.equal(JSON.parse(await crictlOk(["inspectp", pod])).status.state, "SANDBOX_NOTREADY");
  await crictlOk(["rmp", pod]);
  assert.equal(await crictlOk(["pods", "-q"]), "");
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "");
  await crictlOk(["rmi", "busybox:1.36"]);
});

cleanupAfterAll(env, async () => {
  if (daemon) await stopDaemon(daemon);
  await registry?.stop();
  // A failed test may leave its sandbox: removed here, and the file fails.
  const left = (await rkl(env!, ["pod", "list", "-q"])).stdout.trim();
  for (const p of left.split("\n").filter(Boolean)) await rkl(env!, ["pod", "rm", "-f", p]);
  assert.equal(left, "", "no CRI sandbox is left once the tests are done");
});
