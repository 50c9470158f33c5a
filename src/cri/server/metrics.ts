/**
 * The RuntimeService's ListMetricDescriptors and ListPodSandboxMetrics
 * (KEP-2371): with the kubelet's PodAndContainerStatsFromCRI gate, its
 * /metrics/cadvisor serves what these answer instead of asking its own
 * cAdvisor (which names no container of a runtime it does not inspect
 * itself). The names, types and extra labels are cAdvisor's, as CRI-O and
 * containerd send them; every metric carries the labels `id`, `name` and
 * `image` (a sandbox's are its id, "POD" and ""), as CRI-O's do. Values are
 * whole numbers (the CRI's UInt64Value): seconds are truncated, as both
 * runtimes do. Read live at each call, so each metric's timestamp is 0.
 */
import type { Host } from "../../workloads/host.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import { type CgroupManager, readOptional } from "../../sys/cgroups/mod.ts";
import type { Handler, Message } from "../grpc.ts";
import { containerInfo, criContainers, criPods, diskUse, filteredContainers } from "./_common.ts";
import {
  cgroupDirs,
  cgroupPressure,
  type CgroupSample,
  readCgroupSample,
} from "./metrics_cgroup.ts";

type Kind = "COUNTER" | "GAUGE";

interface Desc {
  name: string;
  help: string;
  type: Kind;
  /** Labels after id, name, image. */
  labels?: string[];
}

const BASE_LABELS = ["id", "name", "image"];

const D = (name: string, type: Kind, help: string, labels?: string[]): Desc => ({
  name,
  type,
  help,
  labels,
});

