/**
 * A complete {@linkcode Host} for unit tests, without root, FFI or
 * subprocesses: an in-memory file tree ({@linkcode MemFs}) under `/fake`
 * that holds the state roots, the records, cgroupfs and /proc; a kernel with
 * a mount table and fds; a process table; an OCI runtime and conmon; CNI with
 * host-local leases; a store on the MemFs; recorded commands; and a clock
 * that only moves when the code sleeps.
 *
 * Every fake counts its calls under a name ("fs.mkdir", "sys.mount",
 * "runtime.create", "cni.add", "conmon.spawn", "cmd.iptables-restore",
 * "store.put", …) and fails the one `failAt(name, n)` asks for, so a test can
 * fail each step of a create in turn. `snapshot()` takes the host's census
 * (files, mounts, cgroups, CNI leases, store records, runtime containers,
 * live processes, open fds) and `diffSnapshots()` says what changed, so a
 * test asserts that teardown, or a create that failed, leaves the host as it
 * found it.
 *
 * Paths all lie under /fake, which does not exist on a real host: a call
 * that still goes to the real file system instead of `host.fs` fails under
 * the unit permissions (or finds nothing), instead of touching real state.
 */
import type { OciRuntime } from "../oci/runtime.ts";
import {
  type FileLock,
  FsStore,
  type RecordKind,
  type StateStore,
  type StoredRecord,
} from "../store/store.ts";
import {
  type CommandOptions,
  type CommandResult,
  type CommandRunner,
  FakeCommandRunner,
  type RecordedCommand,
} from "../sys/command.ts";
import type { Host, HostProc, RklPaths, RuntimeRef } from "../workloads/host.ts";
import { Faults } from "./faults.ts";
import { eventLogPath } from "../workloads/event_log.ts";
import { FakeKernel } from "./fake_kernel.ts";
import {
  FakeCgroups,
  FakeCni,
  fakeConmon,
  FakeProcs,
  FakeRuntime,
  type RuntimeWorld,
} from "./fake_runtime.ts";
import { fsError, MemFs } from "./mem_fs.ts";
import { FakeHostLock, FakeLinks } from "./fake_net.ts";
import { FakeImages } from "./fake_images.ts";
import { StoreError } from "../errors.ts";

/** The state roots of every FakeHost. */
export const FAKE_PATHS: RklPaths = {
  root: "/fake/var/lib/rkl",
  runRoot: "/fake/run/rkl",
  logDir: "/fake/var/log/rkl",
  cniConfDir: "/fake/etc/rkl/net.d",
  tag: "",
};

/** The fs operations that change the tree: each call is a step a test can fail. */
const FS_MUTATIONS = new Set([
  "writeFile",
  "writeTextFile",
  "mkdir",
  "remove",
  "symlink",
  "link",
  "rename",
  "copyFile",
  "chmod",
  "chown",
]);

/** How Deno's error messages name an operation ("writefile '/x'"). */
const DENO_OP: Record<string, string> = {
  writeTextFile: "writefile",
  readTextFile: "readfile",
  copyFile: "copy",
};

/** A store that counts puts and deletes as steps ("store.put", "store.delete") and can fail them. */
class FaultyStore implements StateStore {
  constructor(readonly inner: FsStore, private readonly faults: Faults) {}
  get<T extends StoredRecord>(kind: RecordKind, name: string): T | undefined {
    return this.inner.get<T>(kind, name);
  }
  list<T extends StoredRecord>(kind: RecordKind): T[] {
    return this.inner.list<T>(kind);
  }
  damaged(kind: RecordKind) {
    return this.inner.damaged(kind);
  }
  put<T extends StoredRecord>(kind: RecordKind, record: T): void {
    if (this.faults.hit("store.put", `${kind}/${record.name}`)) {
      throw new StoreError(`Cannot write record ${kind}/${record.name}: injected fault`);
    }
    this.inner.put(kind, record);
  }
  delete(kind: RecordKind, name: string): void {
    if (this.faults.hit("store.delete", `${kind}/${name}`)) {
      throw new StoreError(`Cannot delete record ${name}: injected fault`);
    }
    this.inner.delete(kind, name);
  }
  rename<T extends StoredRecord>(kind: RecordKind, from: string, record: T): void {
    if (this.faults.hit("store.rename", `${kind}/${from}`)) {
      throw new StoreError(`Cannot rename record ${from}: injected fault`);
    }
    this.inner.rename(kind, from, record);
  }
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.withLock(fn);
  }
}

/** Commands answered by `answer` (default: exit 0, no output), counted as "cmd.BASENAME". */
class FaultyCommands implements CommandRunner {
  readonly inner: FakeCommandRunner;
  constructor(
    private readonly faults: Faults,
    answer: (c: RecordedCommand) => CommandResult | Promise<CommandResult>,
  ) {
    this.inner = new FakeCommandRunner(answer);
  }
  get calls(): RecordedCommand[] {
    return this.inner.calls;
  }
  run(cmd: string, options: CommandOptions = {}): Promise<CommandResult> {
    const base = cmd.slice(cmd.lastIndexOf("/") + 1);
    if (this.faults.hit(`cmd.${base}`, [cmd, ...options.args ?? []].join(" "))) {
      return Promise.resolve({ code: 1, stdout: "", stderr: `injected fault at cmd.${base}\n` });
    }
    return this.inner.run(cmd, options);
  }
  runInteractive(
    cmd: string,
    options: CommandOptions & { stdin: "inherit" | "null" },
  ): Promise<number> {
    return this.run(cmd, { ...options, stdin: undefined }).then((r) => r.code);
  }
}

