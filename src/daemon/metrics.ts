/**
 * `rkl daemon --metrics ADDR:PORT`: the daemon's numbers in Prometheus' text
 * exposition format (version 0.0.4) on GET /metrics.
 *
 * Two kinds of series:
 * - read at each scrape from the store and cgroupfs (containers' CPU,
 *   memory, network, pids, restarts and state; pod, container and image
 *   counts), so a scrape always shows what is there now;
 * - counted as they happen in this daemon process (CRI requests by method
 *   and status code with a latency histogram; image pulls with their bytes
 *   and a duration histogram). These start at 0 when the daemon starts, as
 *   Prometheus counters may.
 *
 * Serving is off by default. Only a loopback address is taken unless the
 * caller says a remote one is wanted ({@linkcode parseMetricsAddress}).
 */
import { UsageError } from "../errors.ts";
import type { Host } from "../workloads/host.ts";
import type { ContainerRecord } from "../workloads/container/types.ts";
import { listContainers } from "../workloads/container.ts";
import { layoutOf, sampleContainers, statsRow } from "../workloads/stats.ts";
import type { ImageService } from "../image/service.ts";

/** Prometheus' default buckets (seconds), for CRI request latency. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Image pulls take longer: up to five minutes. */
export const PULL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A label value escaped as the text format asks: backslash, double quote, newline. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(l: Record<string, string>): string {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
}

/** A number as the text format writes it (+Inf, NaN). */
function value(n: number): string {
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  if (Number.isNaN(n)) return "NaN";
  return String(n);
}

class Histogram {
  readonly series = new Map<
    string,
    { labels: Record<string, string>; counts: number[]; sum: number; count: number }
  >();
  constructor(readonly buckets: number[]) {}
  observe(l: Record<string, string>, v: number): void {
    const key = JSON.stringify(l);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: l, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  lines(name: string): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => {
        out.push(`${name}_bucket${labels({ ...s.labels, le: String(b) })} ${s.counts[i]}`);
      });
      out.push(`${name}_bucket${labels({ ...s.labels, le: "+Inf" })} ${s.count}`);
      out.push(`${name}_sum${labels(s.labels)} ${value(s.sum)}`);
      out.push(`${name}_count${labels(s.labels)} ${s.count}`);
    }
    return out;
  }
}

class Counter {
  readonly series = new Map<string, { labels: Record<string, string>; v: number }>();
  inc(l: Record<string, string>, by = 1): void {
    const key = JSON.stringify(l);
    const s = this.series.get(key) ?? { labels: l, v: 0 };
    s.v += by;
    this.series.set(key, s);
  }
  lines(name: string): string[] {
    return [...this.series.values()].map((s) => `${name}${labels(s.labels)} ${value(s.v)}`);
  }
}

/** What the daemon counts as it goes; read at each scrape. */
export class DaemonMetrics {
  readonly criRequests = new Counter();
  readonly criLatency = new Histogram(LATENCY_BUCKETS);
  readonly pulls = new Counter();
  readonly pullBytes = new Counter();
  readonly pullSeconds = new Histogram(PULL_BUCKETS);

  /** The CRI server's hook (src/cri/grpc.ts ServeOptions.onCall). */
  observeCri = (method: string, code: string, seconds: number): void => {
    this.criRequests.inc({ method, code });
    this.criLatency.observe({ method }, seconds);
  };

  observePull(result: "success" | "failure", seconds: number, bytes: number): void {
    this.pulls.inc({ result });
    if (bytes > 0) this.pullBytes.inc({}, bytes);
    this.pullSeconds.observe({}, seconds);
  }

  /**
   * Counts every pull of `images` (the daemon's pods and the CRI's
   * PullImage both pull through it): its time, its result, and the image's
   * size in bytes (layers and config, as the registry sent them).
   */
  instrument(images: ImageService, now: () => number = () => performance.now()): void {
    const pull = images.pull.bind(images);
    images.pull = async (ref, o) => {
      const t0 = now();
      try {
        const rec = await pull(ref, o);
        this.observePull("success", (now() - t0) / 1000, rec.size ?? 0);
        return rec;
      } catch (e) {
        this.observePull("failure", (now() - t0) / 1000, 0);
        throw e;
      }
    };
  }
}

