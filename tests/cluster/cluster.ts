/**
 * A one-node Kubernetes cluster on this host whose kubelet uses rkl's CRI:
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
 * kube-proxy (iptables mode) from ../shared/k8s (v1.36.3), the kubelet from
 * ../shared/kubelet, and an `rkl daemon` on a private root, run root, socket,
 * bridge and subnet. Everything listens on 127.0.0.1 (free ports) or on the
 * node address, 198.51.100.40/32 (TEST-NET-2) on an ifb link this makes (the
 * kubelet refuses a loopback node IP; this kernel has no dummy links).
 * Images are the node e2e suite's stand-ins (tests/_helpers/node_images.ts)
 * under their registry.k8s.io names, from a registry on 127.0.0.1 behind
 * rkl's mirror config.
 *
 * `stop()` puts the host back, also after a failure: processes, the
 * pods the kubelet left (through rkl's CRI), kube-proxy's and the kubelet's
 * KUBE-* iptables chains, the kernel settings the kubelet rewrites, the
 * kubelet's mounts and cgroups, /var/lib/kubelet (if it was not there), the
 * links, the temp dir. Used by tests/cluster/run.ts and bench/cluster.ts.
 */
import { bridgeConflist } from "../../src/net/network.ts";
import { DAEMON_DENO_FLAGS, DAEMON_ENV } from "../../src/daemon/install.ts";
import { startRegistry } from "../_helpers/oci.ts";
import { containerdConfig } from "../_helpers/containerd.ts";
import { NODE_IMAGES, pushNodeImages, sharedK8sDir } from "../_helpers/node_images.ts";
import { REPO } from "../_helpers/requires.ts";

export const NODE = "rkl-node";
export const NODE_IP = "198.51.100.40";
export const NODE_LINK = "k8sc31n";
export const NETWORK = "k8sc31";
export const POD_CIDR = "10.239.31.0/24";
export const SERVICE_CIDR = "10.240.31.0/24";
const FIRST_SERVICE_IP = "10.240.31.1";

/** Kernel settings the kubelet and kube-proxy may write; restored at the end. */
export const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
  "net.ipv4.conf.all.route_localnet",
  "net.ipv4.ip_forward",
  "net.bridge.bridge-nf-call-iptables",
  "net.bridge.bridge-nf-call-ip6tables",
];

const dec = new TextDecoder();

export async function sh(
  cmd: string,
  args: string[],
  opts: { quiet?: boolean; cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const r = await child.output();
  if (!r.success && !opts.quiet) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stderr).trim()}`);
  }
  return dec.decode(r.stdout);
}

export function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 200 ms; throws naming `what` after `ms`. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, ms: number) {
  const end = performance.now() + ms;
  let last: unknown;
  while (true) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    if (performance.now() > end) {
      const why = last instanceof Error ? ` (last error: ${last.message.split("\n")[0]})` : "";
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${why}`);
    }
    await sleep(200);
  }
}

const sysctlPath = (s: string) => `/proc/sys/${s.replaceAll(".", "/")}`;

function readSysctls(): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of SYSCTLS) {
    try {
      out.set(s, Deno.readTextFileSync(sysctlPath(s)).trim());
    } catch { /* not on this kernel (br_netfilter not loaded) */ }
  }
  return out;
}

/** The lines of `iptables -S` in every table matching `re`, per binary and table. */
export async function ruleLines(re: RegExp): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const bin of ["iptables", "ip6tables"]) {
    for (const table of ["raw", "mangle", "nat", "filter"]) {
      const r = await new Deno.Command(bin, {
        args: ["-w", "5", "-t", table, "-S"],
        stderr: "null",
      })
        .output();
      if (!r.success) continue;
      out.set(`${bin} ${table}`, dec.decode(r.stdout).split("\n").filter((l) => re.test(l)));
    }
  }
  return out;
}

/**
 * rkl's CNI rules for this cluster's network: the bridge plugin's per-pod
 * chains and the rules naming the network in their comment (other runs on
 * the host have chains of their own).
 */
export function ownCniRules(lines: string[]): string[] {
  const mine = lines.filter((l) => l.includes(`name: \\"${NETWORK}\\"`));
  const chains = new Set<string>();
  for (const l of mine) {
    for (const m of l.matchAll(/(?:-A|-j) (CNI-[A-Za-z0-9_-]+)/g)) chains.add(m[1]);
  }
  return [...mine, ...lines.filter((l) => l.startsWith("-N ") && chains.has(l.slice(3)))];
}

