/**
 * A second node on the same host, joining the control plane of
 * tests/cluster/cluster.ts (issue 31, item 3): its own `rkl daemon` (state
 * root, run root, CRI socket, bridge `k8sc52` with pods on 10.252.31.0/24)
 * and its own kubelet (node name `rkl-node-b`, client certificate
 * `system:node:rkl-node-b`, root dir, cert dir, pod logs, ports, and
 * `cgroupRoot: /rkl-node-b`, so its pods' cgroups are
 * `/rkl-node-b/kubepods/<qos>/pod<uid>`), with the node address
 * 198.51.100.52/32 on an ifb link of its own (`k8sc52n`).
 *
 * Both bridges are links of the host's network namespace: the host routes
 * between the two pod subnets (connected routes, forwarding on), and the one
 * kube-proxy's rules serve both nodes' pods. Used by tests/cluster/run.ts.
 */
import { NODE_IMAGES } from "../_helpers/node_images.ts";
import {
  addNodeLink,
  type Cluster,
  exists,
  freePort,
  mountsBelow,
  type Proc,
  removeAllPods,
  removeCgroupTrees,
  rklDaemonCommand,
  ruleLines,
  sh,
  umountBelow,
  until,
  writeNodeNetwork,
} from "./cluster.ts";

export const NODE_B = "rkl-node-b";
export const NODE_B_IP = "198.51.100.52";
export const NODE_B_LINK = "k8sc52n";
export const NETWORK_B = "k8sc52";
export const POD_CIDR_B = "10.252.31.0/24";
/** The kubelet's cgroupRoot (a cgroup at the top of every hierarchy, made here). */
export const CGROUP_ROOT_B = "rkl-node-b";

export class SecondNode {
  readonly dir: string;
  readonly root: string;
  readonly runRoot: string;
  readonly sock: string;
  readonly ports = { kubelet: freePort(), kubeletHealthz: freePort() };
  #stopped = false;

  private constructor(readonly c: Cluster) {
    this.dir = `${c.dir}/nodeb`;
    this.root = `${this.dir}/root`;
    this.runRoot = `${this.dir}/run`;
    this.sock = `${this.runRoot}/rkl.sock`;
  }

  /** Starts node B's daemon and kubelet; its stop() is registered with the cluster's. */
  static async start(c: Cluster): Promise<SecondNode> {
    const n = new SecondNode(c);
    c.onStop(() => n.stop());
    await n.#start();
    return n;
  }

  get rkl(): Proc {
    return this.c.proc("rkl-b");
  }

  get kubelet(): Proc {
    return this.c.proc("kubelet-b");
  }

