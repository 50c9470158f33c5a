/**
 * `deno task test:cluster`: a real one-node Kubernetes cluster on rkl's CRI
 * (tests/cluster/cluster.ts starts it), checked through the API server only,
 * with kubectl:
 *
 * node Ready; `kubectl run` → Running in the kubelet's kubepods cgroup;
 * `exec` (with stdin), `logs` and `logs -f`, `port-forward`, `cp` both ways;
 * a Deployment scaled 3 → 10 → 0; a ClusterIP Service reached from another
 * pod through kube-proxy's iptables rules; a Job that completes; a pod with
 * configMap, secret, projected and downwardAPI volumes; `kubectl delete`
 * leaves nothing on the host (processes, mounts, netns, veths, pod cgroups,
 * rkl's CNI iptables chains); kill -9 of the kubelet and the rkl daemon
 * while 10 pods run: the node is Ready again after both restart and no
 * container restarted (restartCount 0, same container IDs).
 *
 * Each check is a step that fails loudly (the first failure ends the run,
 * with the tails of the logs); the host is put back in every case. Root;
 * runs under `flock /tmp/rkl-e2e.lock` (it takes the lock itself). A missing
 * prerequisite skips, and fails under CI=true.
 *
 *   deno task test:cluster            CLUSTER_KEEP=1 keeps the temp dir (logs)
 */
import { requires } from "../_helpers/requires.ts";
import { which } from "../../src/oci/runtime.ts";
import { NODE_IMAGES } from "../_helpers/node_images.ts";
import {
  Cluster,
  exists,
  NETWORK,
  NODE,
  ownCniRules,
  POD_CIDR,
  ruleLines,
  SERVICE_CIDR,
  sh,
  sleep,
  SYSCTLS,
  until,
} from "./cluster.ts";
import { composeSteps } from "./compose_step.ts";
import { CGROUP_ROOT_B, NETWORK_B, NODE_B_LINK, twoNodeSteps } from "./two_nodes.ts";

const LOCK = "/tmp/rkl-e2e.lock";
/** A container that idles and ends on SIGTERM (a shell as PID 1 ignores it: 30 s of grace per delete). */
const IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const dec = new TextDecoder();

interface Step {
  name: string;
  seconds: number;
  note?: string;
}
const done: Step[] = [];

async function step(name: string, fn: () => Promise<string | void>): Promise<void> {
  const t0 = performance.now();
  console.log(`… ${name}`);
  const note = await fn();
  const seconds = (performance.now() - t0) / 1000;
  done.push({ name, seconds, note: note || undefined });
  console.log(`ok ${name} (${seconds.toFixed(1)} s)${note ? `: ${note}` : ""}`);
}

function prerequisites(): boolean {
  if (
    !requires("root", "youki", "conmon", "cni", "iptables", "ip", "registry", "crictl", "bundles")
  ) {
    return false;
  }
  for (const t of ["openssl", "xz", "flock", "catatonit", "cc"]) {
    if (!which(t)) {
      const msg = `missing prerequisite: ${t} is not installed (scripts/setup.sh installs it)`;
      if (Deno.env.get("CI") === "true") {
        throw new Error(`${msg} (CI=true: failing instead of skipping)`);
      }
      console.error(`skipping: ${msg}`);
      return false;
    }
  }
  return true;
}

interface PodJson {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  status: {
    phase?: string;
    podIP?: string;
    containerStatuses?: {
      name: string;
      restartCount: number;
      containerID?: string;
      ready: boolean;
    }[];
  };
}

async function pods(c: Cluster, selector?: string): Promise<PodJson[]> {
  const args = ["get", "pods", "-o", "json", ...(selector ? ["-l", selector] : [])];
  return (JSON.parse(await c.kubectl(args)) as { items: PodJson[] }).items;
}

async function phase(c: Cluster, name: string): Promise<string> {
  return (await c.kubectl(["get", "pod", name, "-o", "jsonpath={.status.phase}"])).trim();
}

async function nodeReady(c: Cluster): Promise<{ status: string; heartbeat: string }> {
  const out = await c.kubectl([
    "get",
    "node",
    NODE,
    "-o",
    `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}`,
  ]);
  const [status, heartbeat] = out.trim().split(" ");
  return { status, heartbeat };
}

/** A Deployment's ready replicas and the pods it has (not being deleted). */
async function deployment(c: Cluster, name: string): Promise<{ ready: number; pods: number }> {
  const ready = Number(
    (await c.kubectl(["get", "deploy", name, "-o", "jsonpath={.status.readyReplicas}"])).trim() ||
      "0",
  );
  const n = (await c.kubectl(["get", "pods", "-l", `app=${name}`, "-o", "name"])).split("\n")
    .filter(Boolean).length;
  return { ready, pods: n };
}

