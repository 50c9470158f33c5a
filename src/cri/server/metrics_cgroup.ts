/**
 * One cgroup's counters as cAdvisor reads them, for ListPodSandboxMetrics
 * (server/metrics.ts): CPU (user, system, CFS throttling), memory (cache,
 * rss, mapped file, swap, failcnt, peak, page faults), OOM kills, the
 * limits in force (the `container_spec_*` figures), pids and block I/O per
 * device, from cgroup v1 (one hierarchy per controller) or v2 (one tree).
 * The roots come from the host's cgroup manager, so unit tests point them
 * at a fake tree.
 */
import { type CgroupManager, parseKeyValues, readOptional } from "../../sys/cgroups/mod.ts";
import { CgroupV1Manager } from "../../sys/cgroups/v1.ts";
import { CgroupV2Manager } from "../../sys/cgroups/v2.ts";

export interface BlockIo {
  major: number;
  minor: number;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
}

/** A cgroup's counters; a field is absent where its controller or file is. */
export interface CgroupSample {
  cpuUsageNs?: number;
  cpuUserNs?: number;
  cpuSystemNs?: number;
  cfsPeriods?: number;
  cfsThrottledPeriods?: number;
  cfsThrottledNs?: number;
  memoryUsage?: number;
  memoryMaxUsage?: number;
  memoryWorkingSet?: number;
  memoryCache?: number;
  memoryRss?: number;
  memoryMappedFile?: number;
  memorySwap?: number;
  memoryFailcnt?: number;
  /** Page faults of the cgroup alone and of its whole subtree (cAdvisor's scopes). */
  pgfault?: { container: number; hierarchy: number };
  pgmajfault?: { container: number; hierarchy: number };
  oomKills?: number;
  /** Limits: undefined where none is set. */
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimit?: number;
  memoryReservation?: number;
  memorySwapLimit?: number;
  pidsCurrent?: number;
  pidsMax?: number;
  io: BlockIo[];
}

/** Where each controller's directory for `rel` is: v1 per controller, v2 one tree. */
export type CgroupDirs = (controller: string) => string | undefined;

/** The directories of `rel` under the manager's roots; undefined for a manager without files. */
export function cgroupDirs(cg: CgroupManager, rel: string): CgroupDirs | undefined {
  if (cg instanceof CgroupV2Manager) return () => `${cg.root}/${rel}`;
  if (cg instanceof CgroupV1Manager) {
    return (c) => cg.mounts[c] === undefined ? undefined : `${cg.mounts[c]}/${rel}`;
  }
  return undefined;
}

/** Above this a "limit" is the kernel's "none" (cAdvisor reports 0 for it, as here). */
const UNLIMITED = 2 ** 62;

function num(path: string | undefined): number | undefined {
  if (path === undefined) return undefined;
  const t = readOptional(path)?.trim();
  if (t === undefined || t === "" || t === "max" || !/^-?\d+$/.test(t)) return undefined;
  return Number(t);
}

function limit(n: number | undefined): number | undefined {
  return n === undefined || n < 0 || n >= UNLIMITED ? undefined : n;
}

