/**
 * `rkl stats`: what each container uses, read as `docker stats` reads it.
 *
 * - CPU %: the container's cgroup CPU time over the host's CPU time
 *   (/proc/stat), both as deltas between two samples, times the online CPUs,
 *   times 100 (docker cli's calculateCPUPercentUnix).
 * - MEM USAGE: the cgroup's usage less its inactive file pages
 *   (v1 memory.usage_in_bytes − total_inactive_file; v2 memory.current −
 *   inactive_file); LIMIT: its memory limit, or the host's MemTotal.
 * - NET I/O: rx/tx bytes of every interface but `lo` in the container's
 *   network namespace (/proc/PID/net/dev of its init process).
 * - BLOCK I/O: v1 blkio.throttle.io_service_bytes_recursive Read/Write; v2
 *   io.stat rbytes/wbytes, summed over devices.
 * - PIDS: pids.current.
 *
 * Reading is split from parsing: the parsers are pure, and
 * {@linkcode readCgroupSample} takes a file reader, so a unit test points it
 * at a fake cgroupfs tree of either version.
 */
import type { CgroupManager } from "../sys/cgroups/mod.ts";
import { type HostFs, realFs } from "../sys/fs.ts";
import type { ContainerRecord } from "./container/types.ts";

/** Where the controllers are: a v1 controller → mount map, or the v2 root. */
export type CgroupLayout =
  | { version: 1; mounts: Record<string, string> }
  | { version: 2; root: string };

/** The layout behind a manager (CgroupV1Manager.mounts, CgroupV2Manager.root). */
export function layoutOf(m: CgroupManager): CgroupLayout {
  const any = m as unknown as { mounts?: Record<string, string>; root?: string };
  if (m.version === 1) return { version: 1, mounts: any.mounts ?? {} };
  return { version: 2, root: any.root ?? "/sys/fs/cgroup" };
}

/** A file's text, or undefined when it cannot be read. */
export type ReadText = (path: string) => string | undefined;

/** A reader over a file-system port (a FakeHost's tree, or the real one). */
export function readTextFrom(fs: Pick<HostFs, "readTextFile">): ReadText {
  return (path) => {
    try {
      return fs.readTextFile(path);
    } catch {
      return undefined;
    }
  };
}

/** The reader of the real file system (the default where no host is at hand). */
export const readTextOrUndefined: ReadText = readTextFrom(realFs);

/** One reading of one cgroup. Each field absent where the controller is not there. */
export interface CgroupSample {
  cpuNs?: number;
  /** Usage less inactive file pages (docker's "no cache" usage). */
  memoryBytes?: number;
  /** The cgroup's own limit; undefined for none. */
  memoryLimit?: number;
  blkRead?: number;
  blkWrite?: number;
  pids?: number;
  /** The freezer's state: true once frozen (v1 FROZEN, v2 cgroup.freeze 1). */
  frozen?: boolean;
}

function num(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (t === undefined || t === "" || t === "max" || !/^\d+$/.test(t)) return undefined;
  return Number(t);
}

