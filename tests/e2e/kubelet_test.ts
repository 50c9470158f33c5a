/**
 * A real kubelet (v1.36.3, standalone: no API server) drives rkl's CRI:
 * a static pod whose image comes from a local registry (behind a docker.io
 * mirror entry) runs and logs, and goes away when its manifest does. The
 * kubelet rewrites some kernel settings at start; they are saved before and
 * written back after, and so are the iptables chains and rules it adds. The
 * host census is as before at the end.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { mirrorBusybox, startRegistry } from "../_helpers/oci.ts";

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
  "kubelet",
);
const env = ready ? await makeEnv("kubelet", 15) : undefined;
const { test } = censusTests(ready, () => env!);

const SYSCTLS = ["vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops"];

function sysctlPath(name: string): string {
  return `/proc/sys/${name.replaceAll(".", "/")}`;
}

async function crictl(sock: string, args: string[]): Promise<string> {
  const out = await new Deno.Command("crictl", {
    args: ["--runtime-endpoint", `unix://${sock}`, "--image-endpoint", `unix://${sock}`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** The kubelet's config for this host (as ../shared/kubelet's), with this test's paths. */
function kubeletConfig(dir: string, sock: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${sock}
runtimeRequestTimeout: 2m
staticPodPath: ${dir}/manifests
fileCheckFrequency: 1s
syncFrequency: 5s
podLogsDir: ${dir}/pod-logs
volumePluginDir: ${dir}/volume-plugins
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
localStorageCapacityIsolation: false
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`;
}

/** The kubelet's own iptables chains and rules (canaries, KUBE-FIREWALL), per family and table. */
async function kubeRules(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const bin of ["iptables", "ip6tables"]) {
    for (const table of ["mangle", "nat", "filter"]) {
      const r = await new Deno.Command(bin, { args: ["-t", table, "-S"], stderr: "null" }).output();
      if (!r.success) continue;
      const lines = new TextDecoder().decode(r.stdout).split("\n").filter((l) => /KUBE-/.test(l));
      out.set(`${bin} ${table}`, lines);
    }
  }
  return out;
}

/** Removes what the kubelet added to iptables since `before`: its rules, then its chains. */
async function removeKubeRules(before: Map<string, string[]>): Promise<void> {
  for (const [key, lines] of await kubeRules()) {
    const [bin, table] = key.split(" ");
    const had = new Set(before.get(key) ?? []);
    const added = lines.filter((l) => !had.has(l));
    const sh = (args: string) =>
      new Deno.Command("sh", { args: ["-c", `${bin} -t ${table} ${args}`], stderr: "null" })
        .output();
    // `-S` prints rules quoted for a shell: `-A CHAIN ...` is deleted as `-D CHAIN ...`.
    for (const l of added.filter((l) => l.startsWith("-A ")).reverse()) {
      await sh(`-D ${l.slice(3)}`);
    }
    for (const l of added.filter((l) => l.startsWith("-N "))) {
      await sh(`-F ${l.slice(3)}`);
      await sh(`-X ${l.slice(3)}`);
    }
  }
}

test("a kubelet runs a static pod through rkl's CRI, and removes it with its manifest", async () => {
  const dir = `${env!.dir}/kubelet`;
  for (const d of ["manifests", "root", "pki", "pod-logs", "volume-plugins"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  const registry = await startRegistry(`${env!.dir}/registry`);
  const before = new Map(SYSCTLS.map((s) => [s, Deno.readTextFileSync(sysctlPath(s)).trim()]));
  const rulesBefore = await kubeRules();
  const hadKubeletDir = (() => {
    try {
      Deno.statSync("/var/lib/kubelet");
      return true;
    } catch {
      return false;
    }
  })();
  let daemon: Deno.ChildProcess | undefined;
  let kubelet: Deno.ChildProcess | undefined;
  const sock = `${env!.dir}/cri/rkl.sock`;
  try {
    await mirrorBusybox(registry, env!.dir);
    Deno.mkdirSync(`${env!.dir}/rkl-manifests`, { recursive: true });
    daemon = startDaemon(
      { ...env!, env: { ...env!.env, RKL_REGISTRIES_CONFIG: `${env!.dir}/registries.yaml` } },
      `${env!.dir}/rkl-manifests`,
      { args: ["--cri-socket", sock] },
    );
    await waitFor(
      "the CRI socket",
      async () => (await crictl(sock, ["version"])).includes("rkl"),
      30_000,
    );

    Deno.writeTextFileSync(`${dir}/config.yaml`, kubeletConfig(dir, sock));
    kubelet = new Deno.Command("kubelet", {
      args: [
        `--config=${dir}/config.yaml`,
        `--root-dir=${dir}/root`,
        `--cert-dir=${dir}/pki`,
        "--hostname-override=rkl-node",
        "--v=1",
      ],
      stdin: "null",
      stdout: "null",
      stderr: Deno.env.get("RKL_TEST_KUBELET_LOG") ? "inherit" : "null",
    }).spawn();
    await waitFor("the kubelet's healthz", async () => {
      try {
        const r = await fetch("http://127.0.0.1:10248/healthz");
        return (await r.text()) === "ok";
      } catch {
        return false;
      }
    }, 60_000);

    Deno.writeTextFileSync(
      `${dir}/manifests/web.yaml`,
      `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers:
  - name: app
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo hello-from-kubelet; exec sleep 300"]
`,
    );
    let ctr = "";
    await waitFor("the static pod's container to run", async () => {
      ctr = await crictl(sock, ["ps", "-q", "--name", "app", "--state", "running"]);
      return ctr.length > 0;
    }, 90_000);
    const pod = await crictl(sock, ["pods", "-q", "--name", "web-rkl-node"]);
    assert.match(pod, /^[0-9a-f]{64}$/);
    const sp = JSON.parse(await crictl(sock, ["inspectp", pod]));
    assert.equal(sp.status.state, "SANDBOX_READY");
    assert.equal(sp.status.metadata.namespace, "default");
    // The CLI lists the kubelet's pod with its source.
    assert.match(
      (await rkl(env!, ["pod", "list"])).stdout,
      new RegExp(`${pod}.*cri default/web-rkl-node`),
    );
    // Its log, where the kubelet asked for it.
    await waitFor("the container's log", async () => {
      const st = JSON.parse(await crictl(sock, ["inspect", ctr]));
      try {
        return Deno.readTextFileSync(st.status.logPath).includes("hello-from-kubelet");
      } catch {
        return false;
      }
    }, 30_000);
    assert.match(await crictl(sock, ["logs", ctr]), /hello-from-kubelet/);

    Deno.removeSync(`${dir}/manifests/web.yaml`);
    await waitFor("the static pod to stop", async () => {
      const running = await crictl(sock, ["ps", "-q", "--state", "running"]);
      const ready = await crictl(sock, ["pods", "-q", "--state", "ready"]);
      return running === "" && ready === "";
    }, 90_000);
  } finally {
    if (kubelet) {
      try {
        kubelet.kill("SIGTERM");
      } catch { /* gone */ }
      await kubelet.status;
      // Its canary chains and KUBE-FIREWALL (a DROP rule for 127/8) go with it.
      await removeKubeRules(rulesBefore);
      // It bind-mounts its root dir onto itself (and volumes below it); that stays after it exits.
      await new Deno.Command("umount", { args: ["-R", `${dir}/root`], stderr: "null" }).output();
    }
    for (const [s, v] of before) Deno.writeTextFileSync(sysctlPath(s), `${v}\n`);
    if (daemon) {
      // What the kubelet left stopped (it garbage-collects sandboxes later) goes now.
      for (const p of (await crictl(sock, ["pods", "-q"])).split("\n").filter(Boolean)) {
        await crictl(sock, ["rmp", "-f", p]);
      }
      await crictl(sock, ["rmi", "busybox:1.36"]);
      await stopDaemon(daemon);
    }
    await registry.stop();
    if (!hadKubeletDir) Deno.removeSync("/var/lib/kubelet", { recursive: true });
  }
  for (const [s, v] of before) assert.equal(Deno.readTextFileSync(sysctlPath(s)).trim(), v, s);
});

cleanupAfterAll(env, async () => {
  assert.equal((await rkl(env!, ["pod", "list", "-q"])).stdout.trim(), "");
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4]).filter((m) => m?.startsWith(`${env!.dir}/`));
  assert.deepEqual(mounts, [], "nothing stays mounted under the test's directory");
});
