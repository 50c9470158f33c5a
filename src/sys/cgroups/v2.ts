/** cgroup v2: one unified hierarchy, controllers enabled top-down. */
import { sharesToWeight } from "../../base/quantity.ts";
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
  removeTree,
  workingSet,
  writeFile,
} from "./mod.ts";

const WANTED = ["cpu", "memory", "pids"];

export class CgroupV2Manager implements CgroupManager {
  readonly version = 2 as const;

  constructor(readonly root: string) {}

  dirs(rel: string): string[] {
    assertRelPath(rel);
    const d = `${this.root}/${rel}`;
    try {
      return Deno.statSync(d).isDirectory ? [d] : [];
    } catch {
      return [];
    }
  }

  /** Enables the wanted controllers in every ancestor's subtree_control. */
  #enableControllers(rel: string): void {
    const parts = rel.split("/");
    let dir = this.root;
    for (let i = 0; i < parts.length; i++) {
      const available = (readText(`${dir}/cgroup.controllers`) ?? "").split(/\s+/);
      const enabled = (readText(`${dir}/cgroup.subtree_control`) ?? "").split(/\s+/);
      const missing = WANTED.filter((c) => available.includes(c) && !enabled.includes(c));
      if (missing.length > 0) {
        writeFile(
          `${dir}/cgroup.subtree_control`,
          missing.map((c) => `+${c}`).join(" "),
        );
      }
      dir = `${dir}/${parts[i]}`;
      Deno.mkdirSync(dir, { recursive: true });
    }
  }

  apply(rel: string, limits: CgroupLimits): void {
    assertRelPath(rel);
    this.#enableControllers(rel);
    const d = `${this.root}/${rel}`;
    if (limits.cpuQuota !== undefined || limits.cpuPeriod !== undefined) {
      const period = limits.cpuPeriod ?? 100_000;
      const quota = limits.cpuQuota !== undefined && limits.cpuQuota > 0
        ? String(limits.cpuQuota)
        : "max";
      writeFile(`${d}/cpu.max`, `${quota} ${period}`);
    }
    if (limits.cpuShares !== undefined) {
      writeFile(`${d}/cpu.weight`, String(sharesToWeight(limits.cpuShares)));
    }
    if (limits.memoryLimit !== undefined) {
      writeFile(`${d}/memory.max`, limits.memoryLimit > 0 ? String(limits.memoryLimit) : "max");
    }
    if (limits.pidsLimit !== undefined) {
      writeFile(`${d}/pids.max`, limits.pidsLimit > 0 ? String(limits.pidsLimit) : "max");
    }
  }

  read(rel: string): CgroupLimits {
    assertRelPath(rel);
    const d = `${this.root}/${rel}`;
    const out: CgroupLimits = {};
    const max = readText(`${d}/cpu.max`);
    if (max) {
      const [q, p] = max.trim().split(/\s+/);
      if (q !== "max") out.cpuQuota = Number(q);
      out.cpuPeriod = Number(p);
    }
    out.cpuWeight = readNumber(`${d}/cpu.weight`);
    out.memoryLimit = readNumber(`${d}/memory.max`);
    out.pidsLimit = readNumber(`${d}/pids.max`);
    return out;
  }

  remove(rel: string): void {
    assertRelPath(rel);
    removeTree(`${this.root}/${rel}`);
  }

  removeChildren(rel: string): void {
    assertRelPath(rel);
    removeTree(`${this.root}/${rel}`, { keepRoot: true });
  }

  usage(rel: string): CgroupUsage | undefined {
    assertRelPath(rel);
    if (this.dirs(rel).length === 0) return undefined;
    const d = `${this.root}/${rel}`;
    const cpu = parseKeyValues(readText(`${d}/cpu.stat`));
    const stat = parseKeyValues(readText(`${d}/memory.stat`));
    const memoryBytes = readNumber(`${d}/memory.current`);
    const usec = cpu.get("usage_usec");
    return {
      cpuNs: usec === undefined ? undefined : usec * 1000,
      memoryBytes,
      workingSetBytes: workingSet(memoryBytes, stat.get("inactive_file")),
      rssBytes: stat.get("anon"),
      pageFaults: stat.get("pgfault"),
      majorPageFaults: stat.get("pgmajfault"),
      memoryLimit: readNumber(`${d}/memory.max`),
      oomKills: parseKeyValues(readText(`${d}/memory.events`)).get("oom_kill"),
    };
  }

  ownProcsFile(procSelfCgroup: string): string | undefined {
    const line = cgroupLines(procSelfCgroup).find(([id, c]) => id === "0" && c.join() === "");
    return line ? procsFileBelow(this.root, line[2]) : undefined;
  }

  pids(rel: string): number[] {
    assertRelPath(rel);
    const t = readText(`${this.root}/${rel}/cgroup.procs`);
    return t ? parseProcs(t) : [];
  }
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
