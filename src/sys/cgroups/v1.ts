/** cgroup v1: one hierarchy per controller (cpu, memory, pids, ...). */
import {
  assertRelPath,
  type CgroupLimits,
  cgroupLines,
  type CgroupManager,
  type CgroupUsage,
  parseKeyValues,
  parseProcs,
  procsFileBelow,
  readNumber,
  readOptional,
  removeTree,
  workingSet,
  writeFile,
} from "./mod.ts";

/** The kernel's "no limit" for memory.limit_in_bytes (PAGE_COUNTER_MAX pages, rounded). */
const V1_MEMORY_UNLIMITED = 9223372036854771712;

export class CgroupV1Manager implements CgroupManager {
  readonly version = 1 as const;

  /**
   * `mounts` maps a controller name (cpu, memory, pids, ...) to its hierarchy
   * root; `otherHierarchies` are the rest (name=systemd, a hybrid host's
   * unified/), which runtimes also create directories in and rkl must clean.
   */
  constructor(readonly mounts: Record<string, string>, readonly otherHierarchies: string[] = []) {}

  #dir(controller: string, rel: string): string | undefined {
    const root = this.mounts[controller];
    return root === undefined ? undefined : `${root}/${rel}`;
  }

  /** All distinct hierarchies (cpu and cpuacct may share one). */
  #roots(): string[] {
    return [...new Set([...Object.values(this.mounts), ...this.otherHierarchies])];
  }

  dirs(rel: string): string[] {
    assertRelPath(rel);
    return this.#roots().map((r) => `${r}/${rel}`).filter((d) => {
      try {
        return Deno.statSync(d).isDirectory;
      } catch {
        return false;
      }
    });
  }

  apply(rel: string, limits: CgroupLimits): void {
    assertRelPath(rel);
    for (const c of ["cpu", "memory", "pids"]) {
      const d = this.#dir(c, rel);
      if (d) Deno.mkdirSync(d, { recursive: true });
    }
    const cpu = this.#dir("cpu", rel);
    if (cpu) {
      if (limits.cpuPeriod !== undefined) {
        writeFile(`${cpu}/cpu.cfs_period_us`, String(limits.cpuPeriod));
      }
      if (limits.cpuQuota !== undefined) {
        writeFile(`${cpu}/cpu.cfs_quota_us`, String(limits.cpuQuota > 0 ? limits.cpuQuota : -1));
      }
      if (limits.cpuShares !== undefined) writeFile(`${cpu}/cpu.shares`, String(limits.cpuShares));
    }
    const mem = this.#dir("memory", rel);
    if (mem && limits.memoryLimit !== undefined) {
      writeFile(
        `${mem}/memory.limit_in_bytes`,
        String(limits.memoryLimit > 0 ? limits.memoryLimit : -1),
      );
    }
    const pids = this.#dir("pids", rel);
    if (pids && limits.pidsLimit !== undefined) {
      writeFile(`${pids}/pids.max`, limits.pidsLimit > 0 ? String(limits.pidsLimit) : "max");
    }
  }

  read(rel: string): CgroupLimits {
    assertRelPath(rel);
    const out: CgroupLimits = {};
    const cpu = this.#dir("cpu", rel);
    if (cpu) {
      const quota = readNumber(`${cpu}/cpu.cfs_quota_us`);
      if (quota !== undefined && quota > 0) out.cpuQuota = quota;
      out.cpuPeriod = readNumber(`${cpu}/cpu.cfs_period_us`);
      out.cpuShares = readNumber(`${cpu}/cpu.shares`);
    }
    const mem = this.#dir("memory", rel);
    if (mem) {
      const m = readNumber(`${mem}/memory.limit_in_bytes`);
      if (m !== undefined && m < V1_MEMORY_UNLIMITED) out.memoryLimit = m;
    }
    const pids = this.#dir("pids", rel);
    if (pids) out.pidsLimit = readNumber(`${pids}/pids.max`);
    return out;
  }

  remove(rel: string): void {
    assertRelPath(rel);
    for (const r of this.#roots()) removeTree(`${r}/${rel}`);
  }

  removeChildren(rel: string): void {
    assertRelPath(rel);
    for (const r of this.#roots()) removeTree(`${r}/${rel}`, { keepRoot: true });
  }

  usage(rel: string): CgroupUsage | undefined {
    assertRelPath(rel);
    if (this.dirs(rel).length === 0) return undefined;
    const out: CgroupUsage = {};
    const acct = this.#dir("cpuacct", rel);
    if (acct) out.cpuNs = readNumber(`${acct}/cpuacct.usage`);
    const mem = this.#dir("memory", rel);
    if (mem) {
      out.memoryBytes = readNumber(`${mem}/memory.usage_in_bytes`);
      const stat = parseKeyValues(readOptional(`${mem}/memory.stat`));
      out.workingSetBytes = workingSet(out.memoryBytes, stat.get("total_inactive_file"));
      out.rssBytes = stat.get("total_rss");
      out.pageFaults = stat.get("total_pgfault");
      out.majorPageFaults = stat.get("total_pgmajfault");
      const limit = readNumber(`${mem}/memory.limit_in_bytes`);
      if (limit !== undefined && limit < V1_MEMORY_UNLIMITED) out.memoryLimit = limit;
      out.oomKills = parseKeyValues(readOptional(`${mem}/memory.oom_control`)).get("oom_kill");
    }
    return out;
  }

  ownProcsFile(procSelfCgroup: string): string | undefined {
    // Any controller hierarchy will do: the lock a move takes is host-wide.
    for (const [, controllers, path] of cgroupLines(procSelfCgroup)) {
      const root = controllers.map((c) => this.mounts[c]).find((r) => r !== undefined);
      if (root !== undefined) return procsFileBelow(root, path);
    }
    return undefined;
  }

  pids(rel: string): number[] {
    assertRelPath(rel);
    const d = this.#dir("pids", rel) ?? this.#dir("memory", rel);
    if (!d) return [];
    try {
      return parseProcs(Deno.readTextFileSync(`${d}/cgroup.procs`));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }
}