/** Removes the rules and chains matching `re` that were not in `before`. */
async function removeRules(re: RegExp, before: Map<string, string[]>): Promise<void> {
  for (const [key, lines] of await ruleLines(re)) {
    const [bin, table] = key.split(" ");
    const had = new Set(before.get(key) ?? []);
    const added = lines.filter((l) => !had.has(l));
    const run = (rest: string[]) => sh(bin, ["-w", "5", "-t", table, ...rest], { quiet: true });
    for (const l of added.filter((l) => l.startsWith("-A ")).reverse()) {
      // `-S` prints quoted comments; let the shell split them as iptables-save would.
      await sh("sh", ["-c", `${bin} -w 5 -t ${table} -D ${l.slice(3)}`], { quiet: true });
    }
    for (const l of added.filter((l) => l.startsWith("-N "))) {
      await run(["-F", l.slice(3)]);
      await run(["-X", l.slice(3)]);
    }
  }
}

/** Every cgroup dir named `name` at the top of each hierarchy, removed depth-first. */
export function removeCgroupTrees(name: string): void {
  const roots = ["/sys/fs/cgroup"];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    if (e.isDirectory) roots.push(`/sys/fs/cgroup/${e.name}`);
  }
  const rm = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) if (e.isDirectory) rm(`${dir}/${e.name}`);
    try {
      Deno.removeSync(dir);
    } catch { /* busy: the census reports it */ }
  };
  for (const r of roots) if (exists(`${r}/${name}`)) rm(`${r}/${name}`);
}

/** containerd's shims for the socket `sock` (their command lines name it). */
export function shimPids(sock: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (!Deno.readTextFileSync(`/proc/${e.name}/comm`).startsWith("containerd-shim")) continue;
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(sock)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A background program with its output in LOGS/name.log. */
/** Mount points below `dir` in this mount namespace, deepest last. */
export function mountsBelow(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4]).filter((p) => p?.startsWith(`${dir}/`));
}

/** Lazily unmounts everything below `dir`, deepest first. */
export async function umountBelow(dir: string): Promise<void> {
  for (const m of mountsBelow(dir).reverse()) await sh("umount", ["-l", m], { quiet: true });
}

/** A node's address on an ifb link of its own (this kernel has no dummy links). */
export async function addNodeLink(link: string, ip: string): Promise<void> {
  await sh("ip", ["link", "add", link, "type", "ifb"]);
  await sh("ip", ["addr", "add", `${ip}/32`, "dev", link]);
  await sh("ip", ["link", "set", link, "up"]);
}

/** `ROOT/net.d/NAME.conflist`: the node's pod bridge, its leases under ROOT. */
export function writeNodeNetwork(root: string, name: string, subnet: string): void {
  Deno.mkdirSync(`${root}/net.d`, { recursive: true });
  Deno.writeTextFileSync(
    `${root}/net.d/${name}.conflist`,
    JSON.stringify(bridgeConflist(name, { subnet, ipamDataDir: `${root}/cni/networks` })),
  );
}

/** Removes every pod sandbox a CRI runtime holds, through its socket. */
export async function removeAllPods(sock: string): Promise<void> {
  const crictl = (a: string[]) =>
    sh("crictl", ["-t", "60s", "-r", `unix://${sock}`, ...a], { quiet: true });
  const pods = (await crictl(["pods", "-q"])).split("\n").filter(Boolean);
  await Promise.all(pods.map((p) => crictl(["rmp", "-f", p])));
}

/**
 * An `rkl daemon` serving a node: Deno's flags and environment as
 * `rkl daemon install`'s unit runs it, a private root, run root, socket and
 * network.
 */
export function rklDaemonCommand(o: {
  dir: string;
  root: string;
  runRoot: string;
  sock: string;
  network: string;
  registries: string;
}): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      "run",
      "-A",
      "--quiet",
      ...DAEMON_DENO_FLAGS,
      `${REPO}/cli/main.ts`,
      "daemon",
      "--manifests",
      `${o.dir}/manifests`,
      "--network",
      o.network,
      "--cri-socket",
      o.sock,
      "--pause-image",
      NODE_IMAGES.pause,
    ],
    env: {
      ...DAEMON_ENV,
      RKL_ROOT: o.root,
      RKL_RUN_ROOT: o.runRoot,
      RKL_REGISTRIES_CONFIG: o.registries,
    },
  };
}

