/**
 * Pod fields of issue 32 through the CLI, against the real runtime: an
 * untyped hostPath made as a directory, dnsPolicy/dnsConfig in resolv.conf,
 * a sized tmpfs for emptyDir medium Memory, and what the API server refuses
 * at create refused at its line. The host is left as it was.
 */
import assert from "node:assert/strict";
import { type Census, census } from "../_helpers/census.ts";
import { assertRejected, cleanupEnv, envTest, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { isMounted } from "../../src/sys/mounts.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "runc");
const env = ready ? await makeEnv("podfields", 25) : undefined;
let baseline: Census | undefined;

function test(name: string, fn: () => Promise<void>): void {
  envTest(ready, () => env!, name, async () => {
    baseline ??= await census(env!);
    await fn();
  });
}

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

function run(file: string) {
  return rkl(env!, ["pod", "run", "--network", env!.network, file]);
}

async function assertCensusUnchanged(): Promise<void> {
  assert.deepEqual(await census(env!), baseline, "the host census changed");
}

test("a hostPath with no type whose path is missing is made a directory; typed ones still refuse", async () => {
  const missing = `${env!.dir}/untyped/deep`;
  const file = await manifest(
    "untyped",
    `apiVersion: v1
kind: Pod
metadata: {name: untyped}
spec:
  volumes: [{name: d, hostPath: {path: ${missing}}}]
  containers:
    - {name: app, image: ./bundles/busybox, command: [sh, -c, "echo hi > /d/x; sleep 3600"], volumeMounts: [{name: d, mountPath: /d}]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Deno.statSync(missing).isDirectory);
  assert.equal(
    await rklOk(env!, ["pod", "exec", "untyped", "app", "--", "sh", "-c", "sleep 0.3; cat /d/x"]),
    "hi\n",
  );
  await rklOk(env!, ["pod", "rm", "-f", "untyped"]);
  const bad = await manifest(
    "typed",
    `apiVersion: v1\nkind: Pod\nmetadata: {name: typed}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: ${
      env!.dir
    }/nope, type: Directory}}\n  containers:\n    - {name: app, image: ./bundles/busybox, command: [sleep, "1"], volumeMounts: [{name: d, mountPath: /d}]}\n`,
  );
  assertRejected(
    "Directory",
    await run(bad),
    /typed\.yaml:6:\d+: .*does not exist \(type Directory\)/,
  );
  await assertCensusUnchanged();
});

test("dnsPolicy None with dnsConfig is the pod's whole resolv.conf; a dnsConfig adds to the host's", async () => {
  const file = await manifest(
    "dns",
    `apiVersion: v1
kind: Pod
metadata: {name: dns}
spec:
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [192.0.2.1]
    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]
    options:
      - {name: ndots, value: "2"}
      - {name: edns0}
  containers:
    - {name: app, image: ./bundles/busybox, command: [sleep, "3600"]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    await rklOk(env!, ["pod", "exec", "dns", "app", "--", "cat", "/etc/resolv.conf"]),
    "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n",
  );
  await rklOk(env!, ["pod", "rm", "-f", "dns"]);
  const add = await manifest(
    "dnsadd",
    `apiVersion: v1\nkind: Pod\nmetadata: {name: dnsadd}\nspec:\n  dnsConfig: {searches: [extra.example]}\n  containers:\n    - {name: app, image: ./bundles/busybox, command: [sleep, "3600"]}\n`,
  );
  const r2 = await run(add);
  assert.equal(r2.code, 0, r2.stderr);
  const conf = await rklOk(env!, ["pod", "exec", "dnsadd", "app", "--", "cat", "/etc/resolv.conf"]);
  const hostServers = Deno.readTextFileSync("/etc/resolv.conf").split("\n")
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((s): s is string => !!s && !s.startsWith("127.") && s !== "::1");
  assert.match(conf, /^search (.* )?extra\.example$/m);
  for (const s of hostServers.slice(0, 3)) assert.match(conf, new RegExp(`^nameserver ${s}$`, "m"));
  await rklOk(env!, ["pod", "rm", "-f", "dnsadd"]);
  const none = await manifest(
    "dnsnone",
    `apiVersion: v1\nkind: Pod\nmetadata: {name: dnsnone}\nspec:\n  dnsPolicy: None\n  containers:\n    - {name: app, image: ./bundles/busybox, command: [sleep, "1"]}\n`,
  );
  assertRejected(
    "None",
    await run(none),
    /dnsnone\.yaml:5:14: spec\.dnsPolicy: dnsPolicy None needs a dnsConfig/,
  );
  await assertCensusUnchanged();
});

