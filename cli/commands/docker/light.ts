/**
 * `rkl ps` and `rkl stats --no-stream` on a short path: run before the CLI
 * framework, the Host and the core are loaded (commander alone takes ~25
 * ms to load, the Host's modules ~30), these read the container records,
 * the exit directory and /proc themselves and print through the same
 * formatters as the full commands (ps_format.ts, stats_frames.ts).
 *
 * Only the plain case is taken: every record as rkl writes it (the paths it
 * names are the ones its name gives), every running container's process
 * still the one recorded or its exit code written by conmon (then shown
 * exited, as refresh() would). Anything else (a damaged or foreign record,
 * a process gone without an exit code, a reboot, an unknown flag, a bad
 * filter) returns undefined before anything is printed, and the full
 * command runs and says what is wrong.
 */
import { DEFAULT_ROOT, rootsOf, writeAll } from "../../remote.ts";
import type { ContainerRecord } from "../../../src/workloads/container/types.ts";
import { trace } from "../../../src/trace.ts";
import { plainGlobals } from "../../globals_argv.ts";

/** argv split into the global options, the command word and what follows it. */
function split(argv: string[]):
  | { globals: { root?: string; runRoot?: string }; command: string; rest: string[] }
  | undefined {
  const g = plainGlobals(argv);
  if (!g) return undefined;
  const { globals, next: i } = g;
  if (i >= argv.length) return undefined;
  return { globals, command: argv[i], rest: argv.slice(i + 1) };
}

/** Options of `rest`: each flag → its values; undefined for anything not in `known`. */
function options(
  rest: string[],
  known: Record<string, { value: boolean; name: string }>,
): { flags: Map<string, string[]>; args: string[] } | undefined {
  const flags = new Map<string, string[]>();
  const args: string[] = [];
  const add = (name: string, v: string) => flags.set(name, [...flags.get(name) ?? [], v]);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith("-") || a === "-") {
      args.push(a);
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const k = known[flag];
    if (k) {
      if (!k.value) {
        if (eq > 0) return undefined;
        add(k.name, "");
        continue;
      }
      const v = eq > 0 ? a.slice(eq + 1) : rest[++i];
      if (v === undefined) return undefined;
      add(k.name, v);
      continue;
    }
    // A cluster of boolean short flags (`-aq`).
    if (
      /^-[a-zA-Z]{2,}$/.test(a) && [...a.slice(1)].every((c) => known[`-${c}`]?.value === false)
    ) {
      for (const c of a.slice(1)) add(known[`-${c}`].name, "");
      continue;
    }
    return undefined; // --help, --, an unknown flag: the full command
  }
  return { flags, args };
}

/** The same hash as shortHash() in src/workloads/host.ts (FNV-1a), for the cgroup parent's name. */
function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Record names rkl makes for containers (src/store/store.ts checkRecordName). */
const LABEL = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";
const RECORD_NAME = new RegExp(`^(?:[0-9a-f]{64}|${LABEL}(?:_${LABEL}|__pause)?)$`);

interface Roots {
  root: string;
  runRoot: string;
  cgroupParent: string;
}

/** A record as rkl writes it, its paths the ones its name gives; false for anything else. */
function plain(v: unknown, name: string, roots: Roots): v is ContainerRecord {
  const r = v as Partial<ContainerRecord> & { schemaVersion?: unknown };
  if (typeof r !== "object" || r === null || Array.isArray(r)) return false;
  if (r.schemaVersion !== 1 || r.kind !== "container" || r.name !== name) return false;
  // Its paths are its id's: its name, or what a renamed one keeps (a single container's).
  const id = r.id;
  const idOk = typeof id === "string" &&
    (/^[0-9a-f]{64}$/.test(id) || (id.length <= 63 && new RegExp(`^${LABEL}$`).test(id)));
  if (typeof id !== "string" || (id !== name && (r.pod !== undefined || !idOk))) return false;
  const d = r.dirs as Record<string, unknown> | undefined;
  if (typeof d !== "object" || d === null) return false;
  if (d.config !== `${roots.root}/containers/${id}/config.json`) return false;
  if (d.exitDir !== `${roots.root}/exits`) return false;
  const cg = r.cgroupPath;
  if (
    typeof cg !== "string" || !cg.startsWith(`${roots.cgroupParent}/`) ||
    cg.split("/").some((s) => s === ".." || s === ".")
  ) {
    return false;
  }
  return typeof r.status === "string" && typeof r.createdAt === "string" &&
    typeof r.image === "string" && typeof r.labels === "object" && r.labels !== null &&
    (r.pid === undefined || Number.isInteger(r.pid));
}

