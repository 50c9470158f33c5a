/**
 * `rkl kube play` / `kube down` (and `pod run` of the same files) with the
 * workload kinds podman plays (issue 38 item 1), on the real runtime, conmon
 * and CNI: a 3-replica Deployment behind a Service reached from the host on
 * 127.0.0.1 only, a Job that fails twice and then succeeds within its
 * backoffLimit (and one that runs out of it), a DaemonSet, a kompose-style
 * file of Services and Deployments, a second play of a changed file; after
 * each `kube down`, a host census equal to the one before. The files are in
 * tests/fixtures/kube (README.md there says what each is modelled on).
 */
import assert from "node:assert/strict";
import { census } from "../_helpers/census.ts";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("kubekinds", 42) : undefined;
const { test, baseline } = censusTests(ready, () => env!);
cleanupAfterAll(env);

const PORT = 18421;
const PORT2 = 18422;
const PORT3 = 18423;

/** A fixture written into the env's dir next to a link to the repo's bundles. */
async function fixture(name: string, fill: Record<string, string> = {}): Promise<string> {
  const link = `${env!.dir}/bundles`;
  try {
    await Deno.lstat(link);
  } catch {
    await Deno.symlink(`${REPO}/bundles`, link);
  }
  let text = await Deno.readTextFile(`${REPO}/tests/fixtures/kube/${name}.yaml`);
  for (const [k, v] of Object.entries({ PORT, PORT2, PORT3, ...fill })) {
    text = text.replaceAll(`@${k}@`, String(v));
  }
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(path, text);
  return path;
}

async function get(url: string): Promise<string | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return await r.text();
  } catch {
    return undefined;
  }
}

interface PodJson {
  name: string;
  phase: string;
  labels: Record<string, string>;
  created: string;
  ports: { hostPort: number; containerPort: number; hostIP?: string }[];
}

async function pods(): Promise<PodJson[]> {
  return JSON.parse(await rklOk(env!, ["pod", "list", "-o", "json"]));
}

async function status(file: string) {
  return JSON.parse(await rklOk(env!, ["kube", "status", file, "-o", "json"])) as {
    jobs: {
      name: string;
      condition: string;
      reason?: string;
      succeeded: number;
      failed: number;
      pods: string[];
    }[];
    pods: { name: string; phase: string }[];
  };
}

async function downAndCensus(file: string): Promise<void> {
  await rklOk(env!, ["kube", "down", file]);
  assert.deepEqual(await pods(), []);
  assert.deepEqual(await census(env!), baseline(), "the host census changed");
}

/** The host side of the env's bridge: an address of this host that is not loopback. */
function gateway(): string {
  return env!.subnet.replace(/\.0\/24$/, ".1");
}