  async #start(): Promise<void> {
    const d = this.dir;
    for (const sub of ["kubelet", "kubelet-pki", "pod-logs", "volume-plugins", "manifests"]) {
      Deno.mkdirSync(`${d}/${sub}`, { recursive: true });
    }
    // The node's client certificate, from the cluster's CA.
    const pki = `${this.c.dir}/pki`;
    const o = (args: string[]) => sh("openssl", args, { cwd: pki });
    Deno.writeTextFileSync(`${pki}/nodeb.ext`, "extendedKeyUsage=clientAuth\n");
    await o([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "nodeb.key",
      "-out",
      "nodeb.csr",
      "-subj",
      `/O=system:nodes/CN=system:node:${NODE_B}`,
    ]);
    await o([
      "x509",
      "-req",
      "-in",
      "nodeb.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-out",
      "nodeb.crt",
      "-extfile",
      "nodeb.ext",
    ]);
    const server = /server: "([^"]+)"/.exec(Deno.readTextFileSync(this.c.kubeconfig))![1];
    Deno.writeTextFileSync(
      `${d}/node.kubeconfig`,
      `apiVersion: v1
kind: Config
clusters:
- name: rkl
  cluster: {server: "${server}", certificate-authority: ${pki}/ca.crt}
users:
- name: nodeb
  user: {client-certificate: ${pki}/nodeb.crt, client-key: ${pki}/nodeb.key}
contexts:
- name: rkl
  context: {cluster: rkl, user: nodeb}
current-context: rkl
`,
    );

    // Its cgroup root, in every hierarchy (the kubelet checks that it exists); cpuset's needs
    // its cpus and mems before a child can hold a task.
    for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
      const h = `/sys/fs/cgroup/${e.name}`;
      if (!e.isDirectory || !exists(`${h}/cgroup.procs`)) continue;
      Deno.mkdirSync(`${h}/${CGROUP_ROOT_B}`, { recursive: true });
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        if (exists(`${h}/${f}`)) {
          Deno.writeTextFileSync(`${h}/${CGROUP_ROOT_B}/${f}`, Deno.readTextFileSync(`${h}/${f}`));
        }
      }
    }

    // The node's address on a link of its own.
    await addNodeLink(NODE_B_LINK, NODE_B_IP);

    // rkl: its own network and daemon.
    writeNodeNetwork(this.root, NETWORK_B, POD_CIDR_B);
    // As node A's: the installed unit's Deno flags and environment.
    const { args, env } = rklDaemonCommand({
      dir: d,
      root: this.root,
      runRoot: this.runRoot,
      sock: this.sock,
      network: NETWORK_B,
      registries: `${this.c.dir}/registries.yaml`,
    });
    this.c.spawn("rkl-b", Deno.execPath(), args, env);
    await until("node B's CRI socket", () => exists(this.sock), 60_000);

    // Its kubelet: the first node's config with its own paths, ports, address and cgroup root.
    const cfg = this.c.kubeletConfig()
      .replace(/^containerRuntimeEndpoint: .*$/m, `containerRuntimeEndpoint: unix://${this.sock}`)
      .replace(/^podLogsDir: .*$/m, `podLogsDir: ${d}/pod-logs`)
      .replace(/^volumePluginDir: .*$/m, `volumePluginDir: ${d}/volume-plugins`)
      .replace(/^address: .*$/m, `address: ${NODE_B_IP}`)
      .replace(/^port: .*$/m, `port: ${this.ports.kubelet}`)
      .replace(/^healthzPort: .*$/m, `healthzPort: ${this.ports.kubeletHealthz}`)
      .replace(/^cgroupsPerQOS: true$/m, `cgroupsPerQOS: true\ncgroupRoot: /${CGROUP_ROOT_B}`);
    Deno.writeTextFileSync(`${d}/kubelet.yaml`, cfg);
    this.c.spawn("kubelet-b", this.c.kubeletBin(), [
      `--config=${d}/kubelet.yaml`,
      `--kubeconfig=${d}/node.kubeconfig`,
      `--root-dir=${d}/kubelet`,
      `--cert-dir=${d}/kubelet-pki`,
      `--hostname-override=${NODE_B}`,
      `--node-ip=${NODE_B_IP}`,
      "--v=2",
    ]);
  }

  /**
   * Node B goes, leaving nothing: its kubelet, the pods it left (through its
   * CRI), its daemon, the Node object, its mounts, cgroup root, links and CNI rules.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.c.procs.get("kubelet-b")?.stop(20_000);
    const rkl = this.c.procs.get("rkl-b");
    if (rkl?.running) {
      await removeAllPods(this.sock);
      await rkl.stop(30_000);
    }
    await this.c.kubectl(["delete", "node", NODE_B, "--ignore-not-found", "--wait=false"], {
      quiet: true,
    }).catch(() => {});
    await umountBelow(this.dir);
    removeCgroupTrees(CGROUP_ROOT_B);
    for (const l of [NODE_B_LINK, NETWORK_B]) {
      await sh("ip", ["link", "del", l], { quiet: true });
    }
    // rkl removes a pod's CNI rules at StopPodSandbox; what a failed run left goes here.
    for (const [key, lines] of await ruleLines(/CNI-/)) {
      const [bin, table] = key.split(" ");
      for (const l of lines.filter((l) => l.startsWith("-A ") && l.includes(NETWORK_B))) {
        await sh("sh", ["-c", `${bin} -w 5 -t ${table} -D ${l.slice(3)}`], { quiet: true });
      }
    }
  }

  /** What node B left on the host (empty after stop()). */
  async leftovers(): Promise<string[]> {
    const left: string[] = [];
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
        if (cmd.includes(`${this.dir}/`)) left.push(`process ${e.name} ${cmd.slice(0, 120)}`);
      } catch { /* gone */ }
    }
    for (const p of mountsBelow(this.dir)) left.push(`mount ${p}`);
    for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
      if (exists(`/sys/fs/cgroup/${e.name}/${CGROUP_ROOT_B}`)) {
        left.push(`cgroup /sys/fs/cgroup/${e.name}/${CGROUP_ROOT_B}`);
      }
    }
    const links = await sh("ip", ["-o", "link"]);
    for (const l of [NODE_B_LINK, NETWORK_B]) if (links.includes(`: ${l}:`)) left.push(`link ${l}`);
    for (const [key, lines] of await ruleLines(/CNI-/)) {
      for (const l of lines) if (l.includes(`\\"${NETWORK_B}\\"`)) left.push(`${key}: ${l}`);
    }
    try {
      for (const e of Deno.readDirSync(`${this.runRoot}/netns`)) left.push(`netns ${e.name}`);
    } catch { /* none */ }
    return left;
  }
}

type StepFn = (name: string, fn: () => Promise<string | void>) => Promise<void>;