/**
 * Every container record, each as `quickRefresh()` would leave it without
 * writing anything; undefined where the full command is needed.
 */
async function plainRecords(roots: Roots): Promise<ContainerRecord[] | undefined> {
  const dir = `${roots.root}/records/containers`;
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    return undefined;
  }
  let epoch: string;
  let exits: Set<string>;
  try {
    epoch = Deno.readTextFileSync(`${roots.runRoot}/epoch`).trim();
  } catch {
    return undefined; // made by the full command's Host on first use
  }
  try {
    exits = new Set([...Deno.readDirSync(`${roots.root}/exits`)].map((e) => e.name));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return undefined;
    exits = new Set();
  }
  const { procStat } = await import("../../../src/sys/procstat.ts");
  const out: ContainerRecord[] = [];
  for (const file of names) {
    if (!file.endsWith(".json")) continue; // a write's temp file
    const name = file.slice(0, -5);
    if (!RECORD_NAME.test(name) || name.length > 127) return undefined;
    let rec: unknown;
    try {
      rec = JSON.parse(Deno.readTextFileSync(`${dir}/${file}`));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // removed since the listing
      return undefined;
    }
    if (!plain(rec, name, roots)) return undefined;
    // quickRefresh()'s cases that change nothing; every other one writes the record.
    if (rec.status !== "creating" && rec.status !== "exited" && !rec.deferred) {
      if (rec.epoch !== undefined && rec.epoch !== epoch) return undefined;
      if (exits.has(rec.id)) {
        // conmon wrote the exit code: refresh() finds the runtime's state
        // "stopped" and marks it exited (markExited()), as here.
        const file = `${roots.root}/exits/${rec.id}`;
        const code = Number(Deno.readTextFileSync(file).trim() || "x");
        if (!Number.isInteger(code)) return undefined;
        rec.status = "exited";
        rec.pid = undefined;
        rec.exitCode = code;
        rec.finishedAt ||= Deno.statSync(file).mtime?.toISOString();
        out.push(rec);
        continue;
      }
      if (rec.pid === undefined || rec.pidStart === undefined) return undefined;
      const s = procStat(rec.pid);
      if (!s || s.state === "Z" || s.startTime !== rec.pidStart) return undefined;
    }
    out.push(rec);
  }
  trace("light: records read");
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function rootsFor(
  globals: { root?: string; runRoot?: string },
  env: Record<string, string>,
  cwd: string,
): Roots | undefined {
  const { root, runRoot } = rootsOf(globals, env, cwd);
  // Paths the full command refuses (cli/host.ts): it says why.
  if (/[,:\s]/.test(root) || /[,:\s]/.test(runRoot)) return undefined;
  const cgroupParent = env.RKL_CGROUP_PARENT ??
    (root === DEFAULT_ROOT ? "rkl" : `rkl-${fnv(root)}`);
  return { root, runRoot, cgroupParent };
}

const PS_FLAGS = {
  "-a": { value: false, name: "all" },
  "--all": { value: false, name: "all" },
  "-q": { value: false, name: "quiet" },
  "--quiet": { value: false, name: "quiet" },
  "--no-trunc": { value: false, name: "noTrunc" },
  "-n": { value: true, name: "last" },
  "--last": { value: true, name: "last" },
  "-f": { value: true, name: "filter" },
  "--filter": { value: true, name: "filter" },
  "--format": { value: true, name: "format" },
};

const STATS_FLAGS = {
  "--no-stream": { value: false, name: "noStream" },
  "-a": { value: false, name: "all" },
  "--all": { value: false, name: "all" },
  "--format": { value: true, name: "format" },
};

