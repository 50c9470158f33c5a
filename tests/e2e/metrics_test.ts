/**
 * `rkl daemon --metrics 127.0.0.1:PORT` scraped by Debian's real Prometheus
 * (its own config and data dir in this file's temp dir), the series read
 * back through Prometheus' HTTP API: per-container CPU seconds, memory,
 * restarts and state, pod and image counts, CRI request counts and latency
 * histograms. Prometheus and the daemon are stopped, and the host census is
 * as it was.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { type Census, census } from "../_helpers/census.ts";
import {
  assertRejected,
  cleanupAfterAll,
  envTest,
  makeEnv,
  rkl,
  waitFor,
} from "../_helpers/env.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { serviceDefinition } from "../../src/cri/grpc.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki") &&
  requires("prometheus");
const env = ready ? await makeEnv("metrics", 55) : undefined;
let baseline: Census | undefined;

/** A port nothing listens on now (the kernel's choice). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** One instant query through Prometheus' HTTP API: [labels, value] per series. */
async function query(promPort: number, q: string): Promise<[Record<string, string>, number][]> {
  const res = await fetch(
    `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
  );
  const body = await res.json();
  assert.equal(body.status, "success", JSON.stringify(body));
  return body.data.result.map((r: { metric: Record<string, string>; value: [number, string] }) => [
    r.metric,
    Number(r.value[1]),
  ]);
}

/** A CRI call, as a kubelet makes one, over the daemon's socket. */
function criVersion(socket: string): Promise<Record<string, string>> {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    // deno-lint-ignore no-explicit-any
    (client as any).Version({}, (err: grpc.ServiceError | null, res: Record<string, string>) => {
      client.close();
      err ? reject(err) : resolve(res);
    });
  });
}

envTest(
  ready,
  () => env!,
  "Prometheus scrapes rkl daemon --metrics: container CPU, memory, state and restarts, pods, CRI calls",
  async () => {
    baseline ??= await census(env!);
    const manifests = `${env!.dir}/manifests`;
    await Deno.mkdir(manifests, { recursive: true });
    await Deno.writeTextFile(
      `${manifests}/spin.yaml`,
      `apiVersion: v1\nkind: Pod\nmetadata: {name: spin}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: main\n      image: ${REPO}/bundles/busybox\n      command: [sh, -c, "while :; do :; done"]\n      resources: {limits: {memory: 64Mi}}\n`,
    );
    // A remote address is refused unless asked for: one line, exit 2.
    assertRejected(
      "remote metrics",
      await rkl(env!, ["daemon", "--manifests", manifests, "--metrics", "0.0.0.0:9"]),
      /--metrics "0\.0\.0\.0:9": 0\.0\.0\.0 is not a loopback address/,
    );

    const metricsPort = freePort();
    const promPort = freePort();
    const daemon = startDaemon(env!, manifests, {
      args: ["--metrics", `127.0.0.1:${metricsPort}`],
    });
    let prom: Deno.ChildProcess | undefined;
    try {
      // The exposition itself: HELP and TYPE lines, the running pod's container.
      let text = "";
      await waitFor("the spin pod's container in /metrics", async () => {
        try {
          text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        } catch {
          return false;
        }
        return /^rkl_container_state\{name="spin_main".*state="running"\} 1$/m.test(text);
      }, 60_000);
      assert.match(text, /^# HELP rkl_container_cpu_seconds_total /m);
      assert.match(text, /^# TYPE rkl_container_cpu_seconds_total counter$/m);
      assert.match(text, /^# TYPE rkl_cri_request_duration_seconds histogram$/m);
      assert.match(text, /^rkl_pods 1$/m);
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      await res.body?.cancel();
      const nf = await fetch(`http://127.0.0.1:${metricsPort}/nope`);
      assert.equal(nf.status, 404);
      await nf.body?.cancel();

      // A CRI call, counted by method.
      const v = await criVersion(`${env!.runRoot}/rkl.sock`);
      assert.equal(v.runtime_name, "rkl");

      // Prometheus, with a config and data dir of its own.
      const promDir = `${env!.dir}/prometheus`;
      await Deno.mkdir(`${promDir}/data`, { recursive: true });
      await Deno.writeTextFile(
        `${promDir}/prometheus.yml`,
        `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rkl\n    static_configs:\n      - targets: ["127.0.0.1:${metricsPort}"]\n`,
      );
      prom = new Deno.Command("prometheus", {
        args: [
          `--config.file=${promDir}/prometheus.yml`,
          `--storage.tsdb.path=${promDir}/data`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          "--log.level=warn",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitFor("Prometheus scraping rkl", async () => {
        try {
          const up = await query(promPort, 'up{job="rkl"}');
          return up.length === 1 && up[0][1] === 1;
        } catch {
          return false;
        }
      }, 60_000);

      const one = async (q: string) => {
        let got: [Record<string, string>, number][] = [];
        await waitFor(`a series for ${q}`, async () => {
          got = await query(promPort, q);
          return got.length > 0;
        }, 20_000);
        return got;
      };
      // CPU seconds grow: the container spins.
      const cpu = await one('rate(rkl_container_cpu_seconds_total{name="spin_main"}[5s])');
      // On a shared 2-CPU host the spinning shell gets what the others leave: more than nothing.
      assert.ok(cpu[0][1] > 0.05, `spin uses CPU: ${cpu[0][1]} s/s`);
      assert.equal(cpu[0][0].pod, "spin");
      const mem = await one('rkl_container_memory_usage_bytes{name="spin_main"}');
      assert.ok(mem[0][1] > 0);
      const limit = await one('rkl_container_memory_limit_bytes{name="spin_main"}');
      assert.equal(limit[0][1], 64 * 1024 * 1024);
      const state = await one('rkl_container_state{name="spin_main",state="running"}');
      assert.equal(state[0][1], 1);
      assert.equal((await one('rkl_container_restarts_total{name="spin_main"}'))[0][1], 0);
      assert.equal((await one("rkl_pods"))[0][1], 1);
      assert.ok((await one("rkl_images")).length === 1);
      const calls = await one('rkl_cri_requests_total{method="Version",code="OK"}');
      assert.ok(calls[0][1] >= 1);
      const hist = await one(
        'rkl_cri_request_duration_seconds_bucket{method="Version",le="+Inf"}',
      );
      assert.ok(hist[0][1] >= 1);
      // `stats --no-stream` while the daemon runs (it serves it): the same numbers, twice.
      for (let i = 0; i < 2; i++) {
        const st = await rkl(env!, ["stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}"]);
        assert.equal(st.code, 0, st.stderr);
        const line = st.stdout.split("\n").find((l) => l.startsWith("spin_main "));
        assert.ok(line && parseFloat(line.split(" ")[1]) > 5, `spin_main spins: ${st.stdout}`);
      }
    } finally {
      if (prom) {
        try {
          prom.kill("SIGTERM");
        } catch { /* gone */ }
        await prom.status;
      }
      await stopDaemon(daemon);
    }
    // Prometheus is gone, and the daemon's port with it.
    await assert.rejects(() => fetch(`http://127.0.0.1:${metricsPort}/metrics`));
    // The daemon's start and stop are events.
    const ev = await rkl(env!, [
      "events",
      "--since",
      "1h",
      "--until",
      "0s",
      "--filter",
      "type=daemon",
    ]);
    assert.match(ev.stdout, /daemon start rkl\n(.*\n)*.*daemon stop rkl\n$/);
    assert.equal((await rkl(env!, ["pod", "rm", "-f", "spin"])).code, 0);
    assert.deepEqual(await census(env!), baseline);
  },
);

cleanupAfterAll(env);