/** What pods leave on the host; equal before any pod and after `kubectl delete`. */
interface HostCensus {
  processes: string[];
  mounts: string[];
  netns: string[];
  veths: string[];
  podCgroups: string[];
  cniRules: string[];
}

async function hostCensus(c: Cluster, own: Set<number>): Promise<HostCensus> {
  const processes: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || own.has(Number(e.name))) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ").trim();
      const cg = Deno.readTextFileSync(`/proc/${e.name}/cgroup`);
      if (cmd.includes(c.dir) || /kubepods/.test(cg)) processes.push(`${e.name} ${cmd}`);
    } catch { /* gone */ }
  }
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) =>
    l.split(" ")[4]
  ).filter((m) => m && (m.startsWith(`${c.dir}/`) || m.startsWith("/run/netns/"))).sort();
  const netns: string[] = [];
  for (const d of [`${c.runRoot}/netns`, "/run/netns"]) {
    try {
      for (const e of Deno.readDirSync(d)) netns.push(`${d}/${e.name}`);
    } catch { /* none */ }
  }
  const veths = (await sh("ip", ["-o", "link", "show", "master", NETWORK], { quiet: true }))
    .split("\n").filter(Boolean).map((l) => l.split(": ")[1].split("@")[0]).sort();
  const podCgroups: string[] = [];
  for (const h of Deno.readDirSync("/sys/fs/cgroup")) {
    for (const qos of ["", "/besteffort", "/burstable"]) {
      const dir = `/sys/fs/cgroup/${h.name}/kubepods${qos}`;
      try {
        for (const e of Deno.readDirSync(dir)) {
          if (e.isDirectory && e.name.startsWith("pod")) podCgroups.push(`${dir}/${e.name}`);
        }
      } catch { /* none */ }
    }
  }
  const cniRules = [...(await ruleLines(/CNI-/)).entries()].flatMap(([k, ls]) =>
    ownCniRules(ls).map((l) => `${k}: ${l}`)
  );
  return { processes: processes.sort(), mounts, netns: netns.sort(), veths, podCgroups, cniRules };
}

function censusDiff(a: HostCensus, b: HostCensus): string[] {
  const out: string[] = [];
  for (const k of Object.keys(a) as (keyof HostCensus)[]) {
    const had = new Set(a[k]);
    for (const x of b[k]) if (!had.has(x)) out.push(`${k}: ${x}`);
  }
  return out;
}

function ownPids(c: Cluster): Set<number> {
  return new Set([Deno.pid, ...[...c.procs.values()].map((p) => p.pid)]);
}