/** Per container (and, for the network ones, per sandbox), in cAdvisor's names. */
export const DESCRIPTORS: Desc[] = [
  D("container_cpu_user_seconds_total", "COUNTER", "Cumulative user CPU time consumed in seconds."),
  D(
    "container_cpu_system_seconds_total",
    "COUNTER",
    "Cumulative system CPU time consumed in seconds.",
  ),
  D("container_cpu_usage_seconds_total", "COUNTER", "Cumulative CPU time consumed in seconds.", [
    "cpu",
  ]),
  D(
    "container_cpu_cfs_periods_total",
    "COUNTER",
    "Number of elapsed enforcement period intervals.",
  ),
  D(
    "container_cpu_cfs_throttled_periods_total",
    "COUNTER",
    "Number of throttled period intervals.",
  ),
  D(
    "container_cpu_cfs_throttled_seconds_total",
    "COUNTER",
    "Total time duration the container has been throttled.",
  ),
  D("container_memory_cache", "GAUGE", "Number of bytes of page cache memory."),
  D("container_memory_rss", "GAUGE", "Size of RSS in bytes."),
  D("container_memory_mapped_file", "GAUGE", "Size of memory mapped files in bytes."),
  D("container_memory_swap", "GAUGE", "Container swap usage in bytes."),
  D("container_memory_failcnt", "COUNTER", "Number of memory usage hits limits."),
  D(
    "container_memory_usage_bytes",
    "GAUGE",
    "Current memory usage in bytes, including all memory regardless of when it was accessed.",
  ),
  D("container_memory_max_usage_bytes", "GAUGE", "Maximum memory usage recorded in bytes."),
  D("container_memory_working_set_bytes", "GAUGE", "Current working set in bytes."),
  D(
    "container_memory_failures_total",
    "COUNTER",
    "Cumulative count of memory allocation failures.",
    [
      "failure_type",
      "scope",
    ],
  ),
  D(
    "container_oom_events_total",
    "COUNTER",
    "Count of out of memory events observed for the container.",
  ),
  D("container_processes", "GAUGE", "Number of processes running inside the container."),
  D("container_threads", "GAUGE", "Number of threads running inside the container."),
  D(
    "container_threads_max",
    "GAUGE",
    "Maximum number of threads allowed inside the container, infinity if value is zero.",
  ),
  D("container_file_descriptors", "GAUGE", "Number of open file descriptors for the container."),
  D("container_sockets", "GAUGE", "Number of open sockets for the container."),
  D(
    "container_ulimits_soft",
    "GAUGE",
    "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice.",
    [
      "ulimit",
    ],
  ),
  D("container_spec_cpu_period", "GAUGE", "CPU period of the container."),
  D("container_spec_cpu_shares", "GAUGE", "CPU share of the container."),
  D("container_spec_cpu_quota", "GAUGE", "CPU quota of the container."),
  D("container_spec_memory_limit_bytes", "GAUGE", "Memory limit for the container."),
  D(
    "container_spec_memory_reservation_limit_bytes",
    "GAUGE",
    "Memory reservation limit for the container.",
  ),
  D("container_spec_memory_swap_limit_bytes", "GAUGE", "Memory swap limit for the container."),
  D(
    "container_start_time_seconds",
    "GAUGE",
    "Start time of the container since unix epoch in seconds.",
  ),
  D("container_last_seen", "GAUGE", "Last time a container was seen by the exporter."),
  D(
    "container_fs_usage_bytes",
    "GAUGE",
    "Number of bytes that are consumed by the container on this filesystem.",
    [
      "device",
    ],
  ),
  D(
    "container_fs_inodes_total",
    "GAUGE",
    "Number of inodes used by the container on this filesystem.",
    [
      "device",
    ],
  ),
  D("container_fs_reads_bytes_total", "COUNTER", "Cumulative count of bytes read.", ["device"]),
  D("container_fs_writes_bytes_total", "COUNTER", "Cumulative count of bytes written.", ["device"]),
  D("container_fs_reads_total", "COUNTER", "Cumulative count of reads completed.", ["device"]),
  D("container_fs_writes_total", "COUNTER", "Cumulative count of writes completed.", ["device"]),
  D("container_blkio_device_usage_total", "COUNTER", "Blkio device bytes usage.", [
    "device",
    "major",
    "minor",
    "operation",
  ]),
  D("container_network_receive_bytes_total", "COUNTER", "Cumulative count of bytes received.", [
    "interface",
  ]),
  D("container_network_receive_packets_total", "COUNTER", "Cumulative count of packets received.", [
    "interface",
  ]),
  D(
    "container_network_receive_packets_dropped_total",
    "COUNTER",
    "Cumulative count of packets dropped while receiving.",
    ["interface"],
  ),
  D(
    "container_network_receive_errors_total",
    "COUNTER",
    "Cumulative count of errors encountered while receiving.",
    [
      "interface",
    ],
  ),
  D("container_network_transmit_bytes_total", "COUNTER", "Cumulative count of bytes transmitted.", [
    "interface",
  ]),
  D(
    "container_network_transmit_packets_total",
    "COUNTER",
    "Cumulative count of packets transmitted.",
    [
      "interface",
    ],
  ),
  D(
    "container_network_transmit_packets_dropped_total",
    "COUNTER",
    "Cumulative count of packets dropped while transmitting.",
    ["interface"],
  ),
  D(
    "container_network_transmit_errors_total",
    "COUNTER",
    "Cumulative count of errors encountered while transmitting.",
    ["interface"],
  ),
];

const TYPES = new Map(DESCRIPTORS.map((d) => [d.name, d]));

/** Where /proc and /sys are, how a link is read (tests give fake trees), and the clock. */
export interface MetricsEnv {
  proc: string;
  sys: string;
  readLink: (path: string) => string;
  nowMs: () => number;
}

const REAL: MetricsEnv = {
  proc: "/proc",
  sys: "/sys",
  readLink: Deno.readLinkSync,
  nowMs: () => Date.now(),
};

/** A metric of `name` with `extra` label values after the base ones. */
function metric(base: string[], name: string, value: number | undefined, extra: string[] = []) {
  const d = TYPES.get(name);
  if (!d) throw new Error(`metrics: no descriptor ${name}`);
  if (value === undefined || !Number.isFinite(value) || value < 0) return undefined;
  return {
    name,
    metric_type: d.type,
    label_values: [...base, ...extra],
    value: { value: BigInt(Math.floor(value)).toString() },
  };
}

const secs = (ns: number | undefined) => ns === undefined ? undefined : ns / 1e9;

/** Per-interface counters of /proc/PID/net/dev, the host-side and loopback links left out as cAdvisor does. */
export interface NetDev {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

export function parseNetDev(text: string): NetDev[] {
  const out: NetDev[] = [];
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const name = m[1];
    if (/^(lo|veth|docker)/.test(name)) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    if (f.length < 16 || f.some((n) => !Number.isFinite(n))) continue;
    out.push({
      name,
      rxBytes: f[0],
      rxPackets: f[1],
      rxErrors: f[2],
      rxDropped: f[3],
      txBytes: f[8],
      txPackets: f[9],
      txErrors: f[10],
      txDropped: f[11],
    });
  }
  return out;
}