/** What a FakeHost holds, as sorted lines per part (see {@linkcode diffSnapshots}). */
export interface Snapshot {
  files: Map<string, string>;
  mounts: string[];
  cgroups: string[];
  leases: string[];
  records: string[];
  runtime: string[];
  processes: string[];
  fds: string[];
  /** Host-wide locks held (none between operations). */
  locks: string[];
  /** Images in the store (`name id`). */
  images: string[];
}

export interface FakeHostOptions {
  /** How commands are answered (default: exit 0, no output). */
  commands?: (c: RecordedCommand) => CommandResult | Promise<CommandResult>;
}

export class FakeHost implements Host {
  readonly faults = new Faults();
  readonly fs: MemFs;
  readonly sys: FakeKernel;
  readonly procs: FakeProcs;
  readonly cmd: FaultyCommands;
  readonly store: StateStore;
  readonly records: FsStore;
  readonly cgroups: FakeCgroups;
  readonly runtime: FakeRuntime;
  readonly cni: FakeCni;
  readonly lock: FakeHostLock;
  /** Bridges in /sys/class/net: made by the bridge plugin's ADD, deleted by `ip link delete`. */
  readonly links: FakeLinks;
  /** An image store with pulls from a table of images (see addImage). */
  readonly images: FakeImages;
  readonly paths: RklPaths = { ...FAKE_PATHS };
  readonly pauseBundle = "/fake/bundles/pause";
  readonly conmon = "/fake/usr/bin/conmon";
  readonly cgroupParent = "rkl";
  readonly nofileHard = 1048576;
  readonly hardLimits = { RLIMIT_NOFILE: 1048576, RLIMIT_NPROC: Infinity };
  readonly epoch = "fakeboot-00000001";
  readonly warnings: string[] = [];
  /** Milliseconds since the epoch on the fake clock; moves only in sleep(). */
  clock = Date.UTC(2026, 0, 1);
  readonly #runtimes = new Map<string, FakeRuntime>();
  readonly #world: RuntimeWorld;

  /** The process port: this process, /proc/PID/stat, kill(2), conmon's spawn. */
  readonly proc: HostProc;
  /** The argv of every helper started with proc.spawnDetached (none runs). */
  readonly detached: string[][] = [];