async function nodeStatus(c: Cluster, name: string): Promise<string> {
  return (await c.kubectl([
    "get",
    "node",
    name,
    "-o",
    `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
  ], { quiet: true })).trim();
}

interface PodBrief {
  name: string;
  node: string;
  ip: string;
  phase: string;
  uid: string;
}

async function podsOf(c: Cluster, selector: string): Promise<PodBrief[]> {
  const out = await c.kubectl([
    "get",
    "pods",
    "-l",
    selector,
    "-o",
    `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase} {.metadata.uid} {.metadata.deletionTimestamp}{"\\n"}{end}`,
  ]);
  return out.split("\n").filter(Boolean).map((l) => l.split(" ")).filter((f) => !f[5]).map((
    f,
  ) => ({ name: f[0], node: f[1], ip: f[2], phase: f[3], uid: f[4] }));
}

const inCidr = (ip: string, cidr: string) =>
  ip.startsWith(cidr.split(".").slice(0, 3).join(".") + ".");

/** The names of the processes in the cgroup `dir` and below. */
function cgroupCommands(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const p of Deno.readTextFileSync(`${d}/cgroup.procs`).split("\n").filter(Boolean)) {
      try {
        out.push(Deno.readTextFileSync(`/proc/${p}/cmdline`).split("\0")[0]);
      } catch { /* gone */ }
    }
    for (const e of Deno.readDirSync(d)) if (e.isDirectory) walk(`${d}/${e.name}`);
  };
  walk(dir);
  return out;
}

/**
 * The two-node steps: node B joins; pods on A and B reach each other by pod
 * IP and through a ClusterIP Service; cordon + drain of B moves a
 * Deployment's pods to A; B leaves, and nothing of it stays on the host.
 * `nodeA` is the first node's name.
 */
export async function twoNodeSteps(c: Cluster, step: StepFn, nodeA: string): Promise<void> {
  let b: SecondNode | undefined;
  await step("a second node (its own kubelet and rkl daemon) joins the control plane", async () => {
    const t0 = performance.now();
    b = await SecondNode.start(c);
    await until(
      `node ${NODE_B} Ready`,
      async () => (await nodeStatus(c, NODE_B)) === "True",
      120_000,
    );
    const s = (performance.now() - t0) / 1000;
    if ((await nodeStatus(c, nodeA)) !== "True") throw new Error(`${nodeA} is not Ready`);
    const addr = (await c.kubectl([
      "get",
      "node",
      NODE_B,
      "-o",
      `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`,
    ])).trim();
    if (addr !== NODE_B_IP) throw new Error(`${NODE_B}'s InternalIP is ${addr}`);
    return `${NODE_B} (${NODE_B_IP}, cgroup root /${CGROUP_ROOT_B}, pods ${POD_CIDR_B}) Ready ${
      s.toFixed(1)
    } s after its daemon started`;
  });

  await step("pods on node A reach pods on node B by pod IP and through a Service", async () => {
    const netexec = (name: string, node: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: { app: name, step: "two-nodes" } },
      spec: {
        nodeSelector: { "kubernetes.io/hostname": node },
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: "main",
          image: NODE_IMAGES.agnhost,
          args: ["netexec", "--http-port=8080"],
        }],
      },
    });
    await c.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [netexec("on-a", nodeA), netexec("on-b", NODE_B)],
      }),
    });
    let ps: PodBrief[] = [];
    await until("on-a and on-b Running", async () => {
      ps = await podsOf(c, "step=two-nodes");
      return ps.length === 2 && ps.every((p) => p.phase === "Running" && p.ip);
    }, 120_000);
    const a = ps.find((p) => p.name === "on-a")!;
    const bp = ps.find((p) => p.name === "on-b")!;
    if (a.node !== nodeA || !inCidr(a.ip, "10.239.31.0/24")) {
      throw new Error(`on-a: node ${a.node}, IP ${a.ip}`);
    }
    if (bp.node !== NODE_B || !inCidr(bp.ip, POD_CIDR_B)) {
      throw new Error(`on-b: node ${bp.node}, IP ${bp.ip}`);
    }
    // Node B's pod runs in node B's cgroup root, under its kubelet's QoS cgroups.
    const cg = `/sys/fs/cgroup/memory/${CGROUP_ROOT_B}/kubepods/besteffort/pod${bp.uid}`;
    if (!cgroupCommands(cg).some((x) => x.endsWith("agnhost"))) {
      throw new Error(`${cg} holds no agnhost`);
    }
    // The host routes between the bridges (both are its links).
    const route = await sh("ip", ["-o", "route", "get", bp.ip]);
    if (!route.includes(`dev ${NETWORK_B}`)) throw new Error(`route to ${bp.ip}: ${route}`);
    const get = (from: string, url: string) =>
      c.kubectl(["exec", from, "--", "sh", "-c", `timeout 5 wget -qO- '${url}'`], { quiet: true });
    let body = "";
    await until(`on-a → http://${bp.ip}:8080/hostname`, async () => {
      body = await get("on-a", `http://${bp.ip}:8080/hostname`);
      return body.trim() === "on-b";
    }, 30_000);
    await until(`on-b → http://${a.ip}:8080/hostname`, async () => {
      body = await get("on-b", `http://${a.ip}:8080/hostname`);
      return body.trim() === "on-a";
    }, 30_000);
    const seenOnB = (await get("on-a", `http://${bp.ip}:8080/clientip`)).trim().split(":")[0];
    // Through a ClusterIP Service on node B's pod, from node A's.
    await c.kubectl([
      "expose",
      "pod",
      "on-b",
      "--name=on-b-svc",
      "--port=80",
      "--target-port=8080",
    ]);
    const ip = (await c.kubectl(["get", "svc", "on-b-svc", "-o", "jsonpath={.spec.clusterIP}"]))
      .trim();
    await until(`on-a → http://${ip}/hostname (Service on-b-svc)`, async () => {
      body = await get("on-a", `http://${ip}/hostname`);
      return body.trim() === "on-b";
    }, 60_000);
    // kubectl logs of a pod on node B: the API server through node B's kubelet to its rkl.
    if (!/Started HTTP server/.test(await c.kubectl(["logs", "on-b"]))) {
      throw new Error("kubectl logs on-b: no netexec line");
    }
    await c.kubectl([
      "delete",
      "pod/on-a",
      "pod/on-b",
      "svc/on-b-svc",
      "--grace-period=1",
      "--wait=true",
    ]);
    return `on-a ${a.ip} (node A) ⇄ on-b ${bp.ip} (node B) by pod IP (on-b saw ${seenOnB}: ` +
      `the bridge plugin's ipMasq rewrites traffic leaving a pod's subnet); ${ip}:80 → on-b`;
  });

  await step("cordon + drain of node B moves its Deployment's pods to node A", async () => {
    // All four replicas on B first: A cordoned while they are placed.
    await c.kubectl(["cordon", nodeA]);
    try {
      await c.kubectl([
        "create",
        "deployment",
        "mover",
        `--image=${NODE_IMAGES.agnhost}`, // `agnhost pause`: ends on SIGTERM
        "--replicas=4",
      ]);
      await until("4 mover pods Running on node B", async () => {
        const ps = await podsOf(c, "app=mover");
        return ps.length === 4 && ps.every((p) => p.phase === "Running" && p.node === NODE_B);
      }, 120_000);
    } finally {
      await c.kubectl(["uncordon", nodeA]);
    }
    const t0 = performance.now();
    await c.kubectl(["drain", NODE_B, "--ignore-daemonsets", "--timeout=120s"]);
    let ps: PodBrief[] = [];
    await until("4 mover pods Running on node A", async () => {
      ps = await podsOf(c, "app=mover");
      return ps.length === 4 && ps.every((p) => p.phase === "Running" && p.node === nodeA);
    }, 120_000);
    const s = (performance.now() - t0) / 1000;
    const ready =
      (await c.kubectl(["get", "deploy", "mover", "-o", "jsonpath={.status.readyReplicas}"]))
        .trim();
    if (ready !== "4") throw new Error(`mover has ${ready} ready replicas`);
    const unsched =
      (await c.kubectl(["get", "node", NODE_B, "-o", "jsonpath={.spec.unschedulable}"]))
        .trim();
    if (unsched !== "true") throw new Error(`${NODE_B} is not cordoned (${unsched})`);
    // Node B's runtime has no pod left (the kubelet stopped them; removal is its GC's).
    const crictl = (args: string[]) =>
      sh("crictl", ["-t", "10s", "-r", `unix://${b!.sock}`, ...args], { quiet: true });
    await until(
      "node B's runtime with no running container",
      async () => (await crictl(["ps", "-q"])).trim() === "",
      60_000,
    );
    return `4 pods from ${NODE_B} to ${nodeA}, all Running ${s.toFixed(1)} s after the drain began`;
  });

  await step("node B leaves; nothing of it is left on the host", async () => {
    await c.kubectl(["delete", "deployment/mover", "--wait=true"]);
    await until("mover pods gone", async () => (await podsOf(c, "app=mover")).length === 0, 90_000);
    await b!.stop();
    await until(
      `node ${NODE_B} gone from the API`,
      async () => (await c.kubectl(["get", "nodes", "-o", "name"])).trim() === `node/${nodeA}`,
      30_000,
    );
    const left = await b!.leftovers();
    if (left.length > 0) throw new Error(`left:\n  ${left.join("\n  ")}`);
    return "no process, mount, netns, cgroup, link or CNI rule of node B";
  });
}