export class Proc {
  child: Deno.ChildProcess;
  constructor(
    readonly name: string,
    readonly cmd: string,
    readonly args: string[],
    readonly log: string,
    readonly opts: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    this.child = this.#spawn();
  }
  /** false once the current process has exited. */
  running = false;
  #spawn(): Deno.ChildProcess {
    const f = Deno.openSync(this.log, { write: true, create: true, append: true });
    const child = new Deno.Command(this.cmd, {
      args: this.args,
      cwd: this.opts.cwd,
      env: this.opts.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = new WritableStream<Uint8Array>({ write: (c) => void f.writeSync(c) });
    // Both streams into one file: each chunk is written whole, in arrival order.
    child.stdout.pipeTo(w).catch(() => {});
    child.stderr.pipeTo(new WritableStream({ write: (c) => void f.writeSync(c) })).catch(() => {});
    this.running = true;
    child.status.finally(() => {
      this.running = false;
      setTimeout(() => f.close(), 500);
    });
    return child;
  }
  get pid(): number {
    return this.child.pid;
  }
  /** Started again with the same command line (after a kill -9). */
  restart(): void {
    this.child = this.#spawn();
  }
  /** SIGTERM, then SIGKILL after `ms`; resolves when it is gone. */
  async stop(ms = 10_000): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, ms);
    await this.child.status;
    clearTimeout(t);
  }
  tail(lines = 30): string {
    try {
      return Deno.readTextFileSync(this.log).split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }
}

export interface ClusterOptions {
  /** The node's runtime: rkl (default), or containerd 1.6's built-in CRI for side-by-side figures. */
  runtime?: "rkl" | "containerd";
  /** Called with a line per phase. */
  say?: (line: string) => void;
  /** Kubelet log verbosity. */
  kubeletV?: number;
}

export class Cluster {
  readonly dir: string;
  readonly bin: string;
  readonly procs = new Map<string, Proc>();
  readonly sock: string;
  readonly kubeconfig: string;
  readonly root: string;
  readonly runRoot: string;
  #undo: (() => Promise<void> | void)[] = [];
  #say: (line: string) => void;
  /** performance.now() when the kubelet was (last) started. */
  kubeletStarted = 0;
  readonly ports: Record<string, number> = {};

  readonly runtime: "rkl" | "containerd";

  private constructor(dir: string, bin: string, opts: ClusterOptions) {
    this.dir = dir;
    this.bin = bin;
    this.root = `${dir}/root`;
    this.runRoot = `${dir}/run`;
    this.runtime = opts.runtime ?? "rkl";
    this.sock = this.runtime === "rkl" ? `${this.runRoot}/rkl.sock` : `${dir}/containerd.sock`;
    this.kubeconfig = `${dir}/admin.kubeconfig`;
    this.#say = opts.say ?? (() => {});
  }

  /** Unpacks the binaries, then starts everything; on a failure, undoes what it did and throws. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const shared = sharedK8sDir();
    if (!shared) throw new Error("cluster: ../shared/k8s is not there");
    const cache = Deno.env.get("RKL_K8S_CACHE") ?? "/var/cache/rkl-k8s";
    await sh("flock", ["/tmp/rkl-k8s-unpack.lock", `${shared}/unpack.sh`, cache]);
    const dir = await Deno.makeTempDir({ prefix: "rkl-cluster-" });
    const c = new Cluster(dir, cache, opts);
    try {
      await c.#start(opts);
    } catch (e) {
      await c.stop().catch((e2) => console.error(`cluster: clean-up after failed start: ${e2}`));
      throw e;
    }
    return c;
  }

  proc(name: string): Proc {
    const p = this.procs.get(name);
    if (!p) throw new Error(`cluster: no process ${name}`);
    return p;
  }

  /** A background program of this cluster (stopped by stop()), its log in `dir/logs/NAME.log`. */
  spawn(name: string, cmd: string, args: string[], env?: Record<string, string>): Proc {
    return this.#spawn(name, cmd, args, env);
  }

  /** Runs `fn` in stop(), before what was set up earlier (the undo steps run last first). */
  onStop(fn: () => Promise<void> | void): void {
    this.#undo.push(fn);
  }