function exists(path: string | undefined): boolean {
  if (path === undefined) return false;
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The counters of the cgroup whose directories `dir` gives; undefined when it does not exist. */
export function readCgroupSample(version: 1 | 2, dir: CgroupDirs): CgroupSample | undefined {
  return version === 2 ? readV2(dir("")) : readV1(dir);
}

function readV1(dir: CgroupDirs): CgroupSample | undefined {
  const acct = dir("cpuacct");
  const cpu = dir("cpu");
  const mem = dir("memory");
  const pids = dir("pids");
  const blkio = dir("blkio");
  if (![acct, cpu, mem, pids].some(exists)) return undefined;
  const out: CgroupSample = { io: [] };
  if (exists(acct)) {
    out.cpuUsageNs = num(`${acct}/cpuacct.usage`);
    out.cpuUserNs = num(`${acct}/cpuacct.usage_user`);
    out.cpuSystemNs = num(`${acct}/cpuacct.usage_sys`);
    if (out.cpuUserNs === undefined || out.cpuSystemNs === undefined) {
      // Older kernels: cpuacct.stat in USER_HZ (100 a second) ticks.
      const st = parseKeyValues(readOptional(`${acct}/cpuacct.stat`));
      const tick = 1e9 / 100;
      if (st.has("user")) out.cpuUserNs = st.get("user")! * tick;
      if (st.has("system")) out.cpuSystemNs = st.get("system")! * tick;
    }
  }
  if (exists(cpu)) {
    const st = parseKeyValues(readOptional(`${cpu}/cpu.stat`));
    out.cfsPeriods = st.get("nr_periods");
    out.cfsThrottledPeriods = st.get("nr_throttled");
    out.cfsThrottledNs = st.get("throttled_time");
    out.cpuPeriod = num(`${cpu}/cpu.cfs_period_us`);
    out.cpuQuota = limit(num(`${cpu}/cpu.cfs_quota_us`));
    out.cpuShares = num(`${cpu}/cpu.shares`);
  }
  if (exists(mem)) {
    const st = parseKeyValues(readOptional(`${mem}/memory.stat`));
    out.memoryUsage = num(`${mem}/memory.usage_in_bytes`);
    out.memoryMaxUsage = num(`${mem}/memory.max_usage_in_bytes`);
    out.memoryFailcnt = num(`${mem}/memory.failcnt`);
    out.memoryCache = st.get("total_cache");
    out.memoryRss = st.get("total_rss");
    out.memoryMappedFile = st.get("total_mapped_file");
    out.memorySwap = st.get("total_swap") ?? 0;
    if (out.memoryUsage !== undefined) {
      out.memoryWorkingSet = Math.max(0, out.memoryUsage - (st.get("total_inactive_file") ?? 0));
    }
    const pair = (own: string) =>
      st.has(own)
        ? { container: st.get(own)!, hierarchy: st.get(`total_${own}`) ?? st.get(own)! }
        : undefined;
    out.pgfault = pair("pgfault");
    out.pgmajfault = pair("pgmajfault");
    out.oomKills = parseKeyValues(readOptional(`${mem}/memory.oom_control`)).get("oom_kill");
    out.memoryLimit = limit(num(`${mem}/memory.limit_in_bytes`));
    out.memoryReservation = limit(num(`${mem}/memory.soft_limit_in_bytes`));
    out.memorySwapLimit = limit(num(`${mem}/memory.memsw.limit_in_bytes`));
  }
  if (exists(pids)) {
    out.pidsCurrent = num(`${pids}/pids.current`);
    out.pidsMax = limit(num(`${pids}/pids.max`));
  }
  if (exists(blkio)) {
    // The CFQ files when the scheduler keeps them, else the throttle layer's (always there).
    const pick = (name: string) => {
      const own = readOptional(`${blkio}/blkio.${name}_recursive`);
      return own && /\d+:\d+ /.test(own)
        ? own
        : readOptional(`${blkio}/blkio.throttle.${name}_recursive`);
    };
    out.io = blkioDevices(pick("io_service_bytes"), pick("io_serviced"));
  }
  return out;
}

/** v1's `MAJ:MIN Read N` / `MAJ:MIN Write N` lines of bytes and of operations, per device. */
function blkioDevices(bytes: string | undefined, ops: string | undefined): BlockIo[] {
  const devs = new Map<string, BlockIo>();
  const add = (text: string | undefined, read: keyof BlockIo, write: keyof BlockIo) => {
    for (const line of (text ?? "").split("\n")) {
      const m = /^(\d+):(\d+) (Read|Write) (\d+)$/.exec(line.trim());
      if (!m) continue;
      const key = `${m[1]}:${m[2]}`;
      const d = devs.get(key) ??
        { major: +m[1], minor: +m[2], readBytes: 0, writeBytes: 0, reads: 0, writes: 0 };
      d[m[3] === "Read" ? read : write] = Number(m[4]);
      devs.set(key, d);
    }
  };
  add(bytes, "readBytes", "writeBytes");
  add(ops, "reads", "writes");
  return [...devs.values()];
}

function readV2(d: string | undefined): CgroupSample | undefined {
  if (!exists(d)) return undefined;
  const out: CgroupSample = { io: [] };
  const cpu = parseKeyValues(readOptional(`${d}/cpu.stat`));
  const us = (k: string) => cpu.has(k) ? cpu.get(k)! * 1000 : undefined;
  out.cpuUsageNs = us("usage_usec");
  out.cpuUserNs = us("user_usec");
  out.cpuSystemNs = us("system_usec");
  out.cfsPeriods = cpu.get("nr_periods");
  out.cfsThrottledPeriods = cpu.get("nr_throttled");
  out.cfsThrottledNs = us("throttled_usec");
  const max = readOptional(`${d}/cpu.max`)?.trim().split(/\s+/);
  if (max && max.length === 2) {
    out.cpuQuota = max[0] === "max" ? undefined : Number(max[0]);
    out.cpuPeriod = Number(max[1]);
  }
  const weight = num(`${d}/cpu.weight`);
  // runc maps shares [2, 262144] onto weight [1, 10000]; cAdvisor maps it back.
  if (weight !== undefined) out.cpuShares = Math.round(2 + (weight - 1) * 262142 / 9999);
  const st = parseKeyValues(readOptional(`${d}/memory.stat`));
  const events = parseKeyValues(readOptional(`${d}/memory.events`));
  out.memoryUsage = num(`${d}/memory.current`);
  out.memoryMaxUsage = num(`${d}/memory.peak`);
  out.memoryCache = st.get("file");
  out.memoryRss = st.get("anon");
  out.memoryMappedFile = st.get("file_mapped");
  out.memorySwap = num(`${d}/memory.swap.current`) ?? 0;
  out.memoryFailcnt = events.get("max");
  if (out.memoryUsage !== undefined) {
    out.memoryWorkingSet = Math.max(0, out.memoryUsage - (st.get("inactive_file") ?? 0));
  }
  // v2's memory.stat counts the whole subtree: both scopes are the same figure.
  const both = (k: string) =>
    st.has(k) ? { container: st.get(k)!, hierarchy: st.get(k)! } : undefined;
  out.pgfault = both("pgfault");
  out.pgmajfault = both("pgmajfault");
  out.oomKills = events.get("oom_kill");
  out.memoryLimit = limit(num(`${d}/memory.max`));
  out.memoryReservation = limit(num(`${d}/memory.low`));
  out.memorySwapLimit = limit(num(`${d}/memory.swap.max`));
  out.pidsCurrent = num(`${d}/pids.current`);
  out.pidsMax = limit(num(`${d}/pids.max`));
  for (const line of (readOptional(`${d}/io.stat`) ?? "").split("\n")) {
    const m = /^(\d+):(\d+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const kv = new Map(
      m[3].split(/\s+/).map((p) => p.split("=")).map(([k, v]) => [k, Number(v)] as const),
    );
    out.io.push({
      major: +m[1],
      minor: +m[2],
      readBytes: kv.get("rbytes") ?? 0,
      writeBytes: kv.get("wbytes") ?? 0,
      reads: kv.get("rios") ?? 0,
      writes: kv.get("wios") ?? 0,
    });
  }
  return out;
}

/** A PSI file's `some` and `full` lines, in the CRI's PsiStats shape (total in µs). */
export function parsePressure(text: string | undefined) {
  const line = (kind: string) => {
    const m = new RegExp(
      `^${kind} avg10=([\\d.]+) avg60=([\\d.]+) avg300=([\\d.]+) total=(\\d+)$`,
      "m",
    ).exec(text ?? "");
    return m ? { Total: m[4], Avg10: +m[1], Avg60: +m[2], Avg300: +m[3] } : undefined;
  };
  const some = line("some");
  // cpu.pressure has no `full` line on kernels before 5.13: all zero, as the kernel means.
  const full = line("full") ?? (some ? { Total: "0", Avg10: 0, Avg60: 0, Avg300: 0 } : undefined);
  return some && full ? { Full: full, Some: some } : null;
}

/**
 * The cgroup v2 directory of `rel`, where PSI lives: on v2 the tree itself;
 * on a v1 host, the hybrid's cgroup2 mount (the hierarchy with
 * cgroup.controllers), where runtimes and the kubelet mirror their cgroups.
 */
export function unifiedDir(cg: CgroupManager, rel: string): string | undefined {
  if (cg instanceof CgroupV2Manager) return `${cg.root}/${rel}`;
  if (cg instanceof CgroupV1Manager) {
    const root = cg.otherHierarchies.find((h) => {
      try {
        return Deno.statSync(`${h}/cgroup.controllers`).isFile;
      } catch {
        return false;
      }
    });
    return root === undefined ? undefined : `${root}/${rel}`;
  }
  return undefined;
}

/** `rel`'s CPU, memory and I/O pressure (null each where the kernel or cgroup has none). */
export function cgroupPressure(cg: CgroupManager, rel: string) {
  const d = unifiedDir(cg, rel);
  const read = (k: string) =>
    d === undefined ? null : parsePressure(readOptional(`${d}/${k}.pressure`));
  return { cpu: read("cpu"), memory: read("memory"), io: read("io") };
}
