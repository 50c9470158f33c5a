/**
 * `deno task test:node-e2e`: Kubernetes' node e2e suite (e2e_node.test,
 * v1.36.3, from ../shared/k8s) against rkl's CRI, as upstream CI runs it
 * against containerd and CRI-O: the suite starts its own etcd, API server
 * and namespace controller and a real kubelet (../shared/kubelet) whose
 * runtime is an `rkl daemon` this script starts on a private root, run
 * root, socket, bridge and subnet. Images come from a registry on 127.0.0.1
 * holding the project's stand-ins (tests/_helpers/node_images.ts) under their
 * registry.k8s.io names, behind rkl's mirror config. The daemon takes the
 * RuntimeClass handler "test-handler", as upstream CI's containerd and CRI-O
 * do; 127.0.0.1:10255 and :10250 are forwarded to the kubelet's node address.
 *
 *   deno task test:node-e2e                 the CI subset (SUBSET below: specs from every area)
 *   deno task test:node-e2e --all           [NodeConformance] minus [Serial]/[Slow]/[Flaky]/[Disruptive]
 *   deno task test:node-e2e --serial        [NodeConformance] and [Serial] (the second pass)
 *   … --serial --focus REGEX                those of the [Serial] specs
 *   deno task test:node-e2e --focus REGEX   those specs
 *   … --nodes N                             N ginkgo processes (../shared/cri-tools/ginkgo)
 *   … --cri-stats                           the suite and its kubelet with the feature gate
 *                                           PodAndContainerStatsFromCRI (KEP-2371: pod and
 *                                           container stats and /metrics/cadvisor from the CRI,
 *                                           as upstream's CRI-O jobs with the gate run)
 *
 * The host is put back as it was: the kernel settings the kubelet rewrites,
 * its iptables chains, its cgroups, /var/lib/kubelet and /var/log/pods (if
 * they were not there), the node's address link. Results per area go to
 * stdout and REPORT_DIR/summary.json; the exit code is non-zero when a spec
 * failed (or none ran).
 */
import { bridgeConflist } from "../../src/net/network.ts";
import { startRegistry } from "../_helpers/oci.ts";
import { NODE_IMAGES, pushNodeImages, sharedK8sDir } from "../_helpers/node_images.ts";
import { REPO } from "../_helpers/requires.ts";
import { kubeletPids, type StandinEnv } from "./systemctl.ts";

/** At least one spec from each area, a few minutes in all (kept in `test:all`). */
export const SUBSET = [
  // common/node
  String
    .raw`\[sig-node\] Container Runtime blackbox test on terminated container should report termination message if TerminationMessagePath is set \[NodeConformance\]`,
  String.raw`\[sig-node\] ConfigMap should be consumable via environment variable`,
  String
    .raw`\[sig-node\] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart exec hook properly`,
  String.raw`\[sig-node\] Pods should get a host IP`,
  // common/node, probes: a liveness probe's restart with its own grace period
  String
    .raw`\[sig-node\] Probing container should override timeoutGracePeriodSeconds when LivenessProbe field is set`,
  // common/storage
  String.raw`\[sig-storage\] EmptyDir volumes should support \(root,0644,default\)`,
  String.raw`\[sig-storage\] Downward API volume should provide podname only`,
  // common/network
  String
    .raw`\[sig-network\] Networking Granular Checks: Pods should function for intra-pod communication: http`,
  // e2e_node
  String
    .raw`\[sig-network\] Pod Host IPs \[NodeConformance\] when creating a Pod should add node IPs of all supported families to hostIPs of pod-network pod`,
  String
    .raw`\[sig-node\] Security Context When creating a pod with privileged should run the container as unprivileged when false`,
  // e2e_node, Containers Lifecycle: init containers in order (their logs stamped by nmeter)
  String
    .raw`Containers Lifecycle when Running a pod with init containers and regular containers, restartPolicy=Never when A pod initializes successfully should launch init container serially before a regular container`,
];

const NODE_IP = "198.51.100.32";
const NODE_LINK = "k8se2e0";
const NETWORK = "k8se2e";
const SUBNET = "10.231.32.0/24";
const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
];
const HIDDEN = new Set(["systemd-run", "systemctl", "journalctl"]);

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