  constructor(options: FakeHostOptions = {}) {
    this.fs = new MemFs({ now: () => new Date(this.clock) });
    this.fs.before = (op, path) => {
      if (this.faults.hit(`fs.${op}`, path, FS_MUTATIONS.has(op))) {
        throw fsError(5, DENO_OP[op] ?? op.toLowerCase(), path);
      }
    };
    this.sys = new FakeKernel(this.fs, this.faults);
    this.procs = new FakeProcs(this.faults, this.fs);
    this.cgroups = new FakeCgroups(this.fs, this.faults);
    this.#world = { fs: this.fs, faults: this.faults, procs: this.procs, cgroups: this.cgroups };
    this.links = new FakeLinks(this.fs);
    this.lock = new FakeHostLock(this.faults);
    const answer = options.commands ?? (() => ({ code: 0, stdout: "", stderr: "" }));
    this.cmd = new FaultyCommands(this.faults, (c) => this.links.answer(c) ?? answer(c));
    // The lock file is opened (made when missing) as flock's open would; no other process to keep out.
    const lock: FileLock = {
      acquire: (path) => {
        this.fs.quietly(() => this.fs.writeFile(path, new Uint8Array(), { append: true }));
        return Promise.resolve(() => {});
      },
    };
    this.records = new FsStore(`${this.paths.root}/records`, `${this.paths.root}/rkl.lock`, {}, {
      fs: this.fs,
      lock,
    });
    this.store = new FaultyStore(this.records, this.faults);
    this.runtime = this.runtimeFor({
      name: "fakert",
      binary: "/fake/usr/bin/fakert",
      root: `${this.paths.runRoot}/runtime/fakert`,
    });
    this.cni = new FakeCni(this.fs, this.faults, this.links);
    this.images = new FakeImages(this.fs, this.faults, this.paths);
    this.proc = {
      self: this.procs.self,
      stat: (pid) => this.procs.stat(pid),
      kill: (pid, signal) => this.procs.kill(pid, signal),
      createWithConmon: (o) => fakeConmon(this.#world, o),
      spawnDetached: (argv) => void this.detached.push([...argv]),
    };
    this.fs.quietly(() => {
      for (const d of ["/fake/etc", "/fake/bundles", "/sys/class/net"]) {
        this.fs.mkdir(d, { recursive: true });
      }
      this.fs.writeTextFile("/proc/self/cgroup", "0::/\n");
    });
  }

  runtimeFor(ref: RuntimeRef): FakeRuntime {
    let rt = this.#runtimes.get(ref.root);
    if (!rt) {
      rt = new FakeRuntime(this.#world, ref.name, ref.binary, ref.root);
      this.#runtimes.set(ref.root, rt);
    }
    return rt;
  }

  /** Every runtime this host has handed out. */
  runtimes(): OciRuntime[] {
    return [...this.#runtimes.values()];
  }

  portInUse(): boolean {
    return false;
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  now(): Date {
    return new Date(this.clock);
  }

  sleep(ms: number): Promise<void> {
    this.clock += ms;
    return Promise.resolve();
  }

  /** Makes the `n`th call (counted from now) of the named operation fail. */
  failAt(op: string, n = 1): void {
    this.faults.failAt(op, n);
  }

  /**
   * A bundle at `path` (config.json with `args`, and a rootfs with
   * /etc/passwd and /etc/group), as `bundles/busybox` is on a real host.
   */
  addBundle(path = "/fake/bundles/busybox", args = ["sleep", "1000"]): string {
    this.fs.quietly(() => {
      this.fs.mkdir(`${path}/rootfs/etc`, { recursive: true });
      this.fs.mkdir(`${path}/rootfs/bin`, { recursive: true });
      this.fs.writeTextFile(
        `${path}/rootfs/etc/passwd`,
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
      );
      this.fs.writeTextFile(`${path}/rootfs/etc/group`, "root:x:0:\nnogroup:x:65534:\n");
      this.fs.writeTextFile(`${path}/rootfs/bin/sh`, "", { mode: 0o755 });
      this.fs.writeTextFile(
        `${path}/config.json`,
        JSON.stringify({
          ociVersion: "1.0.2",
          process: { args, env: ["PATH=/bin"], cwd: "/" },
          root: { path: "rootfs" },
        }),
      );
    });
    return path;
  }

  /** rkl's pause bundle (catatonit in an empty rootfs) where `host.pauseBundle` names it. */
  addPauseBundle(): string {
    this.addBundle(this.pauseBundle, ["/bin/catatonit", "-P"]);
    this.fs.quietly(() =>
      this.fs.writeTextFile(`${this.pauseBundle}/rootfs/bin/catatonit`, "", { mode: 0o755 })
    );
    return this.pauseBundle;
  }

  snapshot(): Snapshot {
    const files = new Map<string, string>();
    const skip = [this.cgroups.root, "/proc"];
    // The event log is history, kept after what it tells of is gone (as podman's
    // events file): a removal leaves its `destroy` there. Tests read it themselves.
    const log = eventLogPath(this.paths);
    const history = (p: string) =>
      p === log || p === `${log}.1` || p === log.slice(0, log.lastIndexOf("/"));
    for (const [p, line] of this.fs.census("/")) {
      if (skip.some((s) => p === s || p.startsWith(`${s}/`)) || history(p)) continue;
      files.set(p, line);
    }
    const records: string[] = [];
    for (const kind of ["containers", "pods", "compose"] as const) {
      for (const r of this.records.list<StoredRecord & { status?: string }>(kind)) {
        records.push(`${kind}/${r.name}${r.status ? ` ${r.status}` : ""}`);
      }
      for (const d of this.records.damaged(kind)) {
        records.push(`${kind}/${d.name} DAMAGED ${d.reason}`);
      }
    }
    return {
      files,
      mounts: this.sys.mountTable(),
      cgroups: this.cgroups.list(),
      leases: this.cni.list(),
      records: records.sort(),
      runtime: [...this.#runtimes.values()].flatMap((r) => r.list()).sort(),
      processes: this.procs.live(),
      fds: [...this.sys.fds.values()].sort(),
      locks: this.lock.list(),
      images: this.images.list(),
    };
  }
}

/**
 * What changed from `a` to `b`, one line each: `+ files /x: dir 0711 0:0`,
 * `- mounts /c/rootfs <- overlay (overlay)`, `~ files /x: A -> B`. Empty when
 * nothing did.
 */
export function diffSnapshots(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  for (const [p, line] of b.files) {
    const was = a.files.get(p);
    if (was === undefined) out.push(`+ files ${p}: ${line}`);
    else if (was !== line) out.push(`~ files ${p}: ${was} -> ${line}`);
  }
  for (const [p, line] of a.files) if (!b.files.has(p)) out.push(`- files ${p}: ${line}`);
  for (
    const part of [
      "mounts",
      "cgroups",
      "leases",
      "records",
      "runtime",
      "processes",
      "fds",
      "locks",
      "images",
    ] as const
  ) {
    const left = [...a[part]];
    for (const x of b[part]) {
      const i = left.indexOf(x);
      if (i >= 0) left.splice(i, 1);
      else out.push(`+ ${part} ${x}`);
    }
    for (const x of left) out.push(`- ${part} ${x}`);
  }
  return out;
}