test("a 3-replica Deployment with a Service: pods as podman names them, port on 127.0.0.1 only", async () => {
  const file = await fixture("deployment-service");
  const r = await rkl(env!, ["kube", "play", "--network", env!.network, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "web-pod-0\nweb-pod-1\nweb-pod-2\n");
  // The kinds that mean nothing on one host: one warning each, at its line.
  for (
    const [line, kind] of [[2, "ServiceAccount"], [61, "Ingress"], [77, "HorizontalPodAutoscaler"]]
  ) {
    assert.match(
      r.stderr,
      new RegExp(
        `deployment-service\\.yaml:${line}:7: kind: "${kind}" means nothing on one host; skipped`,
      ),
    );
  }
  assert.match(r.stderr, /Service web selects 3 pods; its ports reach web-pod-0 only/);
  const list = await pods();
  assert.deepEqual(list.map((p) => [p.name, p.phase, p.labels.app]), [
    ["web-pod-0", "Running", "web"],
    ["web-pod-1", "Running", "web"],
    ["web-pod-2", "Running", "web"],
  ]);
  assert.deepEqual(list[0].ports.map((p) => [p.hostIP, p.hostPort, p.containerPort]), [
    ["127.0.0.1", PORT, 80],
  ]);
  await waitFor(
    "the service's port",
    async () => (await get(`http://127.0.0.1:${PORT}/`)) !== undefined,
  );
  assert.equal(await get(`http://127.0.0.1:${PORT}/`), "web-pod-0\n");
  // Not on the host's other addresses: a cluster IP is reached from inside only.
  assert.equal(await get(`http://${gateway()}:${PORT}/`), undefined);

  // Played again unchanged: nothing is remade.
  const again = await rkl(env!, ["kube", "play", "--network", env!.network, file]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, "");
  assert.match(again.stderr, /unchanged, left running: web-pod-0, web-pod-1, web-pod-2/);
  assert.deepEqual((await pods()).map((p) => p.created), list.map((p) => p.created));

  // A changed file: 2 replicas, and a new command for them: the pods are replaced, the third goes.
  const text = (await Deno.readTextFile(file)).replace("replicas: 3", "replicas: 2")
    .replace("echo $HOSTNAME", "echo v2-$HOSTNAME");
  await Deno.writeTextFile(file, text);
  const changed = await rkl(env!, ["kube", "play", "--network", env!.network, file]);
  assert.equal(changed.code, 0, changed.stderr);
  assert.equal(changed.stdout, "web-pod-0\nweb-pod-1\n");
  assert.match(changed.stderr, /removed web-pod-2/);
  assert.deepEqual((await pods()).map((p) => p.name), ["web-pod-0", "web-pod-1"]);
  await waitFor(
    "the new pod's page",
    async () => (await get(`http://127.0.0.1:${PORT}/`)) === "v2-web-pod-0\n",
  );

  await downAndCensus(file);
});

test("a Job whose pod fails twice succeeds on the third within backoffLimit; its status shows it", async () => {
  const data = await Deno.makeTempDir({ dir: env!.dir, prefix: "data-" });
  const file = await fixture("job-backoff", { DATA: data });
  const r = await rkl(env!, ["kube", "play", "--job-backoff", "1", "--network", "none", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "job/flaky\n");
  await waitFor("the job to finish", async () => {
    const s = await status(file);
    return s.jobs[0]?.condition !== "Running";
  }, 60_000);
  const [job] = (await status(file)).jobs;
  assert.equal(job.condition, "Complete");
  assert.equal(job.succeeded, 1);
  assert.equal(job.failed, 2);
  assert.deepEqual(job.pods, ["flaky-pod-0", "flaky-pod-1", "flaky-pod-2"]);
  assert.deepEqual([...Deno.readDirSync(data)].map((e) => e.name).sort(), ["run0", "run1", "run2"]);
  // The table a user reads.
  const table = await rklOk(env!, ["kube", "status", file]);
  assert.match(table, /flaky\s+Complete\s+1\/1\s+2\s+0/);
  await downAndCensus(file);
});

test("a Job that keeps failing stops at backoffLimit; one past its deadline is stopped", async () => {
  const data = await Deno.makeTempDir({ dir: env!.dir, prefix: "data-" });
  const file = await fixture("job-backoff", { DATA: data });
  await Deno.writeTextFile(
    file,
    (await Deno.readTextFile(file)).replace("backoffLimit: 3", "backoffLimit: 1")
      .replace("test $n -ge 2", "false"),
  );
  await rklOk(env!, ["kube", "play", "--job-backoff", "1", "--network", "none", file]);
  await waitFor(
    "the job to fail",
    async () => (await status(file)).jobs[0]?.condition === "Failed",
    60_000,
  );
  let [job] = (await status(file)).jobs;
  assert.equal(job.reason, "BackoffLimitExceeded");
  assert.equal(job.failed, 2);
  assert.equal(job.succeeded, 0);

  // Played again with a deadline it cannot meet: the changed job replaces the failed one.
  await Deno.writeTextFile(
    file,
    (await Deno.readTextFile(file)).replace(
      "activeDeadlineSeconds: 120",
      "activeDeadlineSeconds: 2",
    )
      .replace(`"n=$(ls /data | wc -l); touch /data/run$n; false"`, `"exec sleep 60"`),
  );
  const r = await rkl(env!, ["kube", "play", "--job-backoff", "1", "--network", "none", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "job/flaky\n");
  await waitFor(
    "the deadline",
    async () => (await status(file)).jobs[0]?.condition === "Failed",
    30_000,
  );
  [job] = (await status(file)).jobs;
  assert.equal(job.reason, "DeadlineExceeded");
  assert.deepEqual(job.pods, ["flaky-pod-0"]);
  // Its pod was stopped at the deadline, as the Job controller deletes active pods.
  assert.notEqual((await pods()).find((p) => p.name === "flaky-pod-0")?.phase, "Running");
  await downAndCensus(file);
});

test("a DaemonSet runs one pod on this host, <name>-pod; pod run of the same file does the same", async () => {
  const file = await fixture("daemonset");
  const r = await rkl(env!, ["pod", "run", "--network", env!.network, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "node-agent-pod\n");
  // tolerations and the rest of the scheduling fields: silent.
  assert.equal(r.stderr, "");
  const [p] = await pods();
  assert.deepEqual([p.name, p.phase, p.labels.name], ["node-agent-pod", "Running", "node-agent"]);
  const s = await status(file);
  assert.deepEqual(s.pods.map((x) => x.name), ["node-agent-pod"]);
  await downAndCensus(file);
});

test("a kompose-style file: each Service publishes its Deployment's port on 127.0.0.1", async () => {
  const file = await fixture("kompose");
  const r = await rkl(env!, ["kube", "play", "--network", env!.network, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "web-pod-0\nstore-pod-0\n");
  assert.equal(r.stderr, "");
  const byName = new Map((await pods()).map((p) => [p.name, p]));
  assert.deepEqual(byName.get("store-pod-0")?.ports.map((p) => [p.hostIP, p.hostPort]), [
    ["127.0.0.1", PORT3],
  ]);
  await waitFor(
    "web's page",
    async () => (await get(`http://127.0.0.1:${PORT2}/`)) === "kompose-web\n",
  );
  // A pod of the same name that this file did not make is not touched: the play is refused.
  const other = `${env!.dir}/other.yaml`;
  await Deno.writeTextFile(
    other,
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web-pod-0}\nspec:\n  containers: [{name: a, image: ./bundles/busybox, command: [sleep, '60']}]\n",
  );
  const clash = await rkl(env!, ["kube", "play", "--network", "none", other]);
  assert.equal(clash.code, 1, clash.stderr);
  assert.match(
    clash.stderr,
    /Cannot make pod "web-pod-0": a pod of that name exists and \S*other\.yaml did not make it/,
  );
  await downAndCensus(file);
  // kube down of a file that made nothing removes nothing and succeeds.
  assert.equal(await rklOk(env!, ["kube", "down", other]), "");
});
