/**
 * rkl's CRI side by side with containerd 1.6's built-in CRI (Debian's
 * package), call by call and in memory, in one run. Both runtimes get their
 * own state dirs, socket, bridge and subnet, the same runc, the same CNI
 * plugins and the same images (served by a registry on 127.0.0.1), and are
 * driven by the same grpc-js client, so the figures differ only by runtime.
 *
 * Run alone with `deno run -A bench/containerd.ts` (root), or as the
 * `containerd` rows of `deno task bench` (BENCH_ONLY=containerd for just these).
 *
 * Measured, alternating the two runtimes each iteration:
 *   every call of a pod's life: RunPodSandbox, CreateContainer, StartContainer,
 *   ContainerStatus, ExecSync, StopContainer, RemoveContainer, StopPodSandbox,
 *   RemovePodSandbox, and their sum (the pod's whole life);
 *   with N pods of one container running: ListContainers and ListPodSandbox
 *   latency (at least 200 calls of each, alternating), and the node's memory:
 *   PSS and RSS of the runtime's own processes (rkl: the daemon and every
 *   conmon; containerd: containerd and every containerd-shim-runc-v2), the
 *   containers' processes left out on both sides.
 */
import { bridgeConflist } from "../src/net/network.ts";
import { DAEMON_DENO_FLAGS, DAEMON_ENV } from "../src/daemon/install.ts";
import { serviceDefinition } from "../src/cri/grpc.ts";
import { dirTar, pushImage, type Registry, startRegistry } from "../tests/_helpers/oci.ts";
import { containerdConfig } from "../tests/_helpers/containerd.ts";
import * as grpc from "@grpc/grpc-js";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export interface PeerStat {
  median: number;
  p95: number;
  runs: number;
}

export interface PeerRow {
  name: string;
  rkl: PeerStat;
  containerd: PeerStat;
  /** rkl ÷ containerd must be at most this. */
  goal: number;
}

export interface PeerMemory {
  pods: number;
  /**
   * The daemon's RSS idle, in MB: after its start, the image pull and one
   * call of each list, settled (no pods yet).
   */
  idle?: { rkl: number; containerd: number };
  rkl: { pssMb: number; rssMb: number; processes: number; daemonRssMb: number };
  containerd: { pssMb: number; rssMb: number; processes: number; daemonRssMb: number };
}

export interface PeerFigures {
  rows: PeerRow[];
  memory: PeerMemory;
}

export function stat(xs: number[]): PeerStat {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { median: at(0.5), p95: at(0.95), runs: s.length };
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout);
}