/** `key value` lines as numbers. */
export function keyValues(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** v1 blkio `MAJ:MIN Op bytes` lines: Read and Write summed over devices. */
export function parseBlkioV1(text: string | undefined): { read: number; write: number } {
  let read = 0, write = 0;
  for (const line of (text ?? "").split("\n")) {
    const [dev, op, v] = line.trim().split(/\s+/);
    if (!dev?.includes(":") || !/^\d+$/.test(v ?? "")) continue;
    if (op === "Read") read += Number(v);
    else if (op === "Write") write += Number(v);
  }
  return { read, write };
}

/** v2 io.stat `MAJ:MIN rbytes=N wbytes=N ...` lines, summed over devices. */
export function parseIoStatV2(text: string | undefined): { read: number; write: number } {
  let read = 0, write = 0;
  for (const line of (text ?? "").split("\n")) {
    for (const kv of line.trim().split(/\s+/).slice(1)) {
      const [k, v] = kv.split("=");
      if (!/^\d+$/.test(v ?? "")) continue;
      if (k === "rbytes") read += Number(v);
      else if (k === "wbytes") write += Number(v);
    }
  }
  return { read, write };
}

/** The kernel's "no limit" for v1 memory.limit_in_bytes, and anything near it. */
const V1_UNLIMITED = 2 ** 62;

function noCache(usage: number | undefined, inactive: number | undefined): number | undefined {
  if (usage === undefined) return undefined;
  return inactive !== undefined && inactive < usage ? usage - inactive : usage;
}

/** Reads one cgroup (`rel` below the hierarchy roots) with `read`; undefined when it is gone. */
export function readCgroupSample(
  layout: CgroupLayout,
  rel: string,
  read: ReadText = readTextOrUndefined,
): CgroupSample | undefined {
  if (rel.startsWith("/") || rel.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new TypeError(`cgroup path ${JSON.stringify(rel)} must be relative and plain`);
  }
  if (layout.version === 2) {
    const d = `${layout.root}/${rel}`;
    const cpu = read(`${d}/cpu.stat`);
    const current = read(`${d}/memory.current`);
    const procs = read(`${d}/cgroup.procs`);
    if (cpu === undefined && current === undefined && procs === undefined) return undefined;
    const usec = keyValues(cpu).get("usage_usec");
    const stat = keyValues(read(`${d}/memory.stat`));
    const io = parseIoStatV2(read(`${d}/io.stat`));
    return {
      cpuNs: usec === undefined ? undefined : usec * 1000,
      memoryBytes: noCache(num(current), stat.get("inactive_file")),
      memoryLimit: num(read(`${d}/memory.max`)),
      blkRead: io.read,
      blkWrite: io.write,
      pids: num(read(`${d}/pids.current`)) ?? (procs?.split("\n").filter(Boolean).length),
      frozen: num(read(`${d}/cgroup.freeze`)) === 1,
    };
  }
  const dir = (c: string) =>
    layout.mounts[c] === undefined ? undefined : `${layout.mounts[c]}/${rel}`;
  const at = (c: string, file: string) => {
    const d = dir(c);
    return d === undefined ? undefined : read(`${d}/${file}`);
  };
  const cpu = at("cpuacct", "cpuacct.usage");
  const usage = at("memory", "memory.usage_in_bytes");
  if (cpu === undefined && usage === undefined) return undefined;
  const stat = keyValues(at("memory", "memory.stat"));
  const limit = num(at("memory", "memory.limit_in_bytes"));
  const blk = parseBlkioV1(
    at("blkio", "blkio.throttle.io_service_bytes_recursive") ??
      at("blkio", "blkio.throttle.io_service_bytes"),
  );
  const freezer = at("freezer", "freezer.state")?.trim();
  return {
    cpuNs: num(cpu),
    memoryBytes: noCache(num(usage), stat.get("total_inactive_file")),
    memoryLimit: limit !== undefined && limit < V1_UNLIMITED ? limit : undefined,
    blkRead: blk.read,
    blkWrite: blk.write,
    pids: num(at("pids", "pids.current")),
    frozen: freezer === "FROZEN" || freezer === "FREEZING",
  };
}

/** rx and tx bytes of every interface but `lo` in /proc/PID/net/dev text. */
export function parseNetDev(text: string | undefined): { rx: number; tx: number } {
  let rx = 0, tx = 0;
  for (const line of (text ?? "").split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "lo" || name === "") continue;
    const f = line.slice(colon + 1).trim().split(/\s+/);
    if (f.length < 9 || !/^\d+$/.test(f[0]) || !/^\d+$/.test(f[8])) continue;
    rx += Number(f[0]);
    tx += Number(f[8]);
  }
  return { rx, tx };
}

/** USER_HZ: /proc/stat counts in 1/100 s on every Linux architecture rkl runs on. */
const CLOCK_TICKS = 100;

/**
 * The host's CPU time in ns from /proc/stat's first `cpu` line (user, nice,
 * system, idle, iowait, irq, softirq: the sum docker takes), and the
 * number of `cpuN` lines (online CPUs).
 */
