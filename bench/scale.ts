/**
 * rkl's CRI against containerd 1.6's at scale: 200 pods of one busybox
 * `sleep` container each, made 10 at a time (RunPodSandbox, CreateContainer,
 * StartContainer per pod, as a kubelet does for a pod), on each runtime in
 * turn, with the peers, images and client of bench/containerd.ts.
 *
 * Run alone with `deno run -A bench/scale.ts` (root), or as `BENCH_ONLY=scale
 * deno task bench`. BENCH_SCALE_PODS sets the steps (default 20,50,100,200).
 *
 * At each step (20, 50, 100, 200 pods), for each runtime:
 *   throughput: pods made per second since the first (the clock stops while
 *   a step is measured);
 *   ListContainers and ListPodSandbox: p50 and p95 of 20 calls;
 *   the daemon's RSS (rkl's daemon, containerd itself; conmons and shims are
 *   per pod and left out) and its growth per pod since before the first pod.
 * At the last step the daemon is stopped (SIGTERM; the pods keep running)
 * and started again: the relist is the time from its start until
 * ListPodSandbox and ListContainers both answered with every pod, through a
 * new client, as a kubelet's first relist after a runtime restart.
 * Then every pod is stopped and removed, 10 at a time.
 */
import {
  benchRegistry,
  type Call,
  clientFor,
  ctrConfig,
  memoryOf,
  type Peer,
  podConfig,
  sh,
  startContainerd,
  startRkl,
  stat,
} from "./containerd.ts";

export interface ScaleStep {
  pods: number;
  /** Pods made per second from the first pod to this step. */
  podsPerSec: number;
  listContainersP50: number;
  listContainersP95: number;
  listPodsP50: number;
  listPodsP95: number;
  daemonRssMb: number;
  /** (RSS now − RSS before the first pod) ÷ pods, in MB. */
  rssPerPodMb: number;
}

export interface ScaleSide {
  baseRssMb: number;
  steps: ScaleStep[];
  /** Daemon start → first ListPodSandbox and ListContainers answered in full, ms. */
  relistMs: number;
  /** Daemon start → its socket answered a Version, ms (part of relistMs). */
  upMs: number;
  /** Pods stopped and removed per second. */
  removePerSec: number;
}

export interface ScaleFigures {
  rkl: ScaleSide;
  containerd: ScaleSide;
  batch: number;
}

const BATCH = 10;

async function listTimes(call: Call, method: string, want: number, n = 20): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await call(method, {});
    xs.push(performance.now() - t0);
    const got = ((res.containers ?? res.items) as unknown[] | undefined)?.length ?? 0;
    if (got !== want) throw new Error(`${method}: ${got} listed, ${want} made`);
  }
  return xs;
}

async function podUp(call: Call, name: string, dir: string): Promise<void> {
  const config = podConfig(name, dir);
  const { pod_sandbox_id } = await call("RunPodSandbox", { config });
  const { container_id } = await call("CreateContainer", {
    pod_sandbox_id,
    config: ctrConfig("app"),
    sandbox_config: config,
  });
  await call("StartContainer", { container_id });
}

async function inBatches<T>(items: T[], fn: (t: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) {
    await Promise.all(items.slice(i, i + BATCH).map(fn));
  }
}