export async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = performance.now() + ms;
  while (!(await fn())) {
    if (performance.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isSocket(path: string): boolean {
  try {
    return Deno.statSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/** The pids whose command line holds `needle` (and whose name is `comm`, when given). */
export function pidsMatching(needle: string, comm?: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (comm && Deno.readTextFileSync(`/proc/${e.name}/comm`).trim() !== comm) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmdline.includes(needle)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** PSS and RSS of a set of processes, in MB, from smaps_rollup. */
export function memoryOf(pids: number[]): { pssMb: number; rssMb: number } {
  let pss = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const t = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
      rss += Number(/^Rss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return { pssMb: pss / 1024, rssMb: rss / 1024 };
}

export interface Peer {
  name: "rkl" | "containerd";
  sock: string;
  /** The daemon stopped alone (its pods keep running) and started again on the same state. */
  restart(): Promise<Peer>;
  /** The runtime's own processes: the daemon first, then one per container/pod. */
  processes(): number[];
  stop(): Promise<void>;
}

/** rkl's daemon serving the CRI, on its own root, run root, bridge and subnet. */
export async function startRkl(
  dir: string,
  reg: Registry,
  opts: { subnet?: string; network?: string } = {},
): Promise<Peer> {
  const root = `${dir}/root`;
  const runRoot = `${dir}/run`;
  const network = opts.network ?? "rklbcri0";
  Deno.mkdirSync(`${root}/net.d`, { recursive: true });
  Deno.mkdirSync(`${dir}/manifests`, { recursive: true });
  Deno.writeTextFileSync(
    `${root}/net.d/${network}.conflist`,
    JSON.stringify(
      bridgeConflist(network, {
        subnet: opts.subnet ?? "10.250.9.0/24",
        ipamDataDir: `${root}/cni/networks`,
      }),
    ),
  );
  Deno.writeTextFileSync(
    `${dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
  );
  const sock = `${dir}/rkl.sock`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...DAEMON_DENO_FLAGS,
      // More deno flags for the daemon, to look inside it (`--cpu-prof --cpu-prof-dir=DIR`).
      ...(Deno.env.get("BENCH_RKL_DENO_FLAGS") ?? "").split(" ").filter(Boolean),
      "-A",
      "--quiet",
      `${REPO}/cli/main.ts`,
      "daemon",
      "--manifests",
      `${dir}/manifests`,
      "--network",
      network,
      "--cri-socket",
      sock,
    ],
    env: {
      RKL_ROOT: root,
      RKL_RUN_ROOT: runRoot,
      RKL_CGROUP_PARENT: "rklbcri",
      RKL_REGISTRIES_CONFIG: `${dir}/registries.yaml`,
      ...DAEMON_ENV,
    },
    stdin: "null",
    stdout: "null",
    stderr: Deno.env.get("BENCH_DAEMON_LOG") === "1" ? "inherit" : "null",
  }).spawn();
  await until("rkl's CRI socket", () => isSocket(sock));
  return {
    restart: async () => {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(sock).catch(() => {});
      return await startRkl(dir, reg, opts);
    },
    name: "rkl",
    sock,
    processes: () => [child.pid, ...pidsMatching(`${runRoot}/`, "conmon")],
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** containerd 1.6 with its CRI plugin, runc and the CNI bridge plugin, all private to `dir`. */
export async function startContainerd(
  dir: string,
  reg: Registry,
  opts: { subnet?: string; network?: string } = {},
): Promise<Peer> {
  const sock = `${dir}/containerd.sock`;
  const cniBin = ["/usr/lib/cni", "/opt/cni/bin"].find((d) => {
    try {
      return Deno.statSync(`${d}/bridge`).isFile;
    } catch {
      return false;
    }
  });
  if (!cniBin) throw new Error("bench: no CNI bridge plugin in /usr/lib/cni or /opt/cni/bin");
  Deno.mkdirSync(`${dir}/net.d`, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/net.d/10-bench.conflist`,
    JSON.stringify(
      bridgeConflist(opts.network ?? "ctrdbcri0", {
        subnet: opts.subnet ?? "10.250.10.0/24",
        ipamDataDir: `${dir}/cni-networks`,
      }),
    ),
  );
  Deno.writeTextFileSync(
    `${dir}/config.toml`,
    containerdConfig({
      root: `${dir}/root`,
      state: `${dir}/state`,
      sock,
      runcRoot: `${dir}/runc`,
      sandboxImage: "docker.io/library/pause:bench",
      cniBin,
      cniConfDir: `${dir}/net.d`,
      mirrors: { "docker.io": reg.url },
    }),
  );
  const log = Deno.openSync(`${dir}/containerd.log`, { write: true, create: true });
  const child = new Deno.Command("containerd", {
    args: ["--config", `${dir}/config.toml`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  child.stderr.pipeTo(log.writable).catch(() => {});
  await until("containerd's socket", () => isSocket(sock));
  return {
    restart: async () => {
      // The shims outlive containerd by design, with their containers.
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(sock).catch(() => {});
      return await startContainerd(dir, reg, opts);
    },
    name: "containerd",
    sock,
    processes: () => [child.pid, ...pidsMatching(sock, "containerd-shim")],
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      // The shims outlive containerd by design; every pod was removed before, so none should be left.
      for (const pid of pidsMatching(sock, "containerd-shim")) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
        .map((l) => l.split(" ")[4]).filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
      for (const m of mounts.reverse()) await sh("umount", ["-l", m]).catch(() => {});
    },
  };
}

export type Call = (method: string, req: unknown) => Promise<Record<string, unknown>>;

export function clientFor(sock: string): { call: Call; close(): void } {
  const Rt = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
  const Img = grpc.makeGenericClientConstructor(serviceDefinition("ImageService"), "img");
  const rt = new Rt(`unix://${sock}`, grpc.credentials.createInsecure());
  const img = new Img(`unix://${sock}`, grpc.credentials.createInsecure());
  const call: Call = (m, req) =>
    new Promise((resolve, reject) => {
      const client = /Image/.test(m) && m !== "ImageFsInfo" ? img : rt;
      // deno-lint-ignore no-explicit-any
      (client as any)[m](req, (err: Error | null, res: Record<string, unknown>) =>
        err ? reject(new Error(`${m}: ${err.message}`)) : resolve(res));
    });
  return {
    call,
    close: () => {
      rt.close();
      img.close();
    },
  };
}

export const podConfig = (name: string, dir: string) => ({
  metadata: { name, namespace: "bench", uid: `uid-${name}`, attempt: 0 },
  log_directory: `${dir}/logs/${name}`,
  linux: {},
});

export const ctrConfig = (name: string) => ({
  metadata: { name },
  image: { image: "docker.io/library/busybox:bench" },
  command: ["sleep", "3600"],
  log_path: `${name}.log`,
  linux: {},
});

const LIFE = [
  "RunPodSandbox",
  "CreateContainer",
  "StartContainer",
  "ContainerStatus",
  "ExecSync",
  "StopContainer",
  "RemoveContainer",
  "StopPodSandbox",
  "RemovePodSandbox",
] as const;

/** One pod's whole life, each call timed. */
export async function podLife(
  call: Call,
  name: string,
  dir: string,
): Promise<Record<(typeof LIFE)[number], number>> {
  const t: Partial<Record<(typeof LIFE)[number], number>> = {};
  const timed = async <T>(k: (typeof LIFE)[number], fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    t[k] = performance.now() - t0;
    return r;
  };
  const config = podConfig(name, dir);
  const { pod_sandbox_id } = await timed("RunPodSandbox", () => call("RunPodSandbox", { config }));
  const { container_id } = await timed(
    "CreateContainer",
    () =>
      call("CreateContainer", { pod_sandbox_id, config: ctrConfig("app"), sandbox_config: config }),
  );
  await timed("StartContainer", () => call("StartContainer", { container_id }));
  await timed("ContainerStatus", () => call("ContainerStatus", { container_id }));
  const ex = await timed(
    "ExecSync",
    () => call("ExecSync", { container_id, cmd: ["true"], timeout: 10 }),
  ) as { exit_code?: number };
  if ((ex.exit_code ?? 0) !== 0) throw new Error(`ExecSync true: exit ${ex.exit_code}`);
  await timed("StopContainer", () => call("StopContainer", { container_id, timeout: 0 }));
  await timed("RemoveContainer", () => call("RemoveContainer", { container_id }));
  await timed("StopPodSandbox", () => call("StopPodSandbox", { pod_sandbox_id }));
  await timed("RemovePodSandbox", () => call("RemovePodSandbox", { pod_sandbox_id }));
  return t as Record<(typeof LIFE)[number], number>;
}

export async function removeAll(call: Call): Promise<void> {
  const { items } = await call("ListPodSandbox", {}) as { items: { id: string }[] };
  for (const p of items ?? []) {
    await call("StopPodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
    await call("RemovePodSandbox", { pod_sandbox_id: p.id });
  }
}

/** A registry on 127.0.0.1 under `dir` serving busybox:bench and pause:bench from the test bundles. */
export async function benchRegistry(dir: string): Promise<Registry> {
  const reg = await startRegistry(`${dir}/registry`);
  try {
    await pushImage(reg.url, "library/busybox", "bench", {
      layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
      config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
    });
    await pushImage(reg.url, "library/pause", "bench", {
      layers: [await dirTar(`${REPO}/bundles/pause/rootfs`)],
      config: { Entrypoint: ["/bin/catatonit", "-P"], Cmd: [] },
    });
  } catch (e) {
    await reg.stop();
    throw e;
  }
  return reg;
}

export interface PeerOptions {
  runs?: number;
  /** Pods running while lists and memory are measured. */
  pods?: number;
}

export async function containerdRows(opts: PeerOptions = {}): Promise<PeerFigures> {
  const runs = opts.runs ?? Number(Deno.env.get("BENCH_RUNS") ?? "10");
  const pods = opts.pods ?? 20;
  const dir = await Deno.makeTempDir({ prefix: "rkl-bench-ctrd-" });
  const reg = await benchRegistry(dir);
  const peers: Peer[] = [];
  try {
    peers.push(await startRkl(`${dir}/rkl`, reg));
    peers.push(await startContainerd(`${dir}/containerd`, reg));
    const clients = peers.map((p) => clientFor(p.sock));
    for (const c of clients) {
      await c.call("PullImage", { image: { image: "docker.io/library/busybox:bench" } });
      // containerd pulls its sandbox image on the first RunPodSandbox; the warm-up takes it.
    }
    // The idle daemons: settled after the pull and a list each (rkl's relist
    // timer is 5 s; its collector runs when quiet).
    for (let i = 0; i < 3; i++) {
      for (const c of clients) {
        await c.call("ListPodSandbox", {});
        await c.call("ListContainers", {});
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
    const idle = peers.map((p) => memoryOf([p.processes()[0]]).rssMb);
    // Pod life, alternating, one warm-up each.
    const samples = peers.map(() => ({} as Record<string, number[]>));
    for (let i = 0; i <= runs; i++) {
      for (const [k, c] of clients.entries()) {
        const t = await podLife(c.call, `life${i}`, `${dir}/${peers[k].name}`);
        if (i === 0) continue;
        const total = Object.values(t).reduce((a, b) => a + b, 0);
        for (const [name, ms] of [...Object.entries(t), ["pod life (sum)", total] as const]) {
          (samples[k][name] ??= []).push(ms);
        }
      }
    }
    const rows: PeerRow[] = [...LIFE, "pod life (sum)"].map((name) => ({
      name: `CRI ${name}`,
      rkl: stat(samples[0][name]),
      containerd: stat(samples[1][name]),
      goal: name === "pod life (sum)" ? 0.7 : 1,
    }));
    // N pods running: lists and memory.
    for (const [k, c] of clients.entries()) {
      for (let p = 0; p < pods; p++) {
        const config = podConfig(`many${p}`, `${dir}/${peers[k].name}`);
        const { pod_sandbox_id } = await c.call("RunPodSandbox", { config });
        const { container_id } = await c.call("CreateContainer", {
          pod_sandbox_id,
          config: ctrConfig("app"),
          sandbox_config: config,
        });
        await c.call("StartContainer", { container_id });
      }
    }
    // The calls a kubelet makes between relists take about 1 ms, where the two runtimes differ by
    // tenths of one: 200 alternating calls at least (35 at BENCH_RUNS=10 moved the ratio by ±0.2
    // run to run), after 5 warm-up ones; `call` makes one and checks its answer.
    const steady = async (
      name: string,
      call: (k: number, c: (typeof clients)[number], i: number) => Promise<void>,
    ) => {
      const xs: number[][] = [[], []];
      for (let i = 0; i < 5 + Math.max(runs * 3, 200); i++) {
        for (const [k, c] of clients.entries()) {
          const t0 = performance.now();
          await call(k, c, i);
          if (i >= 5) xs[k].push(performance.now() - t0);
        }
      }
      rows.push({
        name: `CRI ${name} (${pods} running)`,
        rkl: stat(xs[0]),
        containerd: stat(xs[1]),
        goal: 1,
      });
    };
    for (const name of ["ListContainers", "ListPodSandbox"]) {
      await steady(name, async (k, c) => {
        const res = await c.call(name, {});
        const n = ((res.containers ?? res.items) as unknown[]).length;
        if (n !== pods) throw new Error(`${peers[k].name} ${name}: ${n} listed, ${pods} made`);
      });
    }
    // ContainerStatus of the running containers, in turn. The pod life's row has one call a
    // life, the first after StartContainer (first-call costs on both sides, 10 samples).
    const ids = await Promise.all(clients.map(async (c) => {
      const res = await c.call("ListContainers", {}) as { containers?: { id: string }[] };
      return (res.containers ?? []).map((x) => x.id);
    }));
    await steady("ContainerStatus", async (k, c, i) => {
      const container_id = ids[k][i % ids[k].length];
      const res = await c.call("ContainerStatus", { container_id }) as {
        status?: { state?: string | number };
      };
      const state = res.status?.state;
      if (state !== "CONTAINER_RUNNING" && state !== 1) {
        throw new Error(`${peers[k].name} ContainerStatus ${container_id}: state ${state}`);
      }
    });
    // Let both settle as a node does between kubelet relists, then read memory.
    for (let i = 0; i < 10; i++) {
      for (const c of clients) {
        await c.call("ListPodSandbox", {});
        await c.call("ListContainers", {});
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const mem = peers.map((p) => {
      const pids = p.processes();
      const all = memoryOf(pids);
      return { ...all, processes: pids.length, daemonRssMb: memoryOf([pids[0]]).rssMb };
    });
    for (const c of clients) {
      await removeAll(c.call);
      c.close();
    }
    return {
      rows,
      memory: {
        pods,
        idle: { rkl: idle[0], containerd: idle[1] },
        rkl: mem[0],
        containerd: mem[1],
      },
    };
  } catch (e) {
    // What containerd said (its log goes with the temporary dir).
    try {
      const log = Deno.readTextFileSync(`${dir}/containerd/containerd.log`).split("\n");
      console.error(log.filter((l) => /level=(error|warn)/.test(l)).slice(-8).join("\n"));
    } catch { /* not started */ }
    throw e;
  } finally {
    for (const p of peers.reverse()) await p.stop().catch((e) => console.error(`${p.name}: ${e}`));
    await reg.stop();
    await sh("ip", ["link", "del", "rklbcri0"]).catch(() => {});
    await sh("ip", ["link", "del", "ctrdbcri0"]).catch(() => {});
    // BENCH_KEEP=1 keeps the state dirs and logs to look at.
    if (Deno.env.get("BENCH_KEEP") !== "1") {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/** The rows as a table, with the memory line. */
export function printPeerFigures(f: PeerFigures): void {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const header = ["row", "rkl p50", "rkl p95", "containerd p50", "ratio", "goal"];
  const table = f.rows.map((r) => {
    const ratio = r.rkl.median / r.containerd.median;
    return [
      r.name,
      ms(r.rkl.median),
      ms(r.rkl.p95),
      ms(r.containerd.median),
      `${ratio.toFixed(2)}×`,
      `≤ ${r.goal}× ${ratio <= r.goal ? "met" : "NOT met"}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  for (const line of [header, ...table]) {
    console.log(line.map((c, i) => c.padEnd(widths[i])).join("  "));
  }
  const m = f.memory;
  const ratio = m.rkl.pssMb / m.containerd.pssMb;
  console.log(
    `\nNode memory with ${m.pods} CRI pods: rkl ${m.rkl.pssMb.toFixed(1)} MB PSS ` +
      `(${m.rkl.rssMb.toFixed(1)} MB RSS, ${m.rkl.processes} processes) vs containerd ` +
      `${m.containerd.pssMb.toFixed(1)} MB PSS (${m.containerd.rssMb.toFixed(1)} MB RSS, ` +
      `${m.containerd.processes} processes): ${ratio.toFixed(2)}× (goal ≤ 0.8×: ${
        ratio <= 0.8 ? "met" : "NOT met"
      }); daemon RSS rkl ${m.rkl.daemonRssMb.toFixed(1)} MB, containerd ${
        m.containerd.daemonRssMb.toFixed(1)
      } MB`,
  );
  if (m.idle) {
    console.log(
      `Idle daemon RSS (after a pull, no pods): rkl ${m.idle.rkl.toFixed(1)} MB (goal ≤ 70: ${
        m.idle.rkl <= 70 ? "met" : "NOT met"
      }), containerd ${m.idle.containerd.toFixed(1)} MB`,
    );
  }
}

if (import.meta.main) {
  if (Deno.uid() !== 0) {
    console.error("bench: run me as root");
    Deno.exit(1);
  }
  const f = await containerdRows();
  printPeerFigures(f);
  await Deno.mkdir(`${REPO}/bench/results`, { recursive: true });
  await Deno.writeTextFile(
    `${REPO}/bench/results/containerd.json`,
    JSON.stringify({ date: new Date().toISOString(), ...f }, null, 2) + "\n",
  );
  Deno.exit(0);
}