export function parseProcStat(text: string): { systemNs: number; onlineCpus: number } {
  let systemNs = 0, onlineCpus = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("cpu ")) {
      const f = line.trim().split(/\s+/).slice(1, 8).map(Number);
      systemNs = f.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0) * (1e9 / CLOCK_TICKS);
    } else if (/^cpu\d+ /.test(line)) onlineCpus++;
  }
  return { systemNs, onlineCpus: Math.max(1, onlineCpus) };
}

/** MemTotal of /proc/meminfo, bytes. */
export function parseMemTotal(text: string | undefined): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text ?? "");
  return m ? Number(m[1]) * 1024 : undefined;
}

/** One container's reading. */
export interface ContainerSample {
  name: string;
  id: string;
  /** The init process's start time: a restart in between makes an earlier sample useless. */
  pidStart?: number;
  cgroup?: CgroupSample;
  net?: { rx: number; tx: number };
  /** The host's CPU time and online CPUs when it was read. */
  systemNs: number;
  onlineCpus: number;
}

/** A `docker stats` row as numbers. */
export interface StatsRow {
  name: string;
  id: string;
  cpuPercent: number;
  memUsage: number;
  memLimit: number;
  memPercent: number;
  netRx: number;
  netTx: number;
  blockRead: number;
  blockWrite: number;
  pids: number;
  /** Seconds of CPU time used so far. */
  cpuSeconds: number;
}

/** docker's CPU %: cgroup CPU delta over host CPU delta × online CPUs × 100 (0 without a delta). */
export function cpuPercent(
  prev: { cpuNs?: number; systemNs: number } | undefined,
  cur: { cpuNs?: number; systemNs: number; onlineCpus: number },
): number {
  if (!prev || prev.cpuNs === undefined || cur.cpuNs === undefined) return 0;
  const cpuDelta = cur.cpuNs - prev.cpuNs;
  const systemDelta = cur.systemNs - prev.systemNs;
  if (systemDelta > 0 && cpuDelta > 0) return (cpuDelta / systemDelta) * cur.onlineCpus * 100;
  return 0;
}

/** The row for `cur`, with CPU % against `prev` (the same container's earlier sample). */
export function statsRow(
  prev: ContainerSample | undefined,
  cur: ContainerSample,
  hostMemory: number,
): StatsRow {
  const g = cur.cgroup;
  const memLimit = g?.memoryLimit !== undefined && g.memoryLimit < hostMemory
    ? g.memoryLimit
    : hostMemory;
  const memUsage = g?.memoryBytes ?? 0;
  return {
    name: cur.name,
    id: cur.id,
    cpuPercent: cpuPercent(
      prev ? { cpuNs: prev.cgroup?.cpuNs, systemNs: prev.systemNs } : undefined,
      {
        cpuNs: g?.cpuNs,
        systemNs: cur.systemNs,
        onlineCpus: cur.onlineCpus,
      },
    ),
    memUsage,
    memLimit,
    memPercent: memLimit > 0 ? memUsage / memLimit * 100 : 0,
    netRx: cur.net?.rx ?? 0,
    netTx: cur.net?.tx ?? 0,
    blockRead: g?.blkRead ?? 0,
    blockWrite: g?.blkWrite ?? 0,
    pids: g?.pids ?? 0,
    cpuSeconds: (g?.cpuNs ?? 0) / 1e9,
  };
}

/** What a sampler reads (the real files by default; tests give a fake tree). */
export interface SampleSource {
  layout: CgroupLayout;
  read?: ReadText;
  /** /proc (default "/proc"). */
  proc?: string;
}

/** Reads every container of `recs` (running ones have a pid for their network). */
export function sampleContainers(
  recs: Pick<ContainerRecord, "name" | "id" | "cgroupPath" | "pid" | "pidStart" | "status">[],
  source: SampleSource,
): { samples: ContainerSample[]; hostMemory: number } {
  const read = source.read ?? readTextOrUndefined;
  const proc = source.proc ?? "/proc";
  const { systemNs, onlineCpus } = parseProcStat(read(`${proc}/stat`) ?? "");
  const hostMemory = parseMemTotal(read(`${proc}/meminfo`)) ?? 0;
  const samples = recs.map((r) => {
    let cgroup: CgroupSample | undefined;
    try {
      cgroup = readCgroupSample(source.layout, r.cgroupPath, read);
    } catch { /* a bad path in a record: no numbers */ }
    const net = r.status === "running" && r.pid && r.pid > 0
      ? parseNetDev(read(`${proc}/${r.pid}/net/dev`))
      : undefined;
    return { name: r.name, id: r.id, pidStart: r.pidStart, cgroup, net, systemNs, onlineCpus };
  });
  return { samples, hostMemory };
}