async function sh(cmd: string, args: string[], opts: { quiet?: boolean } = {}): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!r.success && !opts.quiet) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stderr).trim()}`);
  }
  return dec.decode(r.stdout);
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms: number) {
  const end = performance.now() + ms;
  while (!(await fn())) {
    if (performance.now() > end) throw new Error(`node-e2e: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * 127.0.0.1:PORT passed on to the node address's PORT. The kubelet listens on
 * its `address` (the node IP: the suite's API server dials the InternalIP),
 * and specs hard-code localhost: 10255 (its read-only port: /metrics/cadvisor,
 * /stats/summary) and 10250. Taken already (another kubelet): said, not fatal.
 */
function forwardLocalhost(port: number, log: (m: string) => void): { close(): void } {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
  } catch (e) {
    log(`node-e2e: 127.0.0.1:${port} is not forwarded: ${(e as Error).message}`);
    return { close() {} };
  }
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of listener) {
      conns.add(c);
      Deno.connect({ hostname: NODE_IP, port }).then((up) => {
        conns.add(up);
        const end = () => {
          for (const x of [c, up]) {
            conns.delete(x);
            try {
              x.close();
            } catch { /* closed */ }
          }
        };
        Promise.all([
          c.readable.pipeTo(up.writable).catch(() => {}),
          up.readable.pipeTo(c.writable).catch(() => {}),
        ]).finally(end);
      }, () => {
        conns.delete(c);
        c.close();
      });
    }
  })().catch(() => {});
  return {
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

const sysctlPath = (s: string) => `/proc/sys/${s.replaceAll(".", "/")}`;

/** The KUBE-* chains and rules in every table, per binary and table. */
async function kubeRules(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const bin of ["iptables", "ip6tables"]) {
    for (const table of ["mangle", "nat", "filter"]) {
      const r = await new Deno.Command(bin, { args: ["-t", table, "-S"], stderr: "null" }).output();
      if (!r.success) continue;
      out.set(
        `${bin} ${table}`,
        new TextDecoder().decode(r.stdout).split("\n").filter((l) => /KUBE-/.test(l)),
      );
    }
  }
  return out;
}

async function removeKubeRules(before: Map<string, string[]>): Promise<void> {
  for (const [key, lines] of await kubeRules()) {
    const [bin, table] = key.split(" ");
    const had = new Set(before.get(key) ?? []);
    const added = lines.filter((l) => !had.has(l));
    const run = (rest: string) => sh("sh", ["-c", `${bin} -t ${table} ${rest}`], { quiet: true });
    for (const l of added.filter((l) => l.startsWith("-A ")).reverse()) {
      await run(`-D ${l.slice(3)}`);
    }
    for (const l of added.filter((l) => l.startsWith("-N "))) {
      await run(`-F ${l.slice(3)}`);
      await run(`-X ${l.slice(3)}`);
    }
  }
}

/** Every cgroup dir named `name` at the top of each hierarchy, removed depth-first. */
function removeCgroupTrees(name: string): void {
  const roots = ["/sys/fs/cgroup"];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    if (e.isDirectory) roots.push(`/sys/fs/cgroup/${e.name}`);
  }
  const rm = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) if (e.isDirectory) rm(`${dir}/${e.name}`);
    try {
      Deno.removeSync(dir);
    } catch { /* busy or gone: reported by the census below */ }
  };
  for (const r of roots) if (exists(`${r}/${name}`)) rm(`${r}/${name}`);
}

/**
 * A directory of links to /usr/bin's programs but systemd's (the suite then
 * runs the kubelet itself), and two stand-ins, on the suite's PATH only:
 * `sudo` (the suite runs as root: it runs its arguments, nothing else) and
 * `systemctl` (tests/node_e2e/systemctl.ts: restarts, stops and signals the
 * suite's kubelet, the specs' `sudo systemctl restart kubelet-…`).
 */
