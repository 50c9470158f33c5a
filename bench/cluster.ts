/**
 * Pod startup through the API server (issue 31, item 5): on the one-node
 * cluster of tests/cluster/cluster.ts, 30 pods created by one `kubectl
 * create` of a List, each timed from just before that call to the moment the
 * API server shows it Running (a `kubectl get pods --watch`), p50 and p95.
 * The kubelet, control plane, CNI plugins, images and registry are the same
 * for both runtimes: rkl's CRI, and containerd 1.6's (Debian's package, its
 * built-in CRI, runc). Rounds alternate the runtimes, each on a fresh
 * cluster; the image is pulled by a warm-up pod first, so no pull is timed.
 *
 * With the pods Running, the node's memory: PSS of the runtime daemon and its
 * per-pod processes (conmons; containerd's shims, and its sandboxes' pause
 * processes shown apart). The kubelet's own metrics give its CRI calls during
 * the creates (count and mean latency per operation, the same client for both
 * runtimes); `--trace` runs the kubelet at -v=4 and prints, per message of its
 * log, the median seconds from the create to that message's first line per pod.
 *
 *   flock /tmp/rkl-bench.lock deno run -A bench/cluster.ts [--rounds N] [--pods N] [--only rkl|containerd] [--trace]
 *
 * Root; not run by CI. Takes the e2e lock itself (the cluster uses the node
 * e2e harness's host-wide parts: kubepods cgroups, /var/lib/kubelet).
 */
import { Cluster, shimPids, sleep, until } from "../tests/cluster/cluster.ts";
import { NODE_IMAGES } from "../tests/_helpers/node_images.ts";