// ------------------------------------------------------- the previous sample

/**
 * The last reading `rkl stats` took, kept in the run root (`stats.json`) so
 * that the next `--no-stream` has the earlier CPU reading it needs without
 * waiting for one, as docker's daemon keeps the previous reading for its
 * `precpu_stats`. Only what CPU % needs is kept.
 */
export interface StatsCache {
  /** When it was read, ms since the epoch. */
  at: number;
  systemNs: number;
  containers: Record<string, { cpuNs: number; pidStart?: number }>;
  /**
   * The readings before this one that are at most CACHE_MAX_AGE_MS older,
   * newest first: back-to-back `--no-stream` runs (each shorter than
   * CACHE_MIN_AGE_MS) find one old enough among them and need no wait.
   */
  earlier?: StatsCache[];
}

/** At most this many earlier readings are kept. */
export const CACHE_EARLIER = 8;

/** The kept readings, newest first (the reading, then its earlier ones). */
export function keptReadings(c: StatsCache | undefined): StatsCache[] {
  if (!c) return [];
  const { earlier = [], ...newest } = c;
  return [newest, ...earlier];
}

/** `now` to keep, with the readings of `kept` that are at most CACHE_MAX_AGE_MS older. */
export function withEarlier(now: StatsCache, kept: StatsCache | undefined): StatsCache {
  const earlier = keptReadings(kept)
    .filter((r) => r.at < now.at && now.at - r.at <= CACHE_MAX_AGE_MS)
    .slice(0, CACHE_EARLIER);
  return earlier.length > 0 ? { ...now, earlier } : now;
}

/** A reading is used from this old (a shorter delta is all noise)... */
export const CACHE_MIN_AGE_MS = 100;
/** ...to this old (docker's daemon reads every second: its precpu is about 1 s old). */
export const CACHE_MAX_AGE_MS = 2_000;

export function toCache(samples: ContainerSample[], at: number): StatsCache {
  const containers: StatsCache["containers"] = {};
  for (const s of samples) {
    if (s.cgroup?.cpuNs !== undefined) {
      containers[s.id] = { cpuNs: s.cgroup.cpuNs, pidStart: s.pidStart };
    }
  }
  return { at, systemNs: samples[0]?.systemNs ?? 0, containers };
}

/** The cache file's text, checked field by field; undefined when it is not one. */
export function parseCache(text: string | undefined): StatsCache | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text ?? "");
  } catch {
    return undefined;
  }
  const c = parseReading(v);
  if (!c) return undefined;
  const earlier = (v as { earlier?: unknown }).earlier;
  if (!Array.isArray(earlier)) return c;
  const kept = earlier.slice(0, CACHE_EARLIER).map(parseReading)
    .filter((r): r is StatsCache => r !== undefined);
  return kept.length > 0 ? { ...c, earlier: kept } : c;
}

function parseReading(v: unknown): StatsCache | undefined {
  const c = v as StatsCache;
  const finite = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n >= 0;
  if (typeof c !== "object" || c === null || !finite(c.at) || !finite(c.systemNs)) return undefined;
  if (typeof c.containers !== "object" || c.containers === null) return undefined;
  const containers: StatsCache["containers"] = {};
  for (const [id, e] of Object.entries(c.containers)) {
    if (typeof e !== "object" || e === null || !finite(e.cpuNs)) continue;
    containers[id] = { cpuNs: e.cpuNs, pidStart: finite(e.pidStart) ? e.pidStart : undefined };
  }
  return { at: c.at, systemNs: c.systemNs, containers };
}