async function run(c: Cluster): Promise<void> {
  await step("node Ready", async () => {
    await until("node Ready", async () => (await nodeReady(c)).status === "True", 120_000);
    const s = (performance.now() - c.kubeletStarted) / 1000;
    // Pods need the default ServiceAccount and kube-root-ca.crt (the controller-manager's).
    await until(
      "the default ServiceAccount and kube-root-ca.crt",
      async () =>
        (await c.kubectl(["get", "sa/default", "cm/kube-root-ca.crt", "-o", "name"], {
          quiet: true,
        })).split("\n").filter(Boolean).length === 2,
      60_000,
    );
    return `Ready ${s.toFixed(1)} s after the kubelet started`;
  });
  const baseline = await hostCensus(c, ownPids(c));

  await step("kubectl run → Running, in the kubelet's kubepods cgroup", async () => {
    const t0 = performance.now();
    await c.kubectl([
      "run",
      "web",
      `--image=${NODE_IMAGES.agnhost}`,
      "--restart=Never",
      "--",
      "netexec",
      "--http-port=8080",
    ]);
    await until("pod web Running", async () => (await phase(c, "web")) === "Running", 120_000);
    const s = (performance.now() - t0) / 1000;
    const uid = (await c.kubectl(["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"])).trim();
    const dir = `/sys/fs/cgroup/memory/kubepods/besteffort/pod${uid}`;
    if (!exists(dir)) throw new Error(`${dir} is not there`);
    // The pod's process (agnhost netexec) is in a cgroup below it.
    const procs: string[] = [];
    const walk = (d: string) => {
      procs.push(...Deno.readTextFileSync(`${d}/cgroup.procs`).split("\n").filter(Boolean));
      for (const e of Deno.readDirSync(d)) if (e.isDirectory) walk(`${d}/${e.name}`);
    };
    walk(dir);
    const cmds = procs.map((p) => {
      try {
        return Deno.readTextFileSync(`/proc/${p}/cmdline`).split("\0")[0];
      } catch {
        return "";
      }
    });
    // (rkl pins a sandbox's namespaces as files: no pause process unless the PID namespace is shared.)
    if (!cmds.some((c) => c.endsWith("agnhost"))) {
      throw new Error(`${dir} holds ${cmds.join(", ") || "no process"}, not agnhost`);
    }
    return `Running ${s.toFixed(1)} s after kubectl run; agnhost in a cgroup under ${dir}`;
  });

  await step("kubectl exec (argv, stdin, exit code)", async () => {
    const host = (await c.kubectl(["exec", "web", "--", "cat", "/etc/hostname"])).trim();
    if (host !== "web") throw new Error(`exec cat /etc/hostname: ${JSON.stringify(host)}`);
    const echo = await c.kubectl(["exec", "-i", "web", "--", "sh", "-c", "tr a-z A-Z"], {
      stdin: "piped through exec\n",
    });
    if (echo !== "PIPED THROUGH EXEC\n") throw new Error(`exec -i: ${JSON.stringify(echo)}`);
    const r = await new Deno.Command(`${c.bin}/kubectl`, {
      args: [`--kubeconfig=${c.kubeconfig}`, "exec", "web", "--", "sh", "-c", "exit 7"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (r.code !== 7) throw new Error(`exec exit 7: kubectl exited ${r.code}`);
    // -it: kubectl on a terminal (script(1) gives it a pty, sized here), the shell in the pod on
    // one too, at kubectl's size as it starts (the first resize through the kubelet).
    const tty = await sh("script", [
      "-qec",
      `stty rows 31 cols 97; ${c.bin}/kubectl --kubeconfig=${c.kubeconfig} exec -it web -- sh -c 'tty; stty size; echo tty-ok'`,
      "/dev/null",
    ], { stdin: "" });
    if (!/\/dev\/pts\/\d+/.test(tty) || !/(^|\D)31 97\r?$/m.test(tty) || !/tty-ok/.test(tty)) {
      throw new Error(`exec -it: ${JSON.stringify(tty.slice(0, 300))}`);
    }
    return `-it: the pod's shell on ${/\/dev\/pts\/\d+/.exec(tty)![0]}, 31x97 from the start`;
  });

  await step("kubectl attach", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "echoer" },
      spec: {
        restartPolicy: "Never",
        containers: [{
          name: "main",
          image: NODE_IMAGES.busybox,
          stdin: true,
          command: ["sh", "-c", "trap 'exit 0' TERM; while read l; do echo \"got $l\"; done"],
        }],
      },
    };
    await c.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(pod) });
    await until(
      "pod echoer Running",
      async () => (await phase(c, "echoer")) === "Running",
      120_000,
    );
    const a = new Deno.Command(`${c.bin}/kubectl`, {
      args: [`--kubeconfig=${c.kubeconfig}`, "attach", "-i", "echoer"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = a.stdin.getWriter();
    const reader = a.stdout.getReader();
    let text = "";
    const deadline = setTimeout(() => {
      try {
        a.kill("SIGKILL");
      } catch { /* gone */ }
    }, 30_000);
    // Lines are sent until one comes back: the attach may be set up after the first write.
    const sender = (async () => {
      for (let i = 0; i < 60 && !text.includes("got ping"); i++) {
        await w.write(new TextEncoder().encode("ping\n")).catch(() => {});
        await sleep(500);
      }
    })();
    while (!text.includes("got ping")) {
      const r = await reader.read();
      if (r.done) break;
      text += dec.decode(r.value);
    }
    clearTimeout(deadline);
    try {
      a.kill("SIGTERM");
    } catch { /* gone */ }
    await sender;
    await w.close().catch(() => {});
    await a.status;
    await a.stderr.cancel().catch(() => {});
    if (!text.includes("got ping")) {
      throw new Error(`attach: ${JSON.stringify(text.slice(0, 200))}`);
    }
    const logs = await c.kubectl(["logs", "echoer"]);
    if (!logs.includes("got ping")) throw new Error(`logs of echoer: ${JSON.stringify(logs)}`);
  });

  await step("kubectl logs and logs -f", async () => {
    await c.kubectl([
      "run",
      "ticker",
      `--image=${NODE_IMAGES.busybox}`,
      "--restart=Never",
      "--",
      "sh",
      "-c",
      "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done",
    ]);
    await until(
      "pod ticker Running",
      async () => (await phase(c, "ticker")) === "Running",
      120_000,
    );
    await until(
      "web's log line",
      async () => /Started HTTP server on port 8080/.test(await c.kubectl(["logs", "web"])),
      20_000,
    );
    await until(
      "ticker's first lines",
      async () => /tick 1\n/.test(await c.kubectl(["logs", "ticker"])),
      20_000,
    );
    const seen = (await c.kubectl(["logs", "ticker"])).split("\n").filter(Boolean).length;
    // -f follows: lines written after it started arrive on the open stream.
    const f = c.kubectlSpawn(["logs", "-f", "ticker"]);
    const reader = f.stdout.getReader();
    let text = "";
    const want = `tick ${seen + 4}\n`;
    const deadline = setTimeout(() => {
      try {
        f.kill("SIGKILL");
      } catch { /* gone */ }
    }, 30_000);
    while (!text.includes(want)) {
      const r = await reader.read();
      if (r.done) break;
      text += dec.decode(r.value);
    }
    clearTimeout(deadline);
    try {
      f.kill("SIGTERM");
    } catch { /* gone */ }
    await f.status;
    await f.stderr.cancel().catch(() => {});
    if (!text.includes(want)) throw new Error(`logs -f never showed ${JSON.stringify(want)}`);
    return `logs -f followed to "${want.trim()}"`;
  });

  await step("kubectl port-forward", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const pf = c.kubectlSpawn(["port-forward", "--address=127.0.0.1", "pod/web", `${port}:8080`]);
    try {
      let body = "";
      await until("an answer through port-forward", async () => {
        const r = await fetch(`http://127.0.0.1:${port}/hostname`);
        body = await r.text();
        return r.ok;
      }, 30_000);
      if (body.trim() !== "web") {
        throw new Error(`/hostname through port-forward: ${JSON.stringify(body)}`);
      }
      const r = await fetch(`http://127.0.0.1:${port}/echo?msg=rkl-forwarded`);
      const echo = await r.text();
      if (echo.trim() !== "rkl-forwarded") throw new Error(`/echo: ${JSON.stringify(echo)}`);
    } finally {
      try {
        pf.kill("SIGTERM");
      } catch { /* gone */ }
      await pf.status;
      await pf.stdout.cancel().catch(() => {});
      await pf.stderr.cancel().catch(() => {});
    }
  });

  await step("kubectl cp both ways", async () => {
    const content = `copied ${crypto.randomUUID()}\n`.repeat(1000);
    const src = `${c.dir}/cp-src.txt`;
    Deno.writeTextFileSync(src, content);
    await c.kubectl(["cp", src, "web:/tmp/in.txt"]);
    const inside = await c.kubectl(["exec", "web", "--", "cat", "/tmp/in.txt"]);
    if (inside !== content) {
      throw new Error(`host → pod: the file differs (${inside.length} bytes)`);
    }
    await c.kubectl([
      "exec",
      "web",
      "--",
      "sh",
      "-c",
      "cp /tmp/in.txt /tmp/out.txt && echo back >> /tmp/out.txt",
    ]);
    const dst = `${c.dir}/cp-dst.txt`;
    await c.kubectl(["cp", "web:/tmp/out.txt", dst]);
    const back = Deno.readTextFileSync(dst);
    if (back !== `${content}back\n`) {
      throw new Error(`pod → host: the file differs (${back.length} bytes)`);
    }
    return `${content.length} bytes each way`;
  });

  await step("Deployment scaled 3 → 10 → 0", async () => {
    const times: string[] = [];
    await c.kubectl([
      "create",
      "deployment",
      "sleeper",
      `--image=${NODE_IMAGES.agnhost}`, // its CMD: `agnhost pause`, which ends on SIGTERM
      "--replicas=3",
    ]);
    for (const n of [3, 10, 0]) {
      const t0 = performance.now();
      if (n !== 3) await c.kubectl(["scale", "deployment/sleeper", `--replicas=${n}`]);
      await until(`Deployment sleeper at ${n} ready pods`, async () => {
        const d = await deployment(c, "sleeper");
        return d.ready === n && d.pods === n;
      }, 180_000);
      times.push(`${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return times.join(", ");
  });

  await step("ClusterIP Service reached from another pod through kube-proxy", async () => {
    await c.kubectl(["expose", "pod", "web", "--name=websvc", "--port=80", "--target-port=8080"]);
    const ip = (await c.kubectl(["get", "svc", "websvc", "-o", "jsonpath={.spec.clusterIP}"]))
      .trim();
    if (!ip.startsWith(SERVICE_CIDR.split(".").slice(0, 3).join("."))) {
      throw new Error(`ClusterIP ${ip} is not in ${SERVICE_CIDR}`);
    }
    await c.kubectl([
      "run",
      "client",
      `--image=${NODE_IMAGES.busybox}`,
      "--restart=Never",
      "--",
      ...IDLE,
    ]);
    await until(
      "pod client Running",
      async () => (await phase(c, "client")) === "Running",
      120_000,
    );
    const webIP = (await c.kubectl(["get", "pod", "web", "-o", "jsonpath={.status.podIP}"])).trim();
    let body = "";
    await until(`http://${ip}/hostname from pod client`, async () => {
      body = await c.kubectl(
        ["exec", "client", "--", "sh", "-c", `timeout 5 wget -qO- http://${ip}/hostname`],
        { quiet: true },
      );
      return body.trim() === "web";
    }, 60_000);
    // And the address the client came from, as web saw it: the client's pod IP (no SNAT on the bridge).
    const clientIP = (await c.kubectl(["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]))
      .trim();
    const seen = await c.kubectl(
      ["exec", "client", "--", "sh", "-c", `timeout 5 wget -qO- http://${ip}/clientip`],
    );
    if (!seen.startsWith(`${clientIP}:`)) {
      throw new Error(`web saw the client as ${seen.trim()}, not ${clientIP}`);
    }
    return `${ip}:80 → ${webIP}:8080 (web pod), client ${clientIP}`;
  });

  await step("a Job that completes", async () => {
    const t0 = performance.now();
    await c.kubectl([
      "create",
      "job",
      "once",
      `--image=${NODE_IMAGES.busybox}`,
      "--",
      "sh",
      "-c",
      "echo job-ran-here",
    ]);
    await until("Job once complete", async () =>
      (await c.kubectl([
        "get",
        "job",
        "once",
        "-o",
        `jsonpath={.status.conditions[?(@.type=="Complete")].status}`,
      ])).trim() === "True", 120_000);
    const log = await c.kubectl(["logs", "job/once"]);
    if (log.trim() !== "job-ran-here") throw new Error(`Job log: ${JSON.stringify(log)}`);
    return `complete ${((performance.now() - t0) / 1000).toFixed(1)} s after create`;
  });

  await step("configMap, secret, projected and downwardAPI volumes", async () => {
    await c.kubectl(["create", "configmap", "cfg", "--from-literal=color=teal"]);
    await c.kubectl(["create", "secret", "generic", "sec", "--from-literal=password=s3cr3t"]);
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "vols",
        labels: { tier: "volumes" },
        annotations: { note: "from-the-api" },
      },
      spec: {
        restartPolicy: "Never",
        containers: [{
          name: "main",
          image: NODE_IMAGES.busybox,
          command: IDLE,
          resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
          volumeMounts: [
            { name: "cm", mountPath: "/cm" },
            { name: "sec", mountPath: "/sec" },
            { name: "proj", mountPath: "/proj" },
            { name: "down", mountPath: "/down" },
          ],
        }],
        volumes: [
          { name: "cm", configMap: { name: "cfg" } },
          { name: "sec", secret: { secretName: "sec", defaultMode: 0o400 } },
          {
            name: "proj",
            projected: {
              sources: [
                { configMap: { name: "cfg", items: [{ key: "color", path: "c/color" }] } },
                { secret: { name: "sec", items: [{ key: "password", path: "s/password" }] } },
                {
                  downwardAPI: {
                    items: [{ path: "name", fieldRef: { fieldPath: "metadata.name" } }],
                  },
                },
                { serviceAccountToken: { path: "token", expirationSeconds: 3600 } },
              ],
            },
          },
          {
            name: "down",
            downwardAPI: {
              items: [
                { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
                { path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } },
                {
                  path: "mem_limit",
                  resourceFieldRef: {
                    containerName: "main",
                    resource: "limits.memory",
                    divisor: "1Mi",
                  },
                },
              ],
            },
          },
        ],
      },
    };
    await c.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(pod) });
    await until("pod vols Running", async () => (await phase(c, "vols")) === "Running", 120_000);
    const cat = (p: string) => c.kubectl(["exec", "vols", "--", "cat", p]);
    const want: [string, (s: string) => boolean][] = [
      ["/cm/color", (s) => s === "teal"],
      ["/sec/password", (s) => s === "s3cr3t"],
      ["/proj/c/color", (s) => s === "teal"],
      ["/proj/s/password", (s) => s === "s3cr3t"],
      ["/proj/name", (s) => s === "vols"],
      ["/proj/token", (s) => /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(s)],
      ["/down/labels", (s) => s.includes(`tier="volumes"`)],
      ["/down/annotations", (s) => s.includes(`note="from-the-api"`)],
      ["/down/mem_limit", (s) => s === "64"],
    ];
    for (const [p, ok] of want) {
      const s = await cat(p);
      if (!ok(s.trim())) throw new Error(`${p} in pod vols: ${JSON.stringify(s.slice(0, 200))}`);
    }
    const mode =
      (await c.kubectl(["exec", "vols", "--", "stat", "-L", "-c", "%a", "/sec/password"])).trim();
    if (mode !== "400") throw new Error(`/sec/password has mode ${mode}, not 400`);
    // The secret's volume is a tmpfs, as the kubelet makes it.
    const mounts = await c.kubectl(["exec", "vols", "--", "cat", "/proc/mounts"]);
    if (!/ \/sec tmpfs /.test(mounts)) throw new Error("/sec is not a tmpfs in the pod");
    // The pod has a memory limit: burstable QoS, its cgroup under kubepods/burstable.
    const uid = (await c.kubectl(["get", "pod", "vols", "-o", "jsonpath={.metadata.uid}"])).trim();
    const lim = `/sys/fs/cgroup/memory/kubepods/burstable/pod${uid}/memory.limit_in_bytes`;
    if (Deno.readTextFileSync(lim).trim() !== String(64 * 1024 * 1024)) {
      throw new Error(`${lim}: ${Deno.readTextFileSync(lim).trim()}`);
    }
    return `${want.length} files right; pod cgroup under kubepods/burstable with a 64 MiB limit`;
  });

  await step("bad input: an image that is not there, runAsNonRoot on a root image", async () => {
    const waiting = async (pod: string) => {
      const out = await c.kubectl([
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
      ]);
      const [reason, ...message] = out.split("|");
      return { reason, message: message.join("|") };
    };
    await c.kubectl([
      "run",
      "nopull",
      "--image=registry.k8s.io/e2e-test-images/no-such-image:1.0",
      "--restart=Never",
    ]);
    let w = { reason: "", message: "" };
    await until("nopull waiting in ErrImagePull or ImagePullBackOff", async () => {
      w = await waiting("nopull");
      return /^(ErrImagePull|ImagePullBackOff)$/.test(w.reason) && w.message !== "";
    }, 60_000);
    // The registry's own words reach the pod's status.
    if (!/no-such-image/.test(w.message) || !/not found|unknown|404/i.test(w.message)) {
      throw new Error(`nopull: ${w.reason}: ${w.message}`);
    }
    const pull = `${w.reason}: ${w.message.slice(0, 120)}`;
    const nonRoot = (name: string, image: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: {
        restartPolicy: "Never",
        terminationGracePeriodSeconds: 1,
        securityContext: { runAsNonRoot: true },
        containers: [{ name: "main", image, command: IDLE }],
      },
    });
    await c.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify(nonRoot("asroot", NODE_IMAGES.busybox)),
    });
    await until("asroot refused with CreateContainerConfigError", async () => {
      w = await waiting("asroot");
      return w.reason === "CreateContainerConfigError";
    }, 60_000);
    if (!/non-root|runAsNonRoot/i.test(w.message)) throw new Error(`asroot: ${w.message}`);
    // The same with the nonroot image (USER 1234, from rkl's ImageStatus) runs.
    await c.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify(nonRoot("asuser", NODE_IMAGES.nonroot)),
    });
    await until("asuser Running", async () => (await phase(c, "asuser")) === "Running", 60_000);
    const id = (await c.kubectl(["exec", "asuser", "--", "id", "-u"])).trim();
    if (id !== "1234") throw new Error(`asuser runs as ${id}`);
    return `${pull}; root image: ${w.message}`;
  });

  await step("kubectl delete leaves nothing on the host", async () => {
    const t0 = performance.now();
    const names = (await pods(c)).map((p) => p.metadata.name);
    const gone = new Map<string, number>();
    await c.kubectl([
      "delete",
      ...names.map((n) => `pod/${n}`),
      "deployment/sleeper",
      "job/once",
      "svc/websvc",
      "cm/cfg",
      "secret/sec",
      "--wait=false",
      "--ignore-not-found",
    ]);
    await until("no pods through the API", async () => {
      const left = new Set((await pods(c)).map((p) => p.metadata.name));
      for (const n of names) if (!left.has(n) && !gone.has(n)) gone.set(n, performance.now() - t0);
      return left.size === 0;
    }, 120_000);
    const slowest = [...gone].sort((a, b) => b[1] - a[1]).slice(0, 2)
      .map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join(", ");
    const api = (performance.now() - t0) / 1000;
    // What was still on the host when the API had no pod left (the kubelet removes sandboxes in
    // its garbage collection, once a minute).
    const first = censusDiff(baseline, await hostCensus(c, ownPids(c)));
    const kinds = new Map<string, number>();
    for (const d of first) {
      // mounts by where they are: the kubelet's volumes, rkl's root or run root.
      const k = d.startsWith("mounts: ")
        ? `mounts in ${d.slice(8 + c.dir.length + 1).split("/").slice(0, 2).join("/")}/`
        : d.split(":")[0];
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    const lingering = [...kinds].map(([k, n]) => `${n} ${k}`).join(", ") || "nothing";
    let diff: string[] = [];
    await until("the host census to match the one before any pod", async () => {
      diff = censusDiff(baseline, await hostCensus(c, ownPids(c)));
      return diff.length === 0;
    }, 150_000).catch((e) => {
      throw new Error(`${e.message}; left:\n  ${diff.join("\n  ")}`);
    });
    return `${names.length} pods gone through the API in ${
      api.toFixed(1)
    } s (slowest: ${slowest}), from the host in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s; left when the API showed none: ${lingering}`;
  });

  await step(
    "kill -9 of the kubelet and rkl with 10 pods running: no restarts, node Ready again",
    async () => {
      await c.kubectl([
        "create",
        "deployment",
        "steady",
        `--image=${NODE_IMAGES.agnhost}`,
        "--replicas=10",
      ]);
      await until("10 steady pods ready", async () => {
        const d = await deployment(c, "steady");
        return d.ready === 10 && d.pods === 10;
      }, 180_000);
      const ids = (ps: PodJson[]) =>
        new Map(
          ps.map((p) => [p.metadata.name, p.status.containerStatuses?.[0]?.containerID ?? ""]),
        );
      const before = ids(await pods(c, "app=steady"));
      const killedAt = new Date();
      await sleep(1000); // the Ready condition's heartbeat has a one-second resolution
      const kubelet = c.proc("kubelet");
      const rkl = c.proc("rkl");
      Deno.kill(kubelet.pid, "SIGKILL");
      Deno.kill(rkl.pid, "SIGKILL");
      await kubelet.child.status;
      await rkl.child.status;
      c.restartRkl();
      await until(
        "rkl's CRI answering again",
        async () =>
          (await sh("crictl", ["-t", "5s", "-r", `unix://${c.sock}`, "version"], { quiet: true }))
            .includes("RuntimeName"),
        60_000,
      );
      c.startKubelet();
      await until("a Ready heartbeat from the restarted kubelet", async () => {
        const r = await nodeReady(c);
        return r.status === "True" && new Date(r.heartbeat) > killedAt;
      }, 120_000);
      const ready = (performance.now() - c.kubeletStarted) / 1000;
      // The restarted kubelet relists and syncs every pod; give it time to (wrongly) restart any.
      const t0 = performance.now();
      while (performance.now() - t0 < 20_000) {
        const ps = await pods(c, "app=steady");
        const bad = ps.filter((p) =>
          p.status.phase !== "Running" ||
          (p.status.containerStatuses ?? []).some((s) => s.restartCount !== 0) ||
          before.get(p.metadata.name) !== p.status.containerStatuses?.[0]?.containerID
        );
        if (ps.length !== 10 || bad.length > 0) {
          throw new Error(
            `after the restarts: ${ps.length} pods; changed: ${
              bad.map((p) =>
                `${p.metadata.name} ${p.status.phase} restarts=${
                  p.status.containerStatuses?.[0]?.restartCount
                } id=${p.status.containerStatuses?.[0]?.containerID}`
              ).join(", ")
            }`,
          );
        }
        await sleep(2000);
      }
      await c.kubectl(["delete", "deployment/steady", "--wait=true"]);
      await until("steady pods gone", async () => (await pods(c)).length === 0, 120_000);
      return `node Ready ${
        ready.toFixed(1)
      } s after the kubelet restarted; 10 pods, restartCount 0, same container IDs for 20 s`;
    },
  );
}