test("emptyDir medium Memory with sizeLimit is a tmpfs of that size, unmounted with the pod", async () => {
  const file = await manifest(
    "memdir",
    `apiVersion: v1
kind: Pod
metadata: {name: memdir}
spec:
  volumes: [{name: cache, emptyDir: {medium: Memory, sizeLimit: 8Mi}}]
  containers:
    - {name: app, image: ./bundles/busybox, command: [sleep, "3600"], volumeMounts: [{name: cache, mountPath: /cache}]}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  const mounts = await rklOk(env!, ["pod", "exec", "memdir", "app", "--", "cat", "/proc/mounts"]);
  const line = mounts.split("\n").find((l) => l.split(" ")[1] === "/cache");
  assert.ok(line, mounts);
  assert.equal(line!.split(" ")[2], "tmpfs", line);
  assert.match(line!, /size=8192k/);
  // Writing past the size fails with ENOSPC inside the container.
  const over = await rkl(env!, [
    "pod",
    "exec",
    "memdir",
    "app",
    "--",
    "dd",
    "if=/dev/zero",
    "of=/cache/big",
    "bs=1M",
    "count=12",
  ]);
  assert.notEqual(over.code, 0);
  assert.match(over.stderr, /No space left on device/);
  const dir = `${env!.root}/pods/memdir/volumes/cache`;
  assert.ok(isMounted(dir), `${dir} is a mount point on the host`);
  await rklOk(env!, ["pod", "rm", "-f", "memdir"]);
  assert.equal(isMounted(dir), false);
  await assertCensusUnchanged();
});

test("ephemeralContainers and a pod-level ephemeral-storage are refused at their line", async () => {
  const head =
    `apiVersion: v1\nkind: Pod\nmetadata: {name: refused}\nspec:\n  containers:\n    - {name: app, image: ./bundles/busybox, command: [sleep, "1"]}\n`;
  const eph = await manifest(
    "eph",
    head + "  ephemeralContainers:\n    - {name: dbg, image: busybox}\n",
  );
  assertRejected(
    "ephemeral",
    await run(eph),
    /eph\.yaml:7:3: spec\.ephemeralContainers: ephemeral containers cannot be set/,
  );
  const res = await manifest(
    "podres",
    head + "  resources:\n    limits: {ephemeral-storage: 1Gi}\n",
  );
  assertRejected(
    "pod-level",
    await run(res),
    /podres\.yaml:8:14: spec\.resources\.limits\.ephemeral-storage: pod-level resources may only be cpu, memory and hugepages/,
  );
  await assertCensusUnchanged();
});

test("a double-quoted \\' (as kubernetes.io publishes) reads as an apostrophe", async () => {
  const file = await manifest(
    "quote",
    `apiVersion: v1
kind: Pod
metadata: {name: quote}
spec:
  restartPolicy: Never
  containers:
    - name: app
      image: ./bundles/busybox
      env: [{name: Q, value: "it\\'s \\"quoted\\""}]
      command: [sleep, "3600"]
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    await rklOk(env!, ["pod", "exec", "quote", "app", "--", "printenv", "Q"]),
    `it's "quoted"\n`,
  );
  await rklOk(env!, ["pod", "rm", "-f", "quote"]);
  await assertCensusUnchanged();
});

test("cleanup", async () => {
  await cleanupEnv(env!);
});