/**
 * Earlier samples for `samples` from the cache, by name, when it is between
 * {@linkcode CACHE_MIN_AGE_MS} and {@linkcode CACHE_MAX_AGE_MS} old and
 * holds every container that has a CPU reading now, with the same init
 * process; else undefined (the caller then takes a second reading).
 */
export function previousFromCache(
  cache: StatsCache | undefined,
  samples: ContainerSample[],
  now: number,
): Map<string, ContainerSample> | undefined {
  if (!cache) return undefined;
  const age = now - cache.at;
  if (age < CACHE_MIN_AGE_MS || age > CACHE_MAX_AGE_MS) return undefined;
  const out = new Map<string, ContainerSample>();
  for (const s of samples) {
    if (s.cgroup?.cpuNs === undefined) continue;
    const e = cache.containers[s.id];
    if (!e || e.pidStart !== s.pidStart || e.cpuNs > s.cgroup.cpuNs) return undefined;
    out.set(s.name, { ...s, systemNs: cache.systemNs, cgroup: { cpuNs: e.cpuNs } });
  }
  return out;
}

// ---------------------------------------------------------------- formatting

/** go-units HumanSize: decimal units, 4 significant digits ("1.2kB", "648B"). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${fourDigits(n)}${units[i]}`;
}

/** go-units BytesSize: binary units, 4 significant digits ("1.5MiB", "7.698GiB"). */
export function bytesSize(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${fourDigits(n)}${units[i]}`;
}

/** Go's %.4g for the sizes here (no exponent below 10000). */
function fourDigits(n: number): string {
  return String(Number(n.toPrecision(4)));
}

/** The row as docker's columns print it. */
export function rowFields(r: StatsRow): Record<string, string> {
  return {
    Container: r.id.slice(0, 12),
    ID: r.id.slice(0, 12),
    Name: r.name,
    CPUPerc: `${r.cpuPercent.toFixed(2)}%`,
    MemUsage: `${bytesSize(r.memUsage)} / ${bytesSize(r.memLimit)}`,
    MemPerc: `${r.memPercent.toFixed(2)}%`,
    NetIO: `${humanSize(r.netRx)} / ${humanSize(r.netTx)}`,
    BlockIO: `${humanSize(r.blockRead)} / ${humanSize(r.blockWrite)}`,
    PIDs: String(r.pids),
  };
}

export const TABLE_COLUMNS: [string, string][] = [
  ["ID", "CONTAINER ID"],
  ["Name", "NAME"],
  ["CPUPerc", "CPU %"],
  ["MemUsage", "MEM USAGE / LIMIT"],
  ["MemPerc", "MEM %"],
  ["NetIO", "NET I/O"],
  ["BlockIO", "BLOCK I/O"],
  ["PIDs", "PIDS"],
];

/**
 * A Go-template-like format: `{{.Field}}` replaced by the row's field, `\t`
 * and `\n` as escapes, `{{json .}}` as the row's fields in JSON. A field
 * docker does not have is an error naming it.
 */
export function applyTemplate(template: string, fields: Record<string, string>): string {
  const body = template.replace(/\\t/g, "\t").replace(/\\n/g, "\n");
  return body.replace(/\{\{\s*(json\s+\.|\.([A-Za-z]+))\s*\}\}/g, (_m, _all, field) => {
    if (field === undefined) return JSON.stringify(fields);
    if (!(field in fields)) {
      throw new TypeError(
        `template: no field "${field}"; fields are ${Object.keys(fields).join(", ")}`,
      );
    }
    return fields[field];
  });
}

/** Checks a template once, before any sample: its fields and its braces. */
export function checkTemplate(template: string): void {
  const stripped = template.replace(/\{\{\s*(json\s+\.|\.[A-Za-z]+)\s*\}\}/g, "");
  if (stripped.includes("{{") || stripped.includes("}}")) {
    throw new TypeError(
      `template ${JSON.stringify(template)}: only {{.Field}} and {{json .}} are understood`,
    );
  }
  applyTemplate(template, rowFields(statsRow(undefined, zeroSample(), 0)));
}

function zeroSample(): ContainerSample {
  return { name: "", id: "", systemNs: 0, onlineCpus: 1 };
}