async function side(
  start: () => Promise<Peer>,
  dir: string,
  steps: number[],
  log: (line: string) => void,
): Promise<ScaleSide> {
  let peer = await start();
  let client = clientFor(peer.sock);
  try {
    await client.call("PullImage", { image: { image: "docker.io/library/busybox:bench" } });
    // One pod made and removed first: containerd pulls its pause image, both load their code.
    await podUp(client.call, "warm", dir);
    await removeEvery(client.call);
    await new Promise((r) => setTimeout(r, 1000));
    await listTimes(client.call, "ListContainers", 0, 5);
    const baseRssMb = memoryOf([peer.processes()[0]]).rssMb;
    const out: ScaleStep[] = [];
    let made = 0;
    let busyMs = 0;
    for (const step of steps) {
      const t0 = performance.now();
      const names = Array.from({ length: step - made }, (_, i) => `scale${made + i}`);
      await inBatches(names, (n) => podUp(client.call, n, dir));
      busyMs += performance.now() - t0;
      made = step;
      const lc = stat(await listTimes(client.call, "ListContainers", made));
      const lp = stat(await listTimes(client.call, "ListPodSandbox", made));
      const rss = memoryOf([peer.processes()[0]]).rssMb;
      const s: ScaleStep = {
        pods: made,
        podsPerSec: made / (busyMs / 1000),
        listContainersP50: lc.median,
        listContainersP95: lc.p95,
        listPodsP50: lp.median,
        listPodsP95: lp.p95,
        daemonRssMb: rss,
        rssPerPodMb: (rss - baseRssMb) / made,
      };
      out.push(s);
      log(
        `  ${peer.name} ${made} pods: ${s.podsPerSec.toFixed(1)} pods/s, ListContainers p95 ` +
          `${s.listContainersP95.toFixed(1)} ms, RSS ${rss.toFixed(1)} MB`,
      );
    }
    // A restart: stop the daemon alone, start it again, relist through a new client.
    client.close();
    const t0 = performance.now();
    peer = await peer.restart();
    client = clientFor(peer.sock);
    // containerd answers UNKNOWN ("server is not initialized yet") while its CRI restores.
    for (const end = performance.now() + 60_000;;) {
      try {
        await client.call("Version", {});
        break;
      } catch (e) {
        if (performance.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const upMs = performance.now() - t0;
    const [pods, ctrs] = await Promise.all([
      client.call("ListPodSandbox", {}),
      client.call("ListContainers", {}),
    ]);
    const relistMs = performance.now() - t0;
    const np = (pods.items as unknown[] | undefined)?.length ?? 0;
    const nc = (ctrs.containers as unknown[] | undefined)?.length ?? 0;
    if (np !== made || nc !== made) {
      throw new Error(
        `${peer.name} after a restart: ${np} pods and ${nc} containers, ${made} made`,
      );
    }
    const r0 = performance.now();
    await removeEvery(client.call);
    const removePerSec = made / ((performance.now() - r0) / 1000);
    return { baseRssMb, steps: out, relistMs, upMs, removePerSec };
  } catch (e) {
    // Nothing left behind: containerd's stop kills its shims, not their containers.
    await removeEvery(client.call).catch(() => {});
    throw e;
  } finally {
    client.close();
    await peer.stop().catch((e) => console.error(`${peer.name}: ${e}`));
  }
}

async function removeEvery(call: Call): Promise<void> {
  const { items } = await call("ListPodSandbox", {}) as { items?: { id: string }[] };
  await inBatches(items ?? [], async (p) => {
    await call("StopPodSandbox", { pod_sandbox_id: p.id });
    await call("RemovePodSandbox", { pod_sandbox_id: p.id });
  });
}

export async function scaleRows(
  opts: { steps?: number[]; log?: (line: string) => void } = {},
): Promise<ScaleFigures> {
  const steps = opts.steps ??
    (Deno.env.get("BENCH_SCALE_PODS") ?? "20,50,100,200").split(",").map(Number);
  const log = opts.log ?? ((l: string) => console.error(l));
  const dir = await Deno.makeTempDir({ prefix: "rkl-bench-scale-" });
  const reg = await benchRegistry(dir);
  try {
    // 10.250.35/36: private to this bench (a /24 holds the 200 pods).
    const rkl = await side(
      () => startRkl(`${dir}/rkl`, reg, { subnet: "10.250.35.0/24", network: "rklbscale0" }),
      `${dir}/rkl`,
      steps,
      log,
    );
    const containerd = await side(
      () =>
        startContainerd(`${dir}/containerd`, reg, {
          subnet: "10.250.36.0/24",
          network: "ctrdbscale0",
        }),
      `${dir}/containerd`,
      steps,
      log,
    );
    return { rkl, containerd, batch: BATCH };
  } finally {
    await reg.stop();
    await sh("ip", ["link", "del", "rklbscale0"]).catch(() => {});
    await sh("ip", ["link", "del", "ctrdbscale0"]).catch(() => {});
    for (const net of ["rklbscale0", "ctrdbscale0"]) {
      const n = await dropCniRules(net).catch(() => 0);
      if (n > 0) log(`  ${net}: removed ${n} CNI nat rules its runtime left behind`);
    }
    if (Deno.env.get("BENCH_KEEP") !== "1") {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Removes the bridge plugin's nat rules (a POSTROUTING jump commented with the
 * network's name, and the per-container chain it jumps to) that a runtime
 * left when its pods outlived it; the count says that one did (the bench's
 * containerd side left 200 once). Returns how many jumps it removed.
 */
async function dropCniRules(network: string): Promise<number> {
  const rules = (await sh("iptables-save", ["-t", "nat"])).split("\n")
    .filter((l) => l.startsWith("-A POSTROUTING ") && l.includes(`name: \\"${network}\\"`));
  for (const rule of rules) {
    const chain = /-j (CNI-[0-9a-f]+)$/.exec(rule)?.[1];
    // The rule as iptables-save prints it is an iptables argv once unquoted.
    await sh("sh", ["-c", `iptables -w 5 -t nat -D ${rule.slice(3)}`]);
    if (chain) {
      await sh("iptables", ["-w", "5", "-t", "nat", "-F", chain]);
      await sh("iptables", ["-w", "5", "-t", "nat", "-X", chain]);
    }
  }
  return rules.length;
}

/** The figures as a table per step, then the relists and the goals. */
export function printScale(f: ScaleFigures): void {
  const header = [
    "pods",
    "rkl pods/s",
    "ctrd pods/s",
    "rkl ListCtr p50/p95",
    "ctrd ListCtr p50/p95",
    "rkl ListPod p95",
    "ctrd ListPod p95",
    "rkl RSS (/pod)",
    "ctrd RSS (/pod)",
  ];
  const ms = (x: number) => x.toFixed(1);
  const table = f.rkl.steps.map((r, i) => {
    const c = f.containerd.steps[i];
    return [
      String(r.pods),
      r.podsPerSec.toFixed(1),
      c.podsPerSec.toFixed(1),
      `${ms(r.listContainersP50)}/${ms(r.listContainersP95)} ms`,
      `${ms(c.listContainersP50)}/${ms(c.listContainersP95)} ms`,
      `${ms(r.listPodsP95)} ms`,
      `${ms(c.listPodsP95)} ms`,
      `${r.daemonRssMb.toFixed(1)} MB (${r.rssPerPodMb.toFixed(2)})`,
      `${c.daemonRssMb.toFixed(1)} MB (${c.rssPerPodMb.toFixed(2)})`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  for (const line of [header, ...table]) {
    console.log(line.map((c, i) => c.padEnd(widths[i])).join("  "));
  }
  const last = f.rkl.steps.at(-1)!;
  const lastC = f.containerd.steps.at(-1)!;
  const met = (ok: boolean) => ok ? "met" : "NOT met";
  console.log(
    `\n${last.pods} pods, ${f.batch} at a time: rkl ${last.podsPerSec.toFixed(1)} pods/s vs ` +
      `containerd ${lastC.podsPerSec.toFixed(1)} (goal ≥: ${
        met(last.podsPerSec >= lastC.podsPerSec)
      }); ListContainers p95 ${ms(last.listContainersP95)} ms (goal ≤ 20 ms: ${
        met(last.listContainersP95 <= 20)
      }); daemon RSS per pod ${last.rssPerPodMb.toFixed(2)} MB (goal ≤ 0.3: ${
        met(last.rssPerPodMb <= 0.3)
      }), containerd ${lastC.rssPerPodMb.toFixed(2)}`,
  );
  console.log(
    `relist of ${last.pods} pods after a daemon restart: rkl ${f.rkl.relistMs.toFixed(0)} ms ` +
      `(up in ${f.rkl.upMs.toFixed(0)}; goal ≤ 1 s: ${met(f.rkl.relistMs <= 1000)}), ` +
      `containerd ${f.containerd.relistMs.toFixed(0)} ms (up in ${
        f.containerd.upMs.toFixed(0)
      }); removal: rkl ${f.rkl.removePerSec.toFixed(1)} pods/s, containerd ${
        f.containerd.removePerSec.toFixed(1)
      }`,
  );
}

if (import.meta.main) {
  if (Deno.uid() !== 0) {
    console.error("bench: run me as root");
    Deno.exit(1);
  }
  const f = await scaleRows();
  printScale(f);
  const repo = new URL("..", import.meta.url).pathname;
  await Deno.mkdir(`${repo}/bench/results`, { recursive: true });
  await Deno.writeTextFile(
    `${repo}/bench/results/scale.json`,
    JSON.stringify({ date: new Date().toISOString(), ...f }, null, 2) + "\n",
  );
  Deno.exit(0);
}
