/**
 * The RuntimeService's stats calls: ContainerStats, ListContainerStats,
 * PodSandboxStats, ListPodSandboxStats, read from cgroupfs.
 */
import type { Host } from "../../workloads/host.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import { type ContainerRecord, quickRefresh } from "../../workloads/container.ts";
import type { CgroupUsage } from "../../sys/cgroups/mod.ts";
import type { Handler } from "../grpc.ts";
import {
  containerInfo,
  criContainers,
  criPods,
  diskUse,
  filteredContainers,
  findContainer,
  findSandbox,
  labelsMatch,
  sandboxMetadata,
} from "./_common.ts";
import { podCgroup, sandboxNetworkUsage, withPressure } from "./metrics.ts";

const wrap = (v: number | undefined) => v === undefined ? null : { value: String(v) };

/**
 * Container and sandbox stats from cgroupfs. usage_nano_cores needs two
 * samples: the previous one per object is kept (and dropped once the object
 * is gone), as the kubelet's cAdvisor does. `nowNs` is the clock (tests give one).
 */
export function statsReader(
  host: Host,
  nowNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n,
) {
  const last = new Map<string, { ns: number; at: bigint }>();
  const cpu = (key: string, rel: string, now: bigint) => {
    const u = host.cgroups.usage(rel);
    const ns = u?.cpuNs;
    let nanoCores: number | undefined;
    const prev = last.get(key);
    if (ns !== undefined) {
      if (prev && now > prev.at && ns >= prev.ns) {
        nanoCores = Math.round((ns - prev.ns) * 1e9 / Number(now - prev.at));
      }
      last.set(key, { ns, at: now });
    }
    return {
      u,
      cpu: {
        timestamp: now.toString(),
        usage_core_nano_seconds: wrap(ns),
        usage_nano_cores: wrap(nanoCores),
      },
    };
  };
  const memory = (u: CgroupUsage | undefined, now: bigint) => ({
    timestamp: now.toString(),
    working_set_bytes: wrap(u?.workingSetBytes),
    available_bytes: wrap(
      u?.memoryLimit !== undefined && u.workingSetBytes !== undefined
        ? Math.max(0, u.memoryLimit - u.workingSetBytes)
        : undefined,
    ),
    usage_bytes: wrap(u?.memoryBytes),
    rss_bytes: wrap(u?.rssBytes),
    page_faults: wrap(u?.pageFaults),
    major_page_faults: wrap(u?.majorPageFaults),
  });
  const forgetGone = () => {
    if (last.size < 256) return;
    const live = new Set([
      ...criContainers(host).map((c) => c.name),
      ...criPods(host).map((p) => p.name),
    ]);
    for (const k of last.keys()) if (!live.has(k)) last.delete(k);
  };
  const container = (c: ContainerRecord) => {
    forgetGone();
    const now = nowNs();
    const { u, cpu: c1 } = cpu(c.name, c.cgroupPath, now);
    const disk = diskUse(c.dirs.upper);
    const m = containerInfo(c);
    return {
      attributes: {
        id: c.name,
        metadata: { name: m.name, attempt: m.attempt },
        labels: m.labels,
        annotations: m.annotations,
      },
      ...withPressure(host.cgroups, c.cgroupPath, now, { cpu: c1, memory: memory(u, now) }),
      writable_layer: {
        timestamp: now.toString(),
        fs_id: { mountpoint: c.dirs.upper },
        used_bytes: { value: String(disk.bytes) },
        inodes_used: { value: String(disk.inodes) },
      },
    };
  };
  const sandbox = (p: PodRecord) => {
    const now = nowNs();
    const { u, cpu: c1 } = cpu(p.name, podCgroup(p), now);
    const members = criContainers(host).filter((c) => containerInfo(c).sandboxId === p.name);
    return {
      attributes: {
        id: p.name,
        metadata: sandboxMetadata(p),
        labels: p.labels,
        annotations: p.annotations,
      },
      linux: {
        ...withPressure(host.cgroups, podCgroup(p), now, { cpu: c1, memory: memory(u, now) }),
        network: sandboxNetworkUsage(host, p, now),
        process: {
          timestamp: now.toString(),
          // The pod's processes live in its members' cgroups, below its own.
          process_count: wrap(
            u ? members.reduce((n, c) => n + host.cgroups.pids(c.cgroupPath).length, 0) : undefined,
          ),
        },
        containers: members.map(container),
      },
    };
  };
  return { container, sandbox };
}

export function statsHandlers(
  host: Host,
  stats: ReturnType<typeof statsReader> = statsReader(host),
): Record<string, Handler> {
  return {
    ContainerStats: async (req) => {
      const c = await quickRefresh(host, findContainer(host, req.container_id));
      return { stats: stats.container(c) };
    },

    ListContainerStats: async (req) => {
      const f = req.filter ?? {};
      const all = await filteredContainers(host, f);
      // Like containerd: the containers that have a cgroup (created or running).
      return {
        stats: all.filter((c) => c.status === "running" || c.status === "created")
          .map((c) => stats.container(c)),
      };
    },

    PodSandboxStats: (req) => {
      const p = findSandbox(host, req.pod_sandbox_id);
      return Promise.resolve({ stats: stats.sandbox(p) });
    },

    ListPodSandboxStats: (req) => {
      const f = req.filter ?? {};
      const items = criPods(host).filter((p) =>
        (!f.id || p.name.startsWith(f.id)) && labelsMatch(p.labels, f.label_selector)
      );
      return Promise.resolve({ stats: items.map((p) => stats.sandbox(p)) });
    },
  };
}