function pathWithoutSystemd(dir: string, standin: StandinEnv): string {
  Deno.mkdirSync(dir, { recursive: true });
  for (const e of Deno.readDirSync("/usr/bin")) {
    if (!HIDDEN.has(e.name) && e.name !== "sudo") {
      Deno.symlinkSync(`/usr/bin/${e.name}`, `${dir}/${e.name}`);
    }
  }
  Deno.writeTextFileSync(`${dir}/sudo`, SUDO, { mode: 0o755 });
  const q = (s: string) => {
    if (s.includes("'")) throw new Error(`node-e2e: a path with a quote: ${s}`);
    return `'${s}'`;
  };
  Deno.writeTextFileSync(
    `${dir}/systemctl`,
    `#!/bin/sh
# rkl node e2e harness: systemctl stand-in (tests/node_e2e/systemctl.ts)
export RKL_E2E_KUBELET=${q(standin.kubelet)} RKL_E2E_KUBELET_MATCH=${q(standin.match)}
export RKL_E2E_STATE=${q(standin.state)} RKL_E2E_KUBELET_LOG=${q(standin.log)}
exec ${q(Deno.execPath())} run -A --quiet --no-config ${
      q(`${REPO}/tests/node_e2e/systemctl.ts`)
    } "$@"
`,
    { mode: 0o755 },
  );
  return ["/usr/local/sbin", "/usr/local/bin", dir, "/usr/sbin"].join(":");
}

/** The suite runs as root; upstream's specs still say `sudo CMD …` (kubelet restarts, cgroup writes). */
const SUDO = `#!/bin/sh
# rkl node e2e harness: sudo stand-in. The suite runs as root: run the command, nothing else.
if [ "$(id -u)" != 0 ]; then echo "sudo stand-in: not root" >&2; exit 1; fi
case "$1" in
"") echo "usage: sudo COMMAND [ARG...]" >&2; exit 1 ;;
-*) echo "sudo stand-in: options are not supported: $1" >&2; exit 1 ;;
esac
exec "$@"
`;

/**
 * The kubelet's base config. `localStorageCapacityIsolation` keeps its default
 * (true), as upstream's jobs run it: set false, the kubelet leaves cAdvisor's
 * disk-usage metrics off (cadvisor_linux.go: DiskUsageMetrics only with it or
 * legacy stats), so the root cgroup's samples have no filesystems, and every
 * /stats/summary fails: "failed to get rootFs info: cannot find filesystem
 * info for device /dev/vda" (cAdvisor's getFsInfoByDeviceName finds none).
 */
