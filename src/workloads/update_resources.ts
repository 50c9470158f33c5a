/**
 * Changing a running container's CPU and memory limits: the cgroup is
 * written and the record updated together, under the store lock, so that a
 * status read afterwards shows what the kernel enforces. The CRI's
 * UpdateContainerResources calls this; the daemon and CLI can too.
 */
import type { Host } from "./host.ts";
import { type ContainerRecord, getContainer, quickRefresh } from "./container.ts";
import { ConflictError, SpecError } from "../errors.ts";
import { writeAtomic } from "../store/store.ts";
import type { OciConfig } from "../oci/spec.ts";

/** New limits; a field left out keeps its value. */
export interface ResourceUpdate {
  /** CFS period, µs (1000 to 1000000). */
  cpuPeriod?: number;
  /** CFS quota per period, µs. */
  cpuQuota?: number;
  /** cgroup v1 cpu.shares (cpu.weight on v2). */
  cpuShares?: number;
  /** Bytes, at least 4 MiB. */
  memoryLimit?: number;
}

const MIN_MEMORY = 4 * 1024 * 1024;

/**
 * The first field of `update` the kernel would refuse, as `{ path, detail }`
 * (the path is the ResourceUpdate field; each front end names it its own way).
 */
export function resourceUpdateError(
  update: ResourceUpdate,
): { path: keyof ResourceUpdate; detail: string } | undefined {
  for (const [k, v] of Object.entries(update) as [keyof ResourceUpdate, number | undefined][]) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) {
      return { path: k, detail: `${String(v)} is not a positive count` };
    }
  }
  const { cpuPeriod: period, memoryLimit: memory } = update;
  if (period !== undefined && (period < 1000 || period > 1_000_000)) {
    return { path: "cpuPeriod", detail: "must be from 1000 to 1000000 µs" };
  }
  if (memory !== undefined && memory < MIN_MEMORY) {
    return { path: "memoryLimit", detail: "must be at least 4 MiB" };
  }
  return undefined;
}

/**
 * Writes `update` to container `name`'s cgroup and keeps it in its record.
 * A bad value is a SpecError whose `path` is the ResourceUpdate field; an
 * exited container (no cgroup to write) a ConflictError.
 */
export async function updateContainerResources(
  host: Host,
  name: string,
  update: ResourceUpdate,
): Promise<ContainerRecord> {
  const bad = resourceUpdateError(update);
  if (bad) {
    throw new SpecError({ file: `container ${JSON.stringify(name)}`, path: bad.path }, bad.detail);
  }
  const set = Object.fromEntries(
    Object.entries(update).filter(([, v]) => v !== undefined),
  ) as ResourceUpdate;
  return await host.store.withLock(async () => {
    const now = await quickRefresh(host, getContainer(host, name));
    if (now.status === "exited") {
      throw new ConflictError(
        `Cannot update the resources of container ${JSON.stringify(name)}: it has exited`,
      );
    }
    if (now.deferred) writeConfigLimits(host, now.dirs.config, set);
    else host.cgroups.apply(now.cgroupPath, set);
    const rec = { ...now, limits: { ...now.limits, ...set } };
    host.store.put("containers", rec);
    return rec;
  });
}

/**
 * A container not launched yet (ContainerRecord.deferred) has no cgroup:
 * the limits go into its config.json, which the runtime's create reads at
 * the start.
 */
function writeConfigLimits(host: Host, path: string, set: ResourceUpdate): void {
  const config = JSON.parse(host.fs.readTextFile(path)) as OciConfig;
  const r = (config.linux ??= {} as OciConfig["linux"]).resources ??= {};
  if (set.cpuPeriod !== undefined) (r.cpu ??= {}).period = set.cpuPeriod;
  if (set.cpuQuota !== undefined) (r.cpu ??= {}).quota = set.cpuQuota;
  if (set.cpuShares !== undefined) (r.cpu ??= {}).shares = set.cpuShares;
  if (set.memoryLimit !== undefined) (r.memory ??= {}).limit = set.memoryLimit;
  writeAtomic(path, JSON.stringify(config, null, 2) + "\n", host.fs);
}
