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
 *   flock /tmp/rkl-bench.lock deno run -A bench/cluster.ts [--rounds N] [--pods N] [--only rkl|containerd]
 *
 * Root; not run by CI. Takes the e2e lock itself (the cluster uses the node
 * e2e harness's host-wide parts: kubepods cgroups, /var/lib/kubelet).
 */
import { Cluster, sleep, until } from "../tests/cluster/cluster.ts";
import { NODE_IMAGES } from "../tests/_helpers/node_images.ts";

function arg(name: string, dflt: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : dflt;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Seconds from create to Running for `n` pods created at once, on a fresh cluster. */
async function round(runtime: "rkl" | "containerd", n: number): Promise<number[]> {
  const c = await Cluster.start({ runtime, say: () => {} });
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
    const t0 = performance.now();
    await c.kubectl(["create", "-f", "-"], { stdin: JSON.stringify(list) });
    await until(`${n} pods Running`, () => running.size >= n, 300_000);
    try {
      watch.kill("SIGTERM");
    } catch { /* gone */ }
    await watch.status;
    await reading.catch(() => {});
    await watch.stderr.cancel().catch(() => {});
    await c.kubectl(["delete", "pods", "-l", "bench=startup", "--wait=true", "--timeout=120s"]);
    return [...running.values()].map((t) => (t - t0) / 1000);
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
  const runtimes = (["rkl", "containerd"] as const).filter((r) => !only || r === only);
  const all = new Map<string, number[]>(runtimes.map((r) => [r, []]));
  const failed = new Map<string, string>();
  for (let i = 0; i < rounds; i++) {
    // Alternate which runtime goes first in each round.
    const order = i % 2 === 0 ? runtimes : [...runtimes].reverse();
    for (const rt of order) {
      let xs: number[];
      try {
        xs = await round(rt, n);
      } catch (e) {
        console.log(`round ${i + 1} ${rt.padEnd(10)} FAILED: ${(e as Error).message}`);
        failed.set(rt, (e as Error).message);
        continue;
      }
      all.get(rt)!.push(...xs);
      console.log(
        `round ${i + 1} ${rt.padEnd(10)} create → Running of ${n} pods: p50 ${
          quantile(xs, 0.5).toFixed(2)
        } s, p95 ${quantile(xs, 0.95).toFixed(2)} s, last ${Math.max(...xs).toFixed(2)} s`,
      );
    }
  }
  console.log(`\npod startup through the API server, ${n} pods at once, ${rounds} rounds:`);
  for (const [rt, xs] of all) {
    if (xs.length === 0) continue;
    console.log(
      `  ${rt.padEnd(10)} p50 ${quantile(xs, 0.5).toFixed(2)} s  p95 ${
        quantile(xs, 0.95).toFixed(2)
      } s  (${xs.length} pods)`,
    );
  }
  for (const [rt, why] of failed) console.log(`  ${rt.padEnd(10)} failed: ${why}`);
  if (all.size === 2 && failed.size === 0) {
    const [r, c] = [all.get("rkl")!, all.get("containerd")!];
    console.log(
      `  rkl ÷ containerd: p50 ${(quantile(r, 0.5) / quantile(c, 0.5)).toFixed(2)}, p95 ${
        (quantile(r, 0.95) / quantile(c, 0.95)).toFixed(2)
      }`,
    );
  }
  return failed.size > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