function arg(name: string, dflt: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : dflt;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** PSS of one process in MB (smaps_rollup), 0 when it is gone. */
function pss(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The processes whose comm is `comm` (and whose command line names `mark`, when given). */
function byComm(comm: string, mark?: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/comm`).trim() !== comm) continue;
      if (mark && !Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(mark)) continue;
      out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/**
 * The node's runtime memory (PSS, MB): the daemon, and the per-pod processes
 * it keeps (rkl: a conmon per container; containerd: a shim per pod, and the
 * pause process of each sandbox, which rkl does not run: it pins namespaces
 * as files). The containers' own processes and the kubelet are the same for both and left out.
 */
interface Memory {
  daemon: number;
  perPod: number;
  perPodProcs: number;
  pause: number;
  pauseProcs: number;
}

function nodeMemory(c: Cluster): Memory {
  const daemon = pss(c.proc(c.runtime).pid);
  const per = c.runtime === "rkl" ? byComm("conmon", c.dir) : shimPids(c.sock);
  const pause = c.runtime === "rkl" ? [] : byComm("pause");
  const sum = (ps: number[]) => ps.reduce((a, p) => a + pss(p), 0);
  return {
    daemon,
    perPod: sum(per),
    perPodProcs: per.length,
    pause: sum(pause),
    pauseProcs: pause.length,
  };
}

/** The kubelet's `kubelet_runtime_operations_duration_seconds` per operation, through the API server. */
async function kubeletCalls(c: Cluster): Promise<Map<string, { count: number; sum: number }>> {
  const text = await c.kubectl(["get", "--raw", "/api/v1/nodes/rkl-node/proxy/metrics"]);
  const out = new Map<string, { count: number; sum: number }>();
  const re =
    /^kubelet_runtime_operations_duration_seconds_(sum|count)\{operation_type="([^"]+)"\} (\S+)$/gm;
  for (const m of text.matchAll(re)) {
    const o = out.get(m[2]) ?? { count: 0, sum: 0 };
    o[m[1] as "sum" | "count"] = Number(m[3]);
    out.set(m[2], o);
  }
  return out;
}

/**
 * Per message of the kubelet's log (its first quoted string), the seconds
 * from `wall0` (the create) to its first line naming each bench pod.
 */
function kubeletTimeline(log: string, wall0: number): Map<string, number[]> {
  const year = new Date(wall0).getFullYear();
  const first = new Map<string, Map<string, number>>();
  const line =
    /^[IWE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+ [^\]]+\] "((?:[^"\\]|\\.)*)"(.*)$/;
  for (const l of Deno.readTextFileSync(log).split("\n")) {
    const m = line.exec(l);
    if (!m) continue;
    const t = new Date(year, +m[1] - 1, +m[2], +m[3], +m[4], +m[5], +m[6] / 1000).getTime();
    if (t < wall0 - 1000) continue;
    const names = [...m[8].matchAll(/default\/(p\d+)\b/g)].map((x) => x[1]);
    if (names.length === 0) continue;
    const msg = m[7].slice(0, 60);
    const per = first.get(msg) ?? new Map<string, number>();
    for (const p of names) if (!per.has(p)) per.set(p, (t - wall0) / 1000);
    first.set(msg, per);
  }
  return new Map([...first].map(([k, v]) => [k, [...v.values()]]));
}

/** One round's figures: seconds from create to Running per pod, and the node's memory then. */
interface Round {
  startup: number[];
  memory: Memory;
  /** The kubelet's CRI calls during the round (its own metrics, so the same for both runtimes). */
  calls: Map<string, { count: number; sum: number }>;
  /** With --trace: per kubelet log message, the seconds from create to its first line per pod. */
  timeline: Map<string, number[]>;
}

/** Seconds from create to Running for `n` pods created at once, on a fresh cluster. */
async function round(runtime: "rkl" | "containerd", n: number, trace: boolean): Promise<Round> {
  const c = await Cluster.start({ runtime, say: () => {}, kubeletV: trace ? 4 : 2 });
  try {
    await until("node Ready", async () =>
      (await c.kubectl([
        "get",
        "node",
        "rkl-node",
        "-o",
        `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
      ], { quiet: true })).trim() === "True", 120_000);
    await until(
      "the default ServiceAccount",
      async () => (await c.kubectl(["get", "sa/default", "-o", "name"], { quiet: true })) !== "",
      60_000,
    );
    const pod = (name: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: { bench: "startup" } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "main", image: NODE_IMAGES.agnhost, args: ["pause"] }],
      },
    });
    // Warm-up: the image pulled, the pause image too (containerd's sandbox image).
    await c.kubectl(["create", "-f", "-"], { stdin: JSON.stringify(pod("warm")) });
    await until(
      "pod warm Running",
      async () =>
        (await c.kubectl(["get", "pod", "warm", "-o", "jsonpath={.status.phase}"])).trim() ===
          "Running",
      120_000,
    );
    await c.kubectl(["delete", "pod", "warm", "--wait=true"]);

    const running = new Map<string, number>();
    const watch = c.kubectlSpawn([
      "get",
      "pods",
      "-l",
      "bench=startup",
      "--watch",
      "-o",
      `jsonpath={.metadata.name} {.status.phase}{"\\n"}`,
    ]);
    const reading = (async () => {
      let buf = "";
      for await (const chunk of watch.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        const lines = buf.split("\n");
        buf = lines.pop()!;
        for (const l of lines) {
          const [name, phase] = l.trim().split(" ");
          if (phase === "Running" && !running.has(name)) running.set(name, performance.now());
        }
      }
    })();
    await sleep(1000); // the watch is established
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: Array.from({ length: n }, (_, i) => pod(`p${i}`)),
    };
    const before = await kubeletCalls(c);
    const t0 = performance.now();
    const wall0 = Date.now();
    await c.kubectl(["create", "-f", "-"], { stdin: JSON.stringify(list) });
    await until(`${n} pods Running`, () => running.size >= n, 300_000);
    const after = await kubeletCalls(c);
    const calls = new Map<string, { count: number; sum: number }>();
    for (const [op, a] of after) {
      const b = before.get(op) ?? { count: 0, sum: 0 };
      if (a.count > b.count) calls.set(op, { count: a.count - b.count, sum: a.sum - b.sum });
    }
    // The node with n pods running, settled (the kubelet's first status syncs done).
    await sleep(5000);
    const memory = nodeMemory(c);
    try {
      watch.kill("SIGTERM");
    } catch { /* gone */ }
    await watch.status;
    await reading.catch(() => {});
    await watch.stderr.cancel().catch(() => {});
    await c.kubectl(["delete", "pods", "-l", "bench=startup", "--wait=true", "--timeout=120s"]);
    const timeline = trace ? kubeletTimeline(c.proc("kubelet").log, wall0) : new Map();
    return {
      startup: [...running.values()].map((t) => (t - t0) / 1000),
      memory,
      calls,
      timeline,
    };
  } finally {
    await c.stop();
  }
}