function inode(path: string): number | undefined {
  try {
    return Deno.statSync(path).ino ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * A process in the sandbox's network namespace: its pause process or one of
 * its containers', checked against the netns file it keeps (a pid may have
 * been reused). Undefined for a host-network sandbox or one with none running.
 */
export function sandboxNetPid(
  host: Host,
  p: PodRecord,
  env: MetricsEnv = REAL,
): number | undefined {
  if (p.hostNetwork || !p.netns) return undefined;
  const want = inode(p.netns);
  if (want === undefined) return undefined;
  const candidates: number[] = [];
  if (p.pause) {
    const pause = host.store.get<ContainerRecord>("containers", p.pause);
    if (pause?.pid) candidates.push(pause.pid);
  }
  for (const c of criContainers(host)) {
    if (containerInfo(c).sandboxId === p.name && c.status === "running") {
      candidates.push(...host.cgroups.pids(c.cgroupPath));
    }
  }
  return candidates.find((pid) => inode(`${env.proc}/${pid}/ns/net`) === want);
}

/** The sandbox's interfaces' counters; [] when none can be read. */
export function sandboxNetDevs(host: Host, p: PodRecord, env: MetricsEnv = REAL): NetDev[] {
  const pid = sandboxNetPid(host, p, env);
  if (pid === undefined) return [];
  const text = readOptional(`${env.proc}/${pid}/net/dev`);
  return text ? parseNetDev(text) : [];
}

/**
 * PodSandboxStats' `network` (the summary API's pod network with the gate on):
 * eth0 is the default interface, as the kubelet's cAdvisor path names it.
 */
export function sandboxNetworkUsage(
  host: Host,
  p: PodRecord,
  nowNs: bigint,
  env: MetricsEnv = REAL,
): Message | null {
  const devs = sandboxNetDevs(host, p, env);
  if (devs.length === 0) return null;
  const iface = (d: NetDev) => ({
    name: d.name,
    rx_bytes: { value: String(d.rxBytes) },
    rx_errors: { value: String(d.rxErrors) },
    tx_bytes: { value: String(d.txBytes) },
    tx_errors: { value: String(d.txErrors) },
  });
  const def = devs.find((d) => d.name === "eth0") ?? devs[0];
  return {
    timestamp: nowNs.toString(),
    default_interface: iface(def),
    interfaces: devs.map(iface),
  };
}

/** Processes, threads, fds and sockets of `pids` and the first one's open-files soft limit. */
function processCounts(pids: number[], env: MetricsEnv) {
  let threads = 0;
  let fds = 0;
  let sockets = 0;
  let live = 0;
  for (const pid of pids) {
    const status = readOptional(`${env.proc}/${pid}/status`);
    if (status === undefined) continue; // gone since cgroup.procs was read
    live++;
    threads += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    try {
      for (const e of Deno.readDirSync(`${env.proc}/${pid}/fd`)) {
        fds++;
        try {
          if (env.readLink(`${env.proc}/${pid}/fd/${e.name}`).startsWith("socket:")) sockets++;
        } catch { /* closed meanwhile */ }
      }
    } catch { /* gone */ }
  }
  const limits = pids.length ? readOptional(`${env.proc}/${pids[0]}/limits`) : undefined;
  const soft = limits ? /^Max open files\s+(\S+)/m.exec(limits)?.[1] : undefined;
  return {
    processes: live,
    threads,
    fds,
    sockets,
    openFilesSoft: soft === undefined ? undefined : soft === "unlimited" ? undefined : Number(soft),
  };
}

/** `/dev/NAME` of a block device, from /sys/dev/block/MAJ:MIN/uevent; `MAJ:MIN` when unnamed. */
function deviceName(major: number, minor: number, env: MetricsEnv): string {
  const uevent = readOptional(`${env.sys}/dev/block/${major}:${minor}/uevent`);
  const name = uevent ? /^DEVNAME=(\S+)$/m.exec(uevent)?.[1] : undefined;
  return name && /^[\w.\-/]+$/.test(name) ? `/dev/${name}` : `${major}:${minor}`;
}

/** The device a path is on, as `deviceName` names it. */
function deviceOf(path: string, env: MetricsEnv): string | undefined {
  let dev: number | null;
  try {
    dev = Deno.statSync(path).dev;
  } catch {
    return undefined;
  }
  if (dev === null) return undefined;
  const d = BigInt(dev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return deviceName(major, minor, env);
}

/** The metrics of one container from its cgroup, its processes and its writable layer. */
export function containerMetrics(host: Host, c: ContainerRecord, env: MetricsEnv = REAL) {
  const m = containerInfo(c);
  const base = [c.name, m.name, m.image];
  const dirs = cgroupDirs(host.cgroups, c.cgroupPath);
  const s: CgroupSample | undefined = dirs
    ? readCgroupSample(host.cgroups.version, dirs)
    : undefined;
  // No cgroup (stopped since the record was read, or a host without cgroupfs): nothing to say.
  if (!s) return [];
  const pids = host.cgroups.pids(c.cgroupPath);
  const out = [
    metric(base, "container_last_seen", env.nowMs() / 1000),
    metric(base, "container_start_time_seconds", Date.parse(c.startedAt ?? c.createdAt) / 1000),
  ];
  out.push(
    metric(base, "container_cpu_user_seconds_total", secs(s.cpuUserNs)),
    metric(base, "container_cpu_system_seconds_total", secs(s.cpuSystemNs)),
    metric(base, "container_cpu_usage_seconds_total", secs(s.cpuUsageNs), ["total"]),
    metric(base, "container_cpu_cfs_periods_total", s.cfsPeriods),
    metric(base, "container_cpu_cfs_throttled_periods_total", s.cfsThrottledPeriods),
    metric(base, "container_cpu_cfs_throttled_seconds_total", secs(s.cfsThrottledNs)),
    metric(base, "container_memory_cache", s.memoryCache),
    metric(base, "container_memory_rss", s.memoryRss),
    metric(base, "container_memory_mapped_file", s.memoryMappedFile),
    metric(base, "container_memory_swap", s.memorySwap),
    metric(base, "container_memory_failcnt", s.memoryFailcnt),
    metric(base, "container_memory_usage_bytes", s.memoryUsage),
    metric(base, "container_memory_max_usage_bytes", s.memoryMaxUsage),
    metric(base, "container_memory_working_set_bytes", s.memoryWorkingSet),
    metric(base, "container_oom_events_total", s.oomKills ?? 0),
    // cAdvisor's figures: a limit not set is 0.
    metric(base, "container_spec_cpu_period", s.cpuPeriod),
    metric(base, "container_spec_cpu_shares", s.cpuShares),
    metric(base, "container_spec_cpu_quota", s.cpuQuota),
    metric(base, "container_spec_memory_limit_bytes", s.memoryLimit ?? 0),
    metric(base, "container_spec_memory_reservation_limit_bytes", s.memoryReservation ?? 0),
    metric(base, "container_spec_memory_swap_limit_bytes", s.memorySwapLimit ?? 0),
    metric(base, "container_threads_max", s.pidsMax ?? 0),
  );
  for (const [type, f] of [["pgfault", s.pgfault], ["pgmajfault", s.pgmajfault]] as const) {
    if (!f) continue;
    out.push(
      metric(base, "container_memory_failures_total", f.container, [type, "container"]),
      metric(base, "container_memory_failures_total", f.hierarchy, [type, "hierarchy"]),
    );
  }
  for (const io of s.io) {
    const dev = deviceName(io.major, io.minor, env);
    const mm = [String(io.major), String(io.minor)];
    out.push(
      metric(base, "container_fs_reads_bytes_total", io.readBytes, [dev]),
      metric(base, "container_fs_writes_bytes_total", io.writeBytes, [dev]),
      metric(base, "container_fs_reads_total", io.reads, [dev]),
      metric(base, "container_fs_writes_total", io.writes, [dev]),
      metric(base, "container_blkio_device_usage_total", io.readBytes, [dev, ...mm, "Read"]),
      metric(base, "container_blkio_device_usage_total", io.writeBytes, [dev, ...mm, "Write"]),
    );
  }
  const p = processCounts(pids, env);
  out.push(
    metric(base, "container_processes", p.processes),
    metric(base, "container_threads", s.pidsCurrent ?? p.threads),
    metric(base, "container_file_descriptors", p.fds),
    metric(base, "container_sockets", p.sockets),
    metric(base, "container_ulimits_soft", p.openFilesSoft, ["max_open_files"]),
  );
  const layerDev = deviceOf(c.dirs.upper, env);
  if (layerDev) {
    const use = diskUse(c.dirs.upper);
    out.push(
      metric(base, "container_fs_usage_bytes", use.bytes, [layerDev]),
      metric(base, "container_fs_inodes_total", use.inodes, [layerDev]),
    );
  }
  return out.filter((x) => x !== undefined);
}

/** A sandbox's own metrics: its network namespace's interfaces. */
export function sandboxMetrics(host: Host, p: PodRecord, env: MetricsEnv = REAL) {
  const base = [p.name, "POD", ""];
  const out = [];
  for (const d of sandboxNetDevs(host, p, env)) {
    const i = [d.name];
    out.push(
      metric(base, "container_network_receive_bytes_total", d.rxBytes, i),
      metric(base, "container_network_receive_packets_total", d.rxPackets, i),
      metric(base, "container_network_receive_packets_dropped_total", d.rxDropped, i),
      metric(base, "container_network_receive_errors_total", d.rxErrors, i),
      metric(base, "container_network_transmit_bytes_total", d.txBytes, i),
      metric(base, "container_network_transmit_packets_total", d.txPackets, i),
      metric(base, "container_network_transmit_packets_dropped_total", d.txDropped, i),
      metric(base, "container_network_transmit_errors_total", d.txErrors, i),
    );
  }
  return out.filter((x) => x !== undefined);
}

export function metricsHandlers(host: Host, env: MetricsEnv = REAL): Record<string, Handler> {
  return {
    ListMetricDescriptors: () =>
      Promise.resolve({
        descriptors: DESCRIPTORS.map((d) => ({
          name: d.name,
          help: d.help,
          label_keys: [...BASE_LABELS, ...(d.labels ?? [])],
        })),
      }),

    ListPodSandboxMetrics: async () => {
      // Like ListContainerStats: the containers that have a cgroup (created or running), refreshed
      // (a record's "running" may be a container that has exited since: no series for it).
      const containers = (await filteredContainers(host, {})).filter((c) =>
        c.status === "running" || c.status === "created"
      );
      const pod_metrics = criPods(host).filter((p) => p.created).map((p) => ({
        pod_sandbox_id: p.name,
        metrics: sandboxMetrics(host, p, env),
        container_metrics: containers.filter((c) => containerInfo(c).sandboxId === p.name).map((
          c,
        ) => ({ container_id: c.name, metrics: containerMetrics(host, c, env) })),
      }));
      return { pod_metrics };
    },
  };
}

/**
 * ContainerStats' and PodSandboxStats' `cpu`, `memory` and `io` with the
 * cgroup's PSI (the summary API's `psi`, which the kubelet takes from the CRI
 * for containers its cAdvisor does not know), from the cgroup v2 tree (on a
 * hybrid v1 host, its unified mount).
 */
export function withPressure(
  cg: CgroupManager,
  rel: string,
  nowNs: bigint,
  usage: { cpu: Message; memory: Message },
) {
  const psi = cgroupPressure(cg, rel);
  return {
    cpu: { ...usage.cpu, psi: psi.cpu },
    memory: { ...usage.memory, psi: psi.memory },
    io: psi.io ? { timestamp: nowNs.toString(), psi: psi.io } : null,
  };
}

/**
 * The pod's cgroup, which PodSandboxStats reports (as containerd does: the
 * sandbox's cgroup parent): with the kubelet's `cgroup_parent` rkl makes the
 * sandbox's own cgroup `PARENT/<sandbox id>` (translate.ts), and PARENT, the
 * kubelet's `kubepods/…/pod<uid>`, holds the pod's memory limit and, on a
 * hybrid host, its cgroup v2 twin with PSI. Without one, the sandbox's own.
 */
export function podCgroup(p: PodRecord): string {
  const suffix = `/${p.name}`;
  return p.cgroupPath.endsWith(suffix) && p.cgroupPath.length > suffix.length
    ? p.cgroupPath.slice(0, -suffix.length)
    : p.cgroupPath;
}