async function ps(roots: Roots, rest: string[]): Promise<string | undefined> {
  const o = options(rest, PS_FLAGS);
  if (!o || o.args.length > 0) return undefined;
  const f = o.flags;
  const { psFilter, psSelect, psText } = await import("./ps_format.ts");
  const flags = {
    all: f.has("all"),
    quiet: f.has("quiet"),
    filter: f.get("filter") ?? [],
    format: f.get("format")?.at(-1),
    trunc: !f.has("noTrunc"),
    last: f.get("last")?.at(-1),
  };
  const keep = psFilter(flags.filter); // a bad filter throws: the full command says why
  const recs = await plainRecords(roots);
  if (!recs) return undefined;
  const text = psText(psSelect(recs, flags, keep), flags);
  trace("light: ps text");
  return text;
}

async function statsNoStream(roots: Roots, rest: string[]): Promise<string | undefined> {
  const o = options(rest, STATS_FLAGS);
  if (!o || !o.flags.has("noStream")) return undefined;
  const format = o.flags.get("format")?.at(-1);
  const all = o.flags.has("all");
  const [stats, { statsFrames }, { detectCgroupLayout }] = await Promise.all([
    import("../../../src/workloads/stats.ts"),
    import("../stats_frames.ts"),
    import("../../../src/sys/cgroups/detect.ts"),
  ]);
  if (format !== undefined && format !== "table" && format !== "json") {
    stats.checkTemplate(format.startsWith("table ") ? format.slice(6) : format);
  }
  const c = detectCgroupLayout(Deno.readTextFileSync("/proc/self/mountinfo"));
  const layout = c.version === 1
    ? { version: 1 as const, mounts: c.controllers ?? {} }
    : { version: 2 as const, root: c.root! };
  const chosen = async () => {
    const recs = await plainRecords(roots);
    if (!recs) throw new Fallback();
    if (o.args.length === 0) return recs.filter((r) => all || r.status === "running");
    return o.args.map((n) => {
      const r = recs.find((x) => x.name === n);
      if (!r) throw new Fallback(); // the full command names what is missing
      return r;
    });
  };
  trace("light: stats modules");
  const first = await chosen(); // before any reading is kept or a frame printed
  let pending: ContainerRecord[] | undefined = first;
  const cachePath = `${roots.runRoot}/stats.json`;
  let out: string | undefined;
  await statsFrames({
    take: async () => {
      const recs = pending ?? await chosen();
      pending = undefined;
      const sample = { ...stats.sampleContainers(recs, { layout }), at: Date.now() };
      trace("light: sampled");
      return sample;
    },
    kept: stats.parseCache(stats.readTextOrUndefined(cachePath)),
    cachePath,
    format,
    stream: false,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    write: (t) => out = t,
  });
  return out;
}

class Fallback extends Error {}

/** Where the short path reads its environment and writes its output. */
export interface LightIo {
  env(): Record<string, string>;
  cwd(): string;
  write(text: string): void;
  /** The caller's uid (a test's io may leave it out: root). */
  uid?(): number;
}

const realIo: LightIo = {
  env: () => Deno.env.toObject(),
  cwd: () => Deno.cwd(),
  write: (t) => writeAll(Deno.stdout, t),
  uid: () => Deno.uid() ?? 0,
};

/** Runs argv on the short path: its exit code, or undefined for the full command. */
export async function runLight(argv: string[], io: LightIo = realIo): Promise<number | undefined> {
  const s = split(argv);
  if (!s || (s.command !== "ps" && s.command !== "stats")) return undefined;
  // A user without root: its roots, and the user namespace its records are read in, are the
  // full command's (cli/rootless.ts); root's records are never read for it.
  if ((io.uid?.() ?? 0) !== 0 || io.env().RKL_ROOTLESS === "1") return undefined;
  let text: string | undefined;
  try {
    const roots = rootsFor(s.globals, io.env(), io.cwd());
    if (!roots) return undefined;
    text = s.command === "stats" ? await statsNoStream(roots, s.rest) : await ps(roots, s.rest);
  } catch {
    // Nothing was printed: the full command runs and reports what went wrong.
    return undefined;
  }
  if (text === undefined) return undefined;
  io.write(text);
  trace("light: written");
  return 0;
}