async function main(): Promise<number> {
  if (Deno.env.get("RKL_CLUSTER_LOCKED") !== "1") {
    const r = await new Deno.Command("flock", {
      args: [
        "/tmp/rkl-e2e.lock",
        Deno.execPath(),
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        ...Deno.args,
      ],
      env: { RKL_CLUSTER_LOCKED: "1" },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    return r.code;
  }
  if (Deno.uid() !== 0) throw new Error("bench/cluster.ts: run me as root");
  const rounds = Number(arg("--rounds", "2"));
  const n = Number(arg("--pods", "30"));
  const only = arg("--only", "");
  const trace = Deno.args.includes("--trace");
  const runtimes = (["rkl", "containerd"] as const).filter((r) => !only || r === only);
  const all = new Map<string, Round[]>(runtimes.map((r) => [r, []]));
  const failed = new Map<string, string>();
  for (let i = 0; i < rounds; i++) {
    // Alternate which runtime goes first in each round.
    const order = i % 2 === 0 ? runtimes : [...runtimes].reverse();
    for (const rt of order) {
      let r: Round;
      try {
        r = await round(rt, n, trace);
      } catch (e) {
        console.log(`round ${i + 1} ${rt.padEnd(10)} FAILED: ${(e as Error).message}`);
        failed.set(rt, (e as Error).message);
        continue;
      }
      all.get(rt)!.push(r);
      const xs = r.startup;
      const m = r.memory;
      console.log(
        `round ${i + 1} ${rt.padEnd(10)} create → Running of ${n} pods: p50 ${
          quantile(xs, 0.5).toFixed(2)
        } s, p95 ${quantile(xs, 0.95).toFixed(2)} s, last ${
          Math.max(...xs).toFixed(2)
        } s; PSS daemon ${m.daemon.toFixed(1)} MB + ${m.perPodProcs} ${
          rt === "rkl" ? "conmons" : "shims"
        } ${m.perPod.toFixed(1)} MB${
          m.pauseProcs ? ` (+ ${m.pauseProcs} pause ${m.pause.toFixed(1)} MB)` : ""
        }`,
      );
    }
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  console.log(`\npod startup through the API server, ${n} pods at once, ${rounds} rounds:`);
  for (const [rt, rs] of all) {
    const xs = rs.flatMap((r) => r.startup);
    if (xs.length === 0) continue;
    console.log(
      `  ${rt.padEnd(10)} p50 ${quantile(xs, 0.5).toFixed(2)} s  p95 ${
        quantile(xs, 0.95).toFixed(2)
      } s  (${xs.length} pods)`,
    );
  }
  for (const [rt, why] of failed) console.log(`  ${rt.padEnd(10)} failed: ${why}`);
  const both = all.size === 2 && failed.size === 0;
  if (both) {
    const [r, c] = [all.get("rkl")!, all.get("containerd")!].map((rs) =>
      rs.flatMap((x) => x.startup)
    );
    console.log(
      `  rkl ÷ containerd: p50 ${(quantile(r, 0.5) / quantile(c, 0.5)).toFixed(2)}, p95 ${
        (quantile(r, 0.95) / quantile(c, 0.95)).toFixed(2)
      }`,
    );
  }
  console.log(`\nnode memory with ${n} pods (PSS, MB, median of rounds):`);
  const total = new Map<string, number>();
  for (const [rt, rs] of all) {
    if (rs.length === 0) continue;
    const d = med(rs.map((r) => r.memory.daemon));
    const p = med(rs.map((r) => r.memory.perPod));
    const pa = med(rs.map((r) => r.memory.pause));
    total.set(rt, d + p);
    console.log(
      `  ${rt.padEnd(10)} daemon ${d.toFixed(1)} + per-pod ${p.toFixed(1)} (${
        rs[0].memory.perPodProcs
      } ${rt === "rkl" ? "conmons" : "shims"}) = ${(d + p).toFixed(1)}${
        pa ? `; + ${rs[0].memory.pauseProcs} pause processes ${pa.toFixed(1)}` : ""
      }`,
    );
  }
  if (both) {
    const pause = med(all.get("containerd")!.map((r) => r.memory.pause));
    console.log(
      `  rkl ÷ containerd: ${(total.get("rkl")! / total.get("containerd")!).toFixed(2)} (${
        (total.get("rkl")! / (total.get("containerd")! + pause)).toFixed(2)
      } counting containerd's pause processes)`,
    );
  }
  console.log(`\nthe kubelet's CRI calls during the ${n} creates (count, mean ms; first round):`);
  const ops = new Set([...all.values()].flatMap((rs) => rs[0] ? [...rs[0].calls.keys()] : []));
  for (const op of [...ops].sort()) {
    const cols = [...all].map(([rt, rs]) => {
      const x = rs[0]?.calls.get(op);
      return `${rt} ${x ? `${x.count} × ${(x.sum / x.count * 1000).toFixed(1)}` : "-"}`;
    });
    console.log(`  ${op.padEnd(26)} ${cols.join("   ")}`);
  }
  if (trace) {
    console.log(`\nthe kubelet's log per pod: seconds from create to a message's first line, p50:`);
    const msgs = new Map<string, Map<string, number>>();
    for (const [rt, rs] of all) {
      if (!rs[0]) continue;
      for (const [msg, xs] of rs[0].timeline) {
        if (xs.length < n / 2) continue;
        const m = msgs.get(msg) ?? new Map<string, number>();
        m.set(rt, med(xs));
        msgs.set(msg, m);
      }
    }
    const order = [...msgs].sort((a, b) => Math.min(...a[1].values()) - Math.min(...b[1].values()));
    for (const [msg, m] of order) {
      const cols = runtimes.map((rt) => `${rt} ${m.get(rt)?.toFixed(2) ?? "-"}`);
      console.log(`  ${msg.padEnd(60)} ${cols.join("  ")}`);
    }
  }
  return failed.size > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