  #spawn(name: string, cmd: string, args: string[], env?: Record<string, string>): Proc {
    const p = new Proc(name, cmd, args, `${this.dir}/logs/${name}.log`, { cwd: this.dir, env });
    this.procs.set(name, p);
    return p;
  }

  async #certs(): Promise<void> {
    const pki = `${this.dir}/pki`;
    Deno.mkdirSync(pki, { recursive: true });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const o = (args: string[]) => sh("openssl", args, { cwd: pki });
    await o([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=rkl-cluster-ca",
    ]);
    const cert = async (name: string, subj: string, ext: string) => {
      Deno.writeTextFileSync(`${pki}/${name}.ext`, ext);
      await o([
        "req",
        "-new",
        ...ec,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subj,
      ]);
      await o([
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        `${name}.crt`,
        "-extfile",
        `${name}.ext`,
      ]);
    };
    await cert(
      "apiserver",
      "/CN=kube-apiserver",
      `subjectAltName=IP:127.0.0.1,IP:${FIRST_SERVICE_IP},IP:${NODE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n`,
    );
    await cert("admin", "/O=system:masters/CN=kubernetes-admin", "extendedKeyUsage=clientAuth\n");
    await cert("node", `/O=system:nodes/CN=system:node:${NODE}`, "extendedKeyUsage=clientAuth\n");
    await o(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key"]);
    await o(["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    const kc = (user: string) =>
      `apiVersion: v1
kind: Config
clusters:
- name: rkl
  cluster: {server: "https://127.0.0.1:${this.ports.apiserver}", certificate-authority: ${pki}/ca.crt}
users:
- name: ${user}
  user: {client-certificate: ${pki}/${user}.crt, client-key: ${pki}/${user}.key}
contexts:
- name: rkl
  context: {cluster: rkl, user: ${user}}
current-context: rkl
`;
    Deno.writeTextFileSync(this.kubeconfig, kc("admin"));
    Deno.writeTextFileSync(`${this.dir}/node.kubeconfig`, kc("node"));
  }

  kubeletConfig(): string {
    const d = this.dir;
    return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${this.sock}
runtimeRequestTimeout: 2m
podLogsDir: ${d}/pod-logs
volumePluginDir: ${d}/volume-plugins
address: ${NODE_IP}
port: ${this.ports.kubelet}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${this.ports.kubeletHealthz}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${d}/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
localStorageCapacityIsolation: false
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`;
  }

  /** The rkl daemon on this node's root, run root, socket and network. */
  #startRkl(): Proc {
    const { args, env } = rklDaemonCommand({
      dir: this.dir,
      root: this.root,
      runRoot: this.runRoot,
      sock: this.sock,
      network: NETWORK,
      registries: `${this.dir}/registries.yaml`,
    });
    return this.#spawn("rkl", Deno.execPath(), args, env);
  }

  async #start(opts: ClusterOptions): Promise<void> {
    const d = this.dir;
    for (
      const sub of ["logs", "manifests", "kubelet", "kubelet-pki", "pod-logs", "volume-plugins"]
    ) {
      Deno.mkdirSync(`${d}/${sub}`, { recursive: true });
    }
    for (
      const p of [
        "etcd",
        "etcdPeer",
        "apiserver",
        "kubelet",
        "kubeletHealthz",
        "proxyHealthz",
        "proxyMetrics",
      ]
    ) {
      this.ports[p] = freePort();
    }

    // What this run may change on the host, recorded first so that stop() can put it back.
    const sysctls = readSysctls();
    this.#undo.push(() => {
      for (const [s, v] of sysctls) {
        try {
          if (Deno.readTextFileSync(sysctlPath(s)).trim() !== v) {
            Deno.writeTextFileSync(sysctlPath(s), `${v}\n`);
          }
        } catch (e) {
          console.error(`cluster: restoring ${s}=${v}: ${e}`);
        }
      }
    });
    const kubeRe = /KUBE-/;
    const kubeBefore = await ruleLines(kubeRe);
    this.#undo.push(() => removeRules(kubeRe, kubeBefore));
    const hadVarLibKubelet = exists("/var/lib/kubelet");
    this.#undo.push(async () => {
      if (hadVarLibKubelet || !exists("/var/lib/kubelet")) return;
      await sh("umount", ["-R", "/var/lib/kubelet"], { quiet: true });
      Deno.removeSync("/var/lib/kubelet", { recursive: true });
    });
    const hadKubepods = exists("/sys/fs/cgroup/memory/kubepods");
    this.#undo.push(() => {
      if (!hadKubepods) removeCgroupTrees("kubepods");
    });
    this.#undo.push(async () => {
      // The kubelet's volume mounts (secrets, configmaps as tmpfs) under its root dir.
      await umountBelow(d);
    });

    this.#say("cluster: images and certificates …");
    const reg = await startRegistry(`${d}/registry`);
    this.#undo.push(() => reg.stop());
    Deno.mkdirSync(`${d}/images`, { recursive: true });
    await pushNodeImages(reg.url, `${d}/images`);
    Deno.writeTextFileSync(
      `${d}/registries.yaml`,
      `mirrors:\n  registry.k8s.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
    );
    await this.#certs();

    // The node's address, on a link of its own.
    this.#undo.push(() => sh("ip", ["link", "del", NODE_LINK], { quiet: true }).then(() => {}));
    await addNodeLink(NODE_LINK, NODE_IP);

    // rkl: its network's conflist, then the daemon.
    writeNodeNetwork(this.root, NETWORK, POD_CIDR);
    this.#undo.push(() => sh("ip", ["link", "del", NETWORK], { quiet: true }).then(() => {}));
    if (this.runtime === "rkl") this.#startRkl();
    else this.#startContainerd(reg.url);
    this.#undo.push(async () => {
      // The kubelet is stopped by now: the pods it left go through the CRI, then the runtime.
      const rt = this.procs.get(this.runtime);
      if (!rt) return;
      if (!rt.running) {
        // Killed (a failed kill -9 step): started again to remove what it runs.
        rt.restart();
        await until(
          `${this.runtime}'s CRI`,
          async () =>
            (await sh("crictl", ["-t", "5s", "-r", `unix://${this.sock}`, "version"], {
              quiet: true,
            }))
              .includes("RuntimeName"),
          60_000,
        ).catch(() => {});
      }
      await removeAllPods(this.sock);
      await rt.stop(30_000);
      if (this.runtime === "containerd") {
        // Shims outlive containerd by design; every pod is gone, so none should be left.
        for (const pid of shimPids(this.sock)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    });

    this.#say("cluster: etcd, kube-apiserver …");
    const b = this.bin;
    const { etcd, etcdPeer, apiserver } = this.ports;
    this.#spawn("etcd", `${b}/etcd`, [
      "--name=k8s",
      `--data-dir=${d}/etcd`,
      "--unsafe-no-fsync",
      `--listen-client-urls=http://127.0.0.1:${etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=k8s=http://127.0.0.1:${etcdPeer}`,
    ]);
    const pki = `${d}/pki`;
    this.#spawn("kube-apiserver", `${b}/kube-apiserver`, [
      `--etcd-servers=http://127.0.0.1:${etcd}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${apiserver}`,
      `--advertise-address=${NODE_IP}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--cert-dir=${pki}/apiserver`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      "--authorization-mode=Node,RBAC",
      `--kubelet-client-certificate=${pki}/admin.crt`,
      `--kubelet-client-key=${pki}/admin.key`,
      "--kubelet-preferred-address-types=InternalIP",
      "--profiling=false",
    ]);
    await until(
      "the API server's /readyz",
      async () =>
        (await this.kubectl(["get", "--raw", "/readyz"], { quiet: true })).trim() === "ok",
      120_000,
    );
    this.#say("cluster: controller-manager, scheduler, kube-proxy …");
    this.#spawn("kube-controller-manager", `${b}/kube-controller-manager`, [
      `--kubeconfig=${this.kubeconfig}`,
      "--secure-port=0",
      "--leader-elect=false",
      `--root-ca-file=${pki}/ca.crt`,
      "--use-service-account-credentials=false",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ]);
    this.#spawn("kube-scheduler", `${b}/kube-scheduler`, [
      `--kubeconfig=${this.kubeconfig}`,
      "--secure-port=0",
      "--leader-elect=false",
    ]);
    this.#spawn("kube-proxy", `${b}/kube-proxy`, [
      `--kubeconfig=${this.kubeconfig}`,
      `--hostname-override=${NODE}`,
      "--proxy-mode=iptables",
      `--cluster-cidr=${POD_CIDR}`,
      `--healthz-bind-address=127.0.0.1:${this.ports.proxyHealthz}`,
      `--metrics-bind-address=127.0.0.1:${this.ports.proxyMetrics}`,
      "--conntrack-max-per-core=0",
      "--conntrack-tcp-timeout-established=0",
      "--conntrack-tcp-timeout-close-wait=0",
      "--iptables-localhost-nodeports=false",
      `--nodeport-addresses=${NODE_IP}/32`,
    ]);
    this.#undo.push(async () => {
      await this.procs.get("kube-proxy")?.stop();
      await sh(`${b}/kube-proxy`, ["--cleanup", "--proxy-mode=iptables"], { quiet: true });
    });

    await until(`${this.runtime}'s CRI socket`, () => exists(this.sock), 60_000);
    Deno.writeTextFileSync(`${d}/kubelet.yaml`, this.kubeletConfig());
    this.#say("cluster: kubelet …");
    this.startKubelet(opts.kubeletV ?? 2);
    this.#undo.push(() => this.procs.get("kubelet")?.stop(20_000));
  }

  startKubelet(v = 2): void {
    this.kubeletStarted = performance.now();
    const existing = this.procs.get("kubelet");
    if (existing) {
      existing.restart();
      return;
    }
    this.#spawn("kubelet", this.kubeletBin(), [
      `--config=${this.dir}/kubelet.yaml`,
      `--kubeconfig=${this.dir}/node.kubeconfig`,
      `--root-dir=${this.dir}/kubelet`,
      `--cert-dir=${this.dir}/kubelet-pki`,
      `--hostname-override=${NODE}`,
      `--node-ip=${NODE_IP}`,
      `--v=${v}`,
    ]);
  }

  kubeletBin(): string {
    const d = [`${REPO}/../shared/kubelet`, "/work/shared/kubelet"].find((d) =>
      exists(`${d}/kubelet`)
    );
    return d ? `${d}/kubelet` : "kubelet";
  }

  /**
   * containerd 1.6 (Debian's package) with its CRI plugin, runc, the same CNI
   * plugins, bridge and subnet, and the same images (registry.k8s.io mirrored
   * to the local registry), all private to the temp dir.
   */
  #startContainerd(registry: string): Proc {
    const d = this.dir;
    const cniBin = ["/usr/lib/cni", "/opt/cni/bin"].find((b) => exists(`${b}/bridge`));
    if (!cniBin) throw new Error("cluster: no CNI bridge plugin in /usr/lib/cni or /opt/cni/bin");
    Deno.writeTextFileSync(
      `${d}/containerd.toml`,
      containerdConfig({
        root: `${d}/containerd-root`,
        state: `${d}/containerd-state`,
        sock: this.sock,
        runcRoot: `${d}/runc`,
        sandboxImage: NODE_IMAGES.pause,
        cniBin,
        cniConfDir: `${this.root}/net.d`,
        mirrors: { "registry.k8s.io": registry },
      }),
    );
    return this.#spawn("containerd", "containerd", ["--config", `${d}/containerd.toml`]);
  }

  /** Restarts the rkl daemon (same command line, state and socket). */
  restartRkl(): void {
    this.proc("rkl").restart();
  }

  /** `kubectl ARGS` as the cluster admin; its stdout, or a thrown error with its stderr. */
  kubectl(
    args: string[],
    opts: { quiet?: boolean; stdin?: string } = {},
  ): Promise<string> {
    return sh(`${this.bin}/kubectl`, [`--kubeconfig=${this.kubeconfig}`, ...args], opts);
  }

  /** `kubectl ARGS` in the background (port-forward, logs -f). */
  kubectlSpawn(args: string[]): Deno.ChildProcess {
    return new Deno.Command(`${this.bin}/kubectl`, {
      args: [`--kubeconfig=${this.kubeconfig}`, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Stops everything and puts the host back (in reverse order of setup); every step runs. */
  async stop(): Promise<void> {
    const errors: string[] = [];
    // The control plane goes after the kubelet and rkl (the last undo steps pushed run first).
    const control = ["kube-scheduler", "kube-controller-manager"];
    for (const u of this.#undo.reverse()) {
      try {
        await u();
      } catch (e) {
        errors.push(String(e));
      }
    }
    this.#undo = [];
    for (const name of [...control, "kube-apiserver", "etcd"]) {
      await this.procs.get(name)?.stop().catch((e) => errors.push(String(e)));
    }
    for (const p of this.procs.values()) await p.stop().catch(() => {});
    if (Deno.env.get("CLUSTER_KEEP") === "1") console.error(`cluster: kept ${this.dir}`);
    else {
      try {
        await Deno.remove(this.dir, { recursive: true });
      } catch (e) {
        errors.push(`removing ${this.dir}: ${e}`);
      }
    }
    if (errors.length > 0) throw new Error(`cluster clean-up: ${errors.join("; ")}`);
  }
}