/** One metric family: HELP, TYPE, then its lines. */
function family(name: string, type: string, help: string, lines: string[]): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${lines.map((l) => l + "\n").join("")}`;
}

export const CONTAINER_STATES = ["created", "running", "paused", "exited", "unknown"] as const;

/** The container's labels on every per-container series. */
function containerLabels(c: ContainerRecord): Record<string, string> {
  return { name: c.name, id: c.id, pod: c.pod ?? "", image: c.image };
}

/** The whole exposition, read now. */
export async function renderMetrics(
  host: Host,
  metrics: DaemonMetrics,
  options: { version?: string } = {},
): Promise<string> {
  const recs = (await listContainers(host)).filter((c) => c.status !== "creating")
    .sort((a, b) => a.name.localeCompare(b.name));
  const { samples, hostMemory } = sampleContainers(recs, { layout: layoutOf(host.cgroups) });
  const rows = samples.map((s) => statsRow(undefined, s, hostMemory));
  const cpu: string[] = [], mem: string[] = [], limit: string[] = [], rx: string[] = [];
  const tx: string[] = [], pids: string[] = [], restarts: string[] = [], state: string[] = [];
  const byState = new Map<string, number>(CONTAINER_STATES.map((s) => [s, 0]));
  recs.forEach((c, i) => {
    const l = labels(containerLabels(c));
    const r = rows[i], g = samples[i].cgroup;
    const st = c.status === "running" && g?.frozen ? "paused" : c.status;
    byState.set(st, (byState.get(st) ?? 0) + 1);
    for (const s of CONTAINER_STATES) {
      state.push(
        `rkl_container_state${labels({ ...containerLabels(c), state: s })} ${s === st ? 1 : 0}`,
      );
    }
    restarts.push(`rkl_container_restarts_total${l} ${c.restarts ?? 0}`);
    if (!g) return;
    cpu.push(`rkl_container_cpu_seconds_total${l} ${value(r.cpuSeconds)}`);
    mem.push(`rkl_container_memory_usage_bytes${l} ${r.memUsage}`);
    if (g.memoryLimit !== undefined) {
      limit.push(`rkl_container_memory_limit_bytes${l} ${g.memoryLimit}`);
    }
    if (g.pids !== undefined) pids.push(`rkl_container_pids${l} ${g.pids}`);
    if (samples[i].net) {
      rx.push(`rkl_container_network_receive_bytes_total${l} ${r.netRx}`);
      tx.push(`rkl_container_network_transmit_bytes_total${l} ${r.netTx}`);
    }
  });
  const pods = host.store.list("pods").length;
  let images = 0;
  try {
    images = host.images?.store.listImages().length ?? 0;
  } catch { /* no image store yet */ }
  const out = [
    family(
      "rkl_build_info",
      "gauge",
      "rkl's version; always 1.",
      [`rkl_build_info${labels({ version: options.version ?? "" })} 1`],
    ),
    family(
      "rkl_container_cpu_seconds_total",
      "counter",
      "CPU time the container's cgroup used, seconds.",
      cpu,
    ),
    family(
      "rkl_container_memory_usage_bytes",
      "gauge",
      "Memory the container's cgroup uses less inactive file pages, bytes (docker stats' MEM USAGE).",
      mem,
    ),
    family(
      "rkl_container_memory_limit_bytes",
      "gauge",
      "The container's memory limit, bytes (absent: none).",
      limit,
    ),
    family(
      "rkl_container_network_receive_bytes_total",
      "counter",
      "Bytes received on the container's network namespace's interfaces but lo.",
      rx,
    ),
    family(
      "rkl_container_network_transmit_bytes_total",
      "counter",
      "Bytes sent from the container's network namespace's interfaces but lo.",
      tx,
    ),
    family("rkl_container_pids", "gauge", "Processes in the container's cgroup.", pids),
    family(
      "rkl_container_restarts_total",
      "counter",
      "Times rkl restarted the container in place (restart policies, the daemon).",
      restarts,
    ),
    family(
      "rkl_container_state",
      "gauge",
      "1 for the container's current state (created, running, paused, exited, unknown), else 0.",
      state,
    ),
    family(
      "rkl_containers",
      "gauge",
      "Containers by state.",
      [...byState].map(([s, n]) => `rkl_containers${labels({ state: s })} ${n}`),
    ),
    family("rkl_pods", "gauge", "Pods in the store.", [`rkl_pods ${pods}`]),
    family("rkl_images", "gauge", "Images in the store.", [`rkl_images ${images}`]),
    family(
      "rkl_cri_requests_total",
      "counter",
      "CRI requests served, by method and gRPC status code.",
      metrics.criRequests.lines("rkl_cri_requests_total"),
    ),
    family(
      "rkl_cri_request_duration_seconds",
      "histogram",
      "Time to answer a CRI request, by method, seconds.",
      metrics.criLatency.lines("rkl_cri_request_duration_seconds"),
    ),
    family(
      "rkl_image_pulls_total",
      "counter",
      "Image pulls, by result (success, failure).",
      metrics.pulls.lines("rkl_image_pulls_total"),
    ),
    family(
      "rkl_image_pull_bytes_total",
      "counter",
      "Bytes of the images pulled (layers and config as the registry sent them).",
      metrics.pullBytes.lines("rkl_image_pull_bytes_total"),
    ),
    family(
      "rkl_image_pull_duration_seconds",
      "histogram",
      "Time an image pull took, seconds.",
      metrics.pullSeconds.lines("rkl_image_pull_duration_seconds"),
    ),
  ];
  return out.join("");
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * `--metrics` as given: `PORT` (127.0.0.1:PORT), `HOST:PORT` or
 * `[V6]:PORT`. A host that is not loopback is refused unless
 * `allowRemote` (the metrics name every container and image: they are not
 * for the network by default).
 */
export function parseMetricsAddress(
  v: string,
  allowRemote = false,
): { hostname: string; port: number } {
  let hostname = "127.0.0.1", port: string;
  const v6 = /^\[([0-9a-fA-F:]+)\]:(\d+)$/.exec(v);
  if (v6) [, hostname, port] = v6;
  else if (/^\d+$/.test(v)) port = v;
  else {
    const i = v.lastIndexOf(":");
    if (i <= 0) {
      throw new UsageError(`--metrics ${JSON.stringify(v)}: give HOST:PORT, e.g. 127.0.0.1:9464`);
    }
    hostname = v.slice(0, i);
    port = v.slice(i + 1);
  }
  const p = Number(port);
  if (!/^\d+$/.test(port) || p < 1 || p > 65535) {
    throw new UsageError(`--metrics ${JSON.stringify(v)}: the port must be 1-65535`);
  }
  if (!/^[0-9A-Za-z.:-]+$/.test(hostname)) {
    throw new UsageError(`--metrics ${JSON.stringify(v)}: not a host name or address`);
  }
  if (!isLoopback(hostname) && !allowRemote) {
    throw new UsageError(
      `--metrics ${
        JSON.stringify(v)
      }: ${hostname} is not a loopback address (add --metrics-allow-remote to serve metrics to the network)`,
    );
  }
  return { hostname, port: p };
}

export interface MetricsServer {
  addr: { hostname: string; port: number };
  close(): Promise<void>;
}

/** Serves GET /metrics (and / as the same) until closed. */
export function serveMetrics(
  host: Host,
  metrics: DaemonMetrics,
  options: { hostname: string; port: number; version?: string; log?: (m: string) => void },
): MetricsServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {},
    onError: (e) => {
      options.log?.(`metrics: ${(e as Error).message}`);
      return new Response("internal error\n", { status: 500 });
    },
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    if (path !== "/metrics" && path !== "/") return new Response("not found\n", { status: 404 });
    const body = await renderMetrics(host, metrics, { version: options.version });
    return new Response(req.method === "HEAD" ? null : body, {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  });
  const a = server.addr as Deno.NetAddr;
  return {
    addr: { hostname: a.hostname, port: a.port },
    close: async () => {
      await server.shutdown();
    },
  };
}

/**
 * `rkl daemon --metrics`: counts this daemon's image pulls and CRI calls
 * (hand `onCriCall` to the daemon) and serves the exposition until closed.
 */
export function startMetrics(
  host: Host,
  at: { hostname: string; port: number },
  options: { version?: string; log: (m: string) => void },
): { onCriCall: DaemonMetrics["observeCri"]; close(): Promise<void> } {
  const metrics = new DaemonMetrics();
  if (host.images) metrics.instrument(host.images);
  const server = serveMetrics(host, metrics, { ...at, ...options });
  const a = server.addr;
  options.log(
    `metrics on http://${
      a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname
    }:${a.port}/metrics`,
  );
  return { onCriCall: metrics.observeCri, close: () => server.close() };
}
