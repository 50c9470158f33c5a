/**
 * cgroupfs, written directly. The version is chosen once from the mount table
 * ({@linkcode detectCgroups}); both managers take their root directories as
 * arguments, so unit tests point them at a temporary tree.
 *
 * Paths handed to managers are relative to the hierarchy root, e.g.
 * `rkl/web` or `rkl/pod-x/app`, and must come from validated names.
 */

export interface CgroupLimits {
  /** CFS quota in µs per period; undefined or <= 0 means no limit. */
  cpuQuota?: number;
  cpuPeriod?: number;
  /** cgroup v1 cpu.shares (converted to cpu.weight on v2). */
  cpuShares?: number;
  /** cgroup v2 cpu.weight, as read back (the shares → weight mapping loses precision). */
  cpuWeight?: number;
  /** Bytes; undefined means no limit. */
  memoryLimit?: number;
  pidsLimit?: number;
}

export interface CgroupManager {
  readonly version: 1 | 2;
  /** Directories that exist for `rel` (one per v1 hierarchy, one on v2). */
  dirs(rel: string): string[];
  /** Creates `rel` (and its parents) and writes the limits given. */
  apply(rel: string, limits: CgroupLimits): void;
  /** Reads the limits in force for `rel`. */
  read(rel: string): CgroupLimits;
  /** Removes `rel` and any sub-cgroups, deepest first. A missing one is fine. */
  remove(rel: string): void;
  /**
   * Removes the sub-cgroups below `rel` (ones its processes made), deepest
   * first, in every hierarchy, and keeps `rel` itself. A missing one is fine.
   */
  removeChildren(rel: string): void;
  /** PIDs in `rel` (cgroup.procs). */
  pids(rel: string): number[];
  /** What `rel` has used so far (the CRI's stats), or undefined when it does not exist. */
  usage(rel: string): CgroupUsage | undefined;
  /**
   * The `cgroup.procs` file of the cgroup this process is in, in one of the
   * hierarchies managed here, from the text of /proc/self/cgroup; undefined
   * when no line names one or its path is not plainly below the mount.
   */
  ownProcsFile(procSelfCgroup: string): string | undefined;
}

/** Usage counters read from cgroupfs; each absent where the controller is not mounted. */
export interface CgroupUsage {
  /** CPU time used, nanoseconds. */
  cpuNs?: number;
  /** Memory charged, bytes. */
  memoryBytes?: number;
  /** Memory minus inactive file pages (what the kubelet evicts on). */
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
  memoryLimit?: number;
  /** Times the OOM killer killed a process of it. */
  oomKills?: number;
}

/** `key value` lines (memory.stat, cpu.stat, memory.events) as numbers. */
export function parseKeyValues(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** Working set as cAdvisor counts it: usage less inactive file pages, never below 0. */
export function workingSet(usage: number | undefined, inactiveFile: number | undefined) {
  if (usage === undefined) return undefined;
  return Math.max(0, usage - (inactiveFile ?? 0));
}

export function readOptional(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

export function assertRelPath(rel: string): void {
  if (rel.startsWith("/") || rel.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new TypeError(
      `cgroup path ${JSON.stringify(rel)} must be relative with no empty, '.' or '..' parts`,
    );
  }
}

export function readNumber(path: string): number | undefined {
  try {
    const t = Deno.readTextFileSync(path).trim();
    if (t === "max" || t === "") return undefined;
    return Number(t);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

export function writeFile(path: string, value: string): void {
  Deno.writeTextFileSync(path, value);
}

/**
 * rmdir `dir` after its sub-directories, deepest first; cgroupfs only allows
 * rmdir. With `keepRoot`, only the sub-directories go.
 */
export function removeTree(dir: string, options: { keepRoot?: boolean } = {}): void {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const e of entries) if (e.isDirectory) removeTree(`${dir}/${e.name}`);
  if (options.keepRoot) return;
  try {
    Deno.removeSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Starts the wait that the runtime's first move of a process into a cgroup
 * would otherwise sit out itself, while rkl is still preparing the container.
 *
 * Every write to a `cgroup.procs` file (v1 or v2) takes the kernel's one
 * host-wide cgroup_threadgroup_rwsem for writing. That lock's fast path for
 * readers (fork, exit) is switched off first, which waits for a full RCU
 * grace period when the lock has been idle; the switch then stays off for one
 * more grace period after the writer leaves, and a writer arriving meanwhile
 * does not wait again. Here that wait was 10–30 ms of each `youki create`, the
 * largest part of it. Writing this process's pid to the cgroup it is already
 * in takes the lock and moves nothing; done on a pool thread (the promise is
 * not awaited), its wait overlaps with the record, overlay, namespaces,
 * config and conmon's start, and the runtime's own attach then finds the
 * switch still off. Hosts mounted with `favordynmods` keep it off anyway, and
 * the write is then just a no-op.
 *
 * Best effort: any failure (a read-only cgroupfs, a cgroup removed under us)
 * only means the runtime waits as it would have. The promise never rejects.
 */
export function primeAttach(
  manager: CgroupManager,
  procSelfCgroup: string | undefined = readOptional("/proc/self/cgroup"),
): Promise<void> {
  const file = procSelfCgroup === undefined ? undefined : manager.ownProcsFile(procSelfCgroup);
  if (file === undefined) return Promise.resolve();
  return Deno.writeTextFile(file, String(Deno.pid), { create: false }).catch(() => {});
}

/**
 * The cgroup.procs file of `path` (read from /proc/self/cgroup) below the
 * hierarchy mounted at `root`, or undefined when the path is not absolute or
 * climbs (a process outside its cgroup namespace's root sees `/..` there).
 */
export function procsFileBelow(root: string, path: string): string | undefined {
  if (!path.startsWith("/") || path.split("/").some((s) => s === "." || s === "..")) {
    return undefined;
  }
  return `${root}${path.replace(/\/+$/, "")}/cgroup.procs`;
}

/** The lines of /proc/self/cgroup as [hierarchy id, controller list, path]. */
export function cgroupLines(procSelfCgroup: string): [string, string[], string][] {
  const out: [string, string[], string][] = [];
  for (const line of procSelfCgroup.split("\n")) {
    const a = line.indexOf(":");
    const b = line.indexOf(":", a + 1);
    if (a < 0 || b < 0) continue;
    out.push([line.slice(0, a), line.slice(a + 1, b).split(","), line.slice(b + 1)]);
  }
  return out;
}

export function parseProcs(text: string): number[] {
  return text.split("\n").filter(Boolean).map(Number);
}