function kubeletBase(): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
address: ${NODE_IP}
runtimeRequestTimeout: 2m
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`;
}

interface Case {
  name: string;
  file: string;
  status: "passed" | "failed" | "skipped";
  message?: string;
  seconds: number;
}

/** The junit report's testcases. */
function readJunit(path: string): Case[] {
  const xml = Deno.readTextFileSync(path);
  const out: Case[] = [];
  const re =
    /<testcase name="([^"]*)" classname="[^"]*" status="([^"]*)" time="([^"]*)">([\s\S]*?)<\/testcase>/g;
  const unescape = (s: string) =>
    s.replaceAll("&#34;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll(
      "&gt;",
      ">",
    ).replaceAll("&amp;", "&");
  for (const m of xml.matchAll(re)) {
    const name = unescape(m[1]);
    if (
      /^\[(SynchronizedBeforeSuite|SynchronizedAfterSuite|BeforeSuite|AfterSuite|ReportAfterSuite)\]/
        .test(name)
    ) {
      if (m[2] === "failed") out.push({ name, file: "suite", status: "failed", seconds: 0 });
      continue;
    }
    const status = m[2] === "passed"
      ? "passed"
      : m[2] === "skipped" || m[2] === "pending"
      ? "skipped"
      : "failed";
    // A spec out of focus is `<skipped message="skipped">`; one that skipped itself (the
    // suite's e2eskipper: a feature this node lacks) says why, "skipped - <reason>".
    const skipWhy = /<skipped message="skipped - ([^"]*)"/.exec(m[4])?.[1];
    if (status === "skipped" && !skipWhy) continue;
    const msg = /<failure message="([^"]*)"/.exec(m[4])?.[1] ?? skipWhy;
    out.push({
      name,
      file: "",
      status,
      message: msg ? unescape(msg).split("\n")[0].slice(0, 300) : undefined,
      seconds: Number(m[3]),
    });
  }
  return out;
}

/** The spec's area, from the conformance list's file paths. */
export function areaOf(name: string, files: Map<string, string>): string {
  // A junit name is "[It] <the spec's text> [<its labels, comma-separated>]".
  const text = name.replace(/^\[It\] /, "");
  const f = files.get(text) ?? files.get(text.replace(/ \[[^\]]*\]$/, "")) ?? "";
  const m = /^test\/(e2e\/common\/(node|storage|network)|e2e_node)\//.exec(f);
  return m ? (m[2] ? `common/${m[2]}` : "e2e_node") : "other";
}

function specFiles(shared: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of Deno.readTextFileSync(`${shared}/node-conformance-specs.txt`).split("\n")) {
    const m = /^(\S+?):\d+: (.*)$/.exec(l);
    if (m) out.set(m[2].trim(), m[1]);
  }
  return out;
}

/** What a run could not remove (its finally block's census): the run fails. */
const leftBehind: string[] = [];

async function main(): Promise<number> {
  if (Deno.uid() !== 0) throw new Error("node-e2e: run me as root");
  const shared = sharedK8sDir();
  if (!shared) throw new Error("node-e2e: ../shared/k8s is not there");
  const kubeletDir = [`${REPO}/../shared/kubelet`, "/work/shared/kubelet"].find((d) =>
    exists(`${d}/kubelet`)
  );
  if (!kubeletDir) throw new Error("node-e2e: ../shared/kubelet/kubelet is not there");
  const cache = Deno.env.get("RKL_K8S_CACHE") ?? "/var/cache/rkl-k8s";
  await sh("flock", ["/tmp/rkl-k8s-unpack.lock", `${shared}/unpack.sh`, cache]);

  let focus: string[];
  let skip = String.raw`\[Flaky\]|\[Slow\]|\[Disruptive\]|\[Serial\]`;
  if (Deno.args.includes("--all")) focus = [String.raw`\[NodeConformance\]`];
  else if (Deno.args.includes("--serial")) {
    // With --focus: those of the [Serial] specs (a single one, alone on the node).
    focus = [
      arg("--focus") ??
        String.raw`\[NodeConformance\].*\[Serial\]|\[Serial\].*\[NodeConformance\]`,
    ];
    skip = String.raw`\[Flaky\]|\[Slow\]|\[Disruptive\]`;
  } else if (arg("--focus")) focus = [arg("--focus")!];
  else focus = SUBSET;
  if (arg("--skip")) skip = `${skip}|${arg("--skip")}`;

  const dir = await Deno.makeTempDir({ prefix: "rkl-node-e2e-" });
  const report = arg("--report-dir") ?? `${dir}/report`;
  Deno.mkdirSync(report, { recursive: true });
  const root = `${dir}/root`;
  const runRoot = `${dir}/run`;
  const sock = `${runRoot}/rkl.sock`;
  const before = new Map(SYSCTLS.map((s) => [s, Deno.readTextFileSync(sysctlPath(s)).trim()]));
  const rulesBefore = await kubeRules();
  const hadKubelet = exists("/var/lib/kubelet");
  const hadPods = exists("/var/log/pods");
  const hadKubepods = exists("/sys/fs/cgroup/memory/kubepods");
  let daemon: Deno.ChildProcess | undefined;
  let standin: StandinEnv | undefined;
  const forwards: { close(): void }[] = [];
  const reg = await startRegistry(`${dir}/registry`);
  try {
    console.log("node-e2e: pushing the stand-in images …");
    Deno.mkdirSync(`${dir}/images`, { recursive: true });
    await pushNodeImages(reg.url, `${dir}/images`);
    Deno.writeTextFileSync(
      `${dir}/registries.yaml`,
      `mirrors:\n  registry.k8s.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
    );
    Deno.mkdirSync(`${root}/net.d`, { recursive: true });
    Deno.mkdirSync(`${dir}/manifests`, { recursive: true });
    Deno.writeTextFileSync(
      `${root}/net.d/${NETWORK}.conflist`,
      JSON.stringify(
        bridgeConflist(NETWORK, { subnet: SUBNET, ipamDataDir: `${root}/cni/networks` }),
      ),
    );
    await sh("ip", ["link", "add", NODE_LINK, "type", "ifb"]);
    await sh("ip", ["addr", "add", `${NODE_IP}/32`, "dev", NODE_LINK]);
    await sh("ip", ["link", "set", NODE_LINK, "up"]);

    const daemonLog = Deno.openSync(`${report}/rkl-daemon.log`, { write: true, create: true });
    daemon = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        `${REPO}/cli/main.ts`,
        "daemon",
        "--manifests",
        `${dir}/manifests`,
        "--network",
        NETWORK,
        "--cri-socket",
        sock,
        "--pause-image",
        NODE_IMAGES.pause,
        // The RuntimeClass handler the suite's specs name (upstream CI configures
        // containerd and CRI-O with it too).
        "--runtime-handlers",
        "test-handler",
      ],
      env: {
        RKL_ROOT: root,
        RKL_RUN_ROOT: runRoot,
        RKL_REGISTRIES_CONFIG: `${dir}/registries.yaml`,
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    daemon.stderr.pipeTo(daemonLog.writable).catch(() => {});
    Deno.writeTextFileSync(`${dir}/rkl.pid`, `${daemon.pid}\n`);
    await until("rkl's CRI socket", () => exists(sock), 30_000);

    forwards.push(...[10255, 10250].map((p) => forwardLocalhost(p, console.log)));
    Deno.writeTextFileSync(`${dir}/kubelet-base.yaml`, kubeletBase());
    const work = `${dir}/work`;
    Deno.mkdirSync(work, { recursive: true });
    standin = {
      kubelet: `${kubeletDir}/kubelet`,
      match: `unix://${sock}`,
      state: `${dir}/systemctl`,
      log: `${report}/kubelet.log`,
    };
    const PATH = pathWithoutSystemd(`${dir}/bin`, standin);
    const suiteArgs = [
      `--container-runtime-endpoint=unix://${sock}`,
      `--image-service-endpoint=unix://${sock}`,
      `--container-runtime-pid-file=${dir}/rkl.pid`,
      "--container-runtime-process-name=deno",
      `--k8s-bin-dir=${kubeletDir}`,
      `--kubelet-config-file=${dir}/kubelet-base.yaml`,
      "--node-name=rkl-e2e-node",
      `--kubelet-flags=--node-ip=${NODE_IP} --kubelet-cgroups= --system-cgroups= --runtime-cgroups=`,
      "--prepull-images=false",
      `--report-dir=${report}`,
      // The suite's --feature-gates are its own (its specs skip by them) and its kubelet's.
      ...(Deno.args.includes("--cri-stats")
        ? ["--feature-gates=PodAndContainerStatsFromCRI=true"]
        : []),
    ];
    const timeout = arg("--timeout") ?? "2h";
    // --nodes N: ginkgo's parallel runner, as upstream's `make test-e2e-node` runs it (process 1
    // starts the API server and kubelet, the others share them).
    const nodes = Number(arg("--nodes") ?? "1");
    const ginkgo = [`${REPO}/../shared/cri-tools/ginkgo`, "/work/shared/cri-tools/ginkgo"].find(
      exists,
    );
    if (nodes > 1 && !ginkgo) throw new Error("node-e2e: --nodes needs ../shared/cri-tools/ginkgo");
    const [program, args] = nodes > 1
      ? [ginkgo!, [
        `--nodes=${nodes}`,
        ...focus.map((f) => `--focus=${f}`),
        `--skip=${skip}`,
        `--junit-report=${report}/junit.xml`,
        `--timeout=${timeout}`,
        `${cache}/e2e_node.test`,
        "--",
        ...suiteArgs,
      ]]
      : [`${cache}/e2e_node.test`, [
        ...suiteArgs,
        ...focus.map((f) => `--ginkgo.focus=${f}`),
        `--ginkgo.skip=${skip}`,
        `--ginkgo.junit-report=${report}/junit.xml`,
        `--ginkgo.timeout=${timeout}`,
      ]];
    console.log(`node-e2e: e2e_node.test in ${work}, reports in ${report}`);
    const t0 = performance.now();
    const suiteLog = Deno.openSync(`${report}/e2e_node.log`, { write: true, create: true });
    const suite = new Deno.Command(program, {
      args,
      cwd: work,
      env: { PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const tee = (s: ReadableStream<Uint8Array>) =>
      s.pipeTo(
        new WritableStream({
          write(chunk) {
            suiteLog.writeSync(chunk);
            if (Deno.env.get("NODE_E2E_VERBOSE") === "1") Deno.stdout.writeSync(chunk);
          },
        }),
      );
    await Promise.all([tee(suite.stdout), tee(suite.stderr), suite.status]);
    const minutes = (performance.now() - t0) / 60_000;

    if (!exists(`${report}/junit.xml`)) {
      throw new Error(`node-e2e: no junit report; see ${report}/e2e_node.log`);
    }
    const files = specFiles(shared);
    const cases = readJunit(`${report}/junit.xml`);
    const ran = cases;
    const areas = new Map<string, { passed: number; failed: number; skipped: number }>();
    for (const c of ran) {
      const a = areaOf(c.name, files);
      const n = areas.get(a) ?? { passed: 0, failed: 0, skipped: 0 };
      n[c.status]++;
      areas.set(a, n);
    }
    console.log(`node-e2e: ${ran.length} specs in ${minutes.toFixed(1)} min`);
    for (const [a, n] of [...areas].sort()) {
      console.log(
        `  ${a.padEnd(16)} passed ${n.passed}, failed ${n.failed}, skipped ${n.skipped}`,
      );
    }
    const failed = ran.filter((c) => c.status === "failed");
    const skipped = ran.filter((c) => c.status === "skipped");
    for (const c of failed) console.log(`  FAILED ${c.name}\n         ${c.message ?? ""}`);
    for (const c of skipped) console.log(`  SKIPPED ${c.name}\n         ${c.message ?? ""}`);
    Deno.writeTextFileSync(
      `${report}/summary.json`,
      JSON.stringify(
        {
          focus,
          skip,
          minutes,
          areas: Object.fromEntries(areas),
          failed,
          skipped,
          passed: ran.filter((c) => c.status === "passed").map((c) => c.name),
        },
        null,
        2,
      ) + "\n",
    );
    return ran.length === skipped.length || failed.length > 0 ? 1 : 0;
  } finally {
    // The suite stops the kubelet it started; one the systemctl stand-in restarted is not its
    // child any more. What the kubelet left to rkl goes through rkl's CRI.
    if (standin) {
      for (const p of kubeletPids(standin.kubelet, standin.match)) {
        try {
          Deno.kill(p, "SIGTERM");
        } catch { /* gone */ }
      }
      await until("the kubelet's exit", () => {
        return kubeletPids(standin!.kubelet, standin!.match).length === 0;
      }, 30_000).catch((e) => console.log((e as Error).message));
    }
    if (daemon) {
      const crictl = (a: string[]) =>
        sh("crictl", ["-r", `unix://${sock}`, "-i", `unix://${sock}`, "-t", "60s", ...a], {
          quiet: true,
        });
      for (const p of (await crictl(["pods", "-q"])).split("\n").filter(Boolean)) {
        await crictl(["rmp", "-f", p]);
      }
      // What rkl's CRI could not remove is a failure of the run, whatever the specs said.
      for (const p of (await crictl(["pods", "-q"])).split("\n").filter(Boolean)) {
        leftBehind.push(`sandbox ${p} (rmp -f failed)`);
      }
      try {
        daemon.kill("SIGTERM");
      } catch { /* gone */ }
      await daemon.status;
    }
    for (const f of forwards) f.close();
    await reg.stop();
    await removeKubeRules(rulesBefore);
    for (const [s, v] of before) Deno.writeTextFileSync(sysctlPath(s), `${v}\n`);
    await sh("ip", ["link", "del", NODE_LINK], { quiet: true });
    await sh("ip", ["link", "del", NETWORK], { quiet: true });
    if (!hadKubelet && exists("/var/lib/kubelet")) {
      await sh("umount", ["-R", "/var/lib/kubelet"], { quiet: true });
      for (const m of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
        const p = m.split(" ")[4];
        if (p?.startsWith("/var/lib/kubelet/")) await sh("umount", ["-l", p], { quiet: true });
      }
      Deno.removeSync("/var/lib/kubelet", { recursive: true });
    }
    if (!hadPods && exists("/var/log/pods")) Deno.removeSync("/var/log/pods", { recursive: true });
    if (!hadKubepods) {
      removeCgroupTrees("kubepods");
      for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
        if (exists(`/sys/fs/cgroup/${e.name}/kubepods`)) {
          leftBehind.push(`cgroup /sys/fs/cgroup/${e.name}/kubepods`);
        }
      }
    }
    for (const m of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
      const p = m.split(" ")[4];
      if (p?.startsWith(`${dir}/`)) leftBehind.push(`mount ${p}`);
    }
    if (Deno.env.get("NODE_E2E_KEEP") !== "1") {
      const keep = arg("--report-dir");
      for (const e of Deno.readDirSync(dir)) {
        if (keep && `${dir}/${e.name}` === keep) continue;
        if (!keep && e.name === "report") continue;
        await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
    if (leftBehind.length > 0) {
      console.log(`node-e2e: left behind on the host: ${leftBehind.join("; ")}`);
    }
  }
}

if (import.meta.main) {
  const code = await main();
  Deno.exit(leftBehind.length > 0 ? 1 : code);
}
