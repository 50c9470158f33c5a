/** Pure parts of a pod's plan: its cgroup limits, its ports, and where in its manifest a thing is. */
import type { PortMapping } from "../../net/cni.ts";
import type { ContainerSpec } from "../../spec/container.ts";
import type { LoadedPod, PodSpec } from "../../spec/pod.ts";
import {
  milliCpuToQuota,
  milliCpuToShares,
  parseQuantity,
  quantityMilli,
  quantityValue,
} from "../../spec/quantity.ts";
import type { CgroupLimits } from "../../sys/cgroups/mod.ts";
import { portMappings } from "../container.ts";

/**
 * Pod cgroup limits as the kubelet sets them: the sum of the containers'
 * limits, for each resource that every container limits; shares from the sum
 * of requests.
 */
export function podLimits(containers: ContainerSpec[]): CgroupLimits {
  const out: CgroupLimits = {};
  const milli = (q: string | number | undefined) =>
    q === undefined ? undefined : Number(quantityMilli(parseQuantity(q)));
  const bytes = (q: string | number | undefined) =>
    q === undefined ? undefined : Number(quantityValue(parseQuantity(q)));
  const cpu = containers.map((c) => milli(c.resources.limits?.cpu));
  if (cpu.length > 0 && cpu.every((m) => m !== undefined && m > 0)) {
    out.cpuQuota = milliCpuToQuota(cpu.reduce((a, b) => a! + b!, 0)!);
    out.cpuPeriod = 100_000;
  }
  const mem = containers.map((c) => bytes(c.resources.limits?.memory));
  if (mem.length > 0 && mem.every((m) => m !== undefined && m > 0)) {
    out.memoryLimit = mem.reduce((a, b) => a! + b!, 0);
  }
  const req = containers.map((c) =>
    milli(c.resources.requests?.cpu ?? c.resources.limits?.cpu) ?? 0
  );
  out.cpuShares = milliCpuToShares(req.reduce((a, b) => a + b, 0));
  return out;
}

export function podPortMappings(loaded: LoadedPod): PortMapping[] {
  return loaded.spec.containers.flatMap((c) => portMappings(c.spec.ports));
}

/** Whether the pod's IP goes into an env var or a volume file (downward API). */
export function usesPodIP(spec: PodSpec): boolean {
  const ip = (ref: string | undefined) => ref === "status.podIP" || ref === "status.podIPs";
  return [...spec.initContainers, ...spec.containers].some((c) =>
    c.spec.env.some((e) => ip(e.fieldRef))
  ) || Object.values(spec.fileVolumes).some((files) => files.some((f) => ip(f.fieldRef)));
}

export function findPort(loaded: LoadedPod, hostPort: number): (string | number)[] {
  for (const [i, c] of loaded.spec.containers.entries()) {
    const j = c.spec.ports.findIndex((p) => p.hostPort === hostPort);
    if (j >= 0) return ["spec", "containers", i, "ports", j, "hostPort"];
  }
  return ["metadata", "name"];
}

export function locText(
  x: { source: { at(p: (string | number)[]): { file: string; line?: number; column?: number } } },
  path: (string | number)[],
): string {
  const at = x.source.at(path);
  return `${at.file}${at.line ? `:${at.line}:${at.column}` : ""}`;
}