/** The last step: rkl's CRI answered every call the kubelet's relists make (its log says which failed). */
async function listsAnswered(c: Cluster): Promise<void> {
  await step("rkl's CRI answered every ListPodSandbox and ListContainers", () => {
    // Both nodes' daemons.
    const log = ["rkl", "rkl-b"].filter((n) => c.procs.has(n))
      .map((n) => Deno.readTextFileSync(c.proc(n).log)).join("\n");
    const failed = log.split("\n").filter((l) => /cri: List(PodSandbox|Containers)\w*: /.test(l));
    if (failed.length > 0) {
      throw new Error(`${failed.length} failed:\n  ${failed.slice(0, 5).join("\n  ")}`);
    }
    return Promise.resolve();
  });
}

async function main(): Promise<number> {
  if (Deno.env.get("RKL_CLUSTER_LOCKED") !== "1") {
    // The whole run under the e2e lock (other root e2e runs share the host).
    const r = await new Deno.Command("flock", {
      args: [LOCK, Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, ...Deno.args],
      env: { RKL_CLUSTER_LOCKED: "1" },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    return r.code;
  }
  if (!prerequisites()) return 0;
  const rulesBefore = await ruleLines(/KUBE-|CNI-/);
  const sysBefore = SYSCTLS.map((s) => {
    try {
      return `${s}=${Deno.readTextFileSync(`/proc/sys/${s.replaceAll(".", "/")}`).trim()}`;
    } catch {
      return `${s}=?`;
    }
  });
  const t0 = performance.now();
  let failed: unknown;
  let c: Cluster | undefined;
  try {
    c = await Cluster.start({ say: (l) => console.log(l) });
    console.log(`cluster: started in ${((performance.now() - t0) / 1000).toFixed(1)} s (${c.dir})`);
    await run(c);
    await composeSteps(c, step);
    await twoNodeSteps(c, step, NODE);
    await listsAnswered(c);
  } catch (e) {
    failed = e;
    console.error(`\nFAILED: ${e instanceof Error ? e.message : e}`);
    for (const name of ["kubelet", "rkl", "kube-apiserver", "kube-proxy", "kubelet-b", "rkl-b"]) {
      const p = c?.procs.get(name);
      if (p) console.error(`--- ${name} (last lines of ${p.log})\n${p.tail(25)}`);
    }
  } finally {
    try {
      await c?.stop();
    } catch (e) {
      failed ??= e;
      console.error(`FAILED: ${e}`);
    }
  }
  // The host as before: iptables chains (kube-proxy's, the kubelet's, rkl's CNI ones), sysctls, links.
  const left: string[] = [];
  const rulesAfter = await ruleLines(/KUBE-|CNI-/);
  for (const [k, ls] of rulesAfter) {
    const had = new Set(rulesBefore.get(k) ?? []);
    const ours = [
      ...ls.filter((l) => /KUBE-/.test(l) || l.includes(`name: \\"${NETWORK_B}\\"`)),
      ...ownCniRules(ls),
    ];
    for (const l of ours) if (!had.has(l)) left.push(`${k}: ${l}`);
  }
  const sysAfter = SYSCTLS.map((s) => {
    try {
      return `${s}=${Deno.readTextFileSync(`/proc/sys/${s.replaceAll(".", "/")}`).trim()}`;
    } catch {
      return `${s}=?`;
    }
  });
  sysAfter.forEach((s, i) => s !== sysBefore[i] && left.push(`sysctl ${s} (was ${sysBefore[i]})`));
  const links = await sh("ip", ["-o", "link"]);
  for (const l of [NETWORK, "k8sc31n", NETWORK_B, NODE_B_LINK]) {
    if (links.includes(`: ${l}:`)) left.push(`link ${l}`);
  }
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    const d = `/sys/fs/cgroup/${e.name}/${CGROUP_ROOT_B}`;
    if (exists(d)) left.push(`cgroup ${d}`);
  }
  if (c && exists(c.dir) && Deno.env.get("CLUSTER_KEEP") !== "1") left.push(`dir ${c.dir}`);
  if (left.length > 0) {
    console.error(`FAILED: the host is not as before:\n  ${left.join("\n  ")}`);
    failed ??= new Error("host not restored");
  }
  const total = (performance.now() - t0) / 1000;
  console.log(
    `\ncluster: ${done.length} steps passed in ${
      total.toFixed(0)
    } s (pods ${POD_CIDR}, services ${SERVICE_CIDR})`,
  );
  for (const s of done) {
    console.log(
      `  ${s.seconds.toFixed(1).padStart(6)} s  ${s.name}${s.note ? ` — ${s.note}` : ""}`,
    );
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
