/**
 * Processes, an OCI runtime, conmon and cgroupfs for a FakeHost, all acting
 * on its MemFs and its process table:
 *
 * - {@linkcode FakeProcs}: pids with start times; kill(2) of a pid or a
 *   process group, ESRCH for one that is gone, as Deno.kill throws it.
 * - {@linkcode FakeRuntime}: youki/runc's life cycle (created → running →
 *   stopped → deleted) with their refusals (start of a running container,
 *   delete of a running one without --force, an unknown id), its state dir
 *   `ROOT/ID/state.json`, and the container's cgroup made from config.json's
 *   `cgroupsPath` and removed at delete, as youki does.
 * - {@linkcode fakeConmon}: what conmon leaves (conmon.pid, pid, the log,
 *   the socket-dir link, the exit file when the container dies).
 * - {@linkcode FakeCgroups}: a CgroupManager on the MemFs (v2 layout) whose
 *   rmdir of a cgroup with tasks is EBUSY.
 */
import { NetworkError, RuntimeError } from "../errors.ts";
import type { ConmonOptions } from "../oci/conmon.ts";
import type { ExecCaptured, OciRuntime } from "../oci/runtime.ts";
import type { OciState } from "../oci/spec.ts";
import type { CgroupLimits, CgroupManager, CgroupUsage } from "../sys/cgroups/mod.ts";
import { assertRelPath } from "../sys/cgroups/mod.ts";
import {
  type Attachment,
  chainFor,
  CniClient,
  type CniResult,
  type NetConfList,
  type PluginConf,
} from "../net/cni.ts";
import { bridgeName } from "../net/network.ts";
import type { FakeLinks } from "./fake_net.ts";
import { FakeCommandRunner } from "../sys/command.ts";
import type { Faults } from "./faults.ts";
import { fsError, type MemFs } from "./mem_fs.ts";

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export interface FakeProcess {
  pid: number;
  /** What it is, e.g. "conmon web" or "container web". */
  name: string;
  startTime: number;
  pgid: number;
  /** What a signal does to it (default: SIGKILL, SIGTERM, SIGINT and SIGHUP end it). */
  onSignal?: (signal: string) => void;
  /** Run when it ends. */
  onExit?: (code: number) => void;
}

export class FakeProcs {
  /** This process (rkl). */
  readonly self = 1000;
  readonly table = new Map<number, FakeProcess>();
  /** `pid signal` of every kill(2) that reached a process. */
  readonly signals: string[] = [];
  #next = 2000;
  #ticks = 5000;

  constructor(private readonly faults: Faults, private readonly fs?: MemFs) {}

  /** A new process, with its /proc/PID/ns/* files (what a pin bind-mounts). */
  spawn(name: string, o: Partial<Pick<FakeProcess, "pgid" | "onSignal" | "onExit">> = {}) {
    const pid = this.#next++;
    const p: FakeProcess = { pid, name, startTime: this.#ticks++, pgid: o.pgid ?? pid, ...o };
    this.table.set(pid, p);
    this.fs?.quietly(() => {
      this.fs!.mkdir(`/proc/${pid}/ns`, { recursive: true });
      for (const t of ["net", "ipc", "uts", "pid", "mnt", "cgroup"]) {
        this.fs!.writeTextFile(`/proc/${pid}/ns/${t}`, "");
      }
    });
    return p;
  }

  /** The process ends with `code` (its onExit runs). */
  exit(pid: number, code: number): void {
    const p = this.table.get(pid);
    if (!p) return;
    this.table.delete(pid);
    this.fs?.quietly(() => this.fs!.remove(`/proc/${pid}`, { recursive: true }));
    p.onExit?.(code);
  }

  stat(pid: number): { state: string; startTime: number } | undefined {
    const p = this.table.get(pid);
    return p ? { state: "S", startTime: p.startTime } : undefined;
  }

  kill(pid: number, signal: Deno.Signal): void {
    if (this.faults.hit("proc.kill", `${pid} ${signal}`)) {
      throw new Deno.errors.PermissionDenied(`Operation not permitted (os error 1)`);
    }
    const targets = pid < 0
      ? [...this.table.values()].filter((p) => p.pgid === -pid)
      : [this.table.get(pid)].filter((p) => p !== undefined);
    if (targets.length === 0) throw new Deno.errors.NotFound("No such process (os error 3)");
    for (const p of targets) {
      this.signals.push(`${p.pid} ${signal}`);
      if (p.onSignal) p.onSignal(signal);
      else if (SIGNALS[signal] !== undefined) this.exit(p.pid, 128 + SIGNALS[signal]);
    }
  }

  /** `pid name` of each live process, for a snapshot. */
  live(): string[] {
    return [...this.table.values()].map((p) => `${p.name}`).sort();
  }
}

interface FakeContainer {
  id: string;
  bundle: string;
  status: OciState["status"];
  pid: number;
  cgroup?: string;
}

/** The runtime's state of every container of every FakeRuntime of one host. */
export interface RuntimeWorld {
  fs: MemFs;
  faults: Faults;
  procs: FakeProcs;
  cgroups: FakeCgroups;
}

export class FakeRuntime implements OciRuntime {
  readonly containers = new Map<string, FakeContainer>();

  constructor(
    private readonly world: RuntimeWorld,
    readonly name: string,
    readonly binary: string,
    readonly root: string,
  ) {}

  get exe(): string {
    return this.binary;
  }

  globalArgs(): string[] {
    return ["--root", this.root];
  }

  #error(what: string, stderr: string): RuntimeError {
    return new RuntimeError(`Cannot ${what}: ${this.name} exited with 1`, {
      argv: [this.binary, ...this.globalArgs()],
      stderr,
      status: 1,
    });
  }

  #fail(op: string, id: string, mutates = true): void {
    if (this.world.faults.hit(`runtime.${op}`, id, mutates)) {
      throw this.#error(`${op} ${JSON.stringify(id)}`, `injected fault at runtime.${op}`);
    }
  }

  #saveState(c: FakeContainer): void {
    const { fs } = this.world;
    fs.quietly(() => {
      fs.writeTextFile(
        `${this.root}/${c.id}/state.json`,
        JSON.stringify({ id: c.id, status: c.status, pid: c.pid, bundle: c.bundle }),
      );
    });
  }

  /**
   * `runtime create` as conmon runs it: reads the bundle's config.json,
   * makes the cgroup and the (stopped-at-exec) container process.
   * `onExit` is conmon's: it hears the container's exit code.
   */
  create(id: string, bundle: string, onExit: (code: number) => void): number {
    this.#fail("create", id);
    const { fs, procs, cgroups } = this.world;
    if (this.containers.has(id)) {
      throw this.#error(`create ${JSON.stringify(id)}`, `container ${id} already exists`);
    }
    let config: { root?: { path?: string }; linux?: { cgroupsPath?: string } };
    try {
      config = JSON.parse(fs.quietly(() => fs.readTextFile(`${bundle}/config.json`)));
      const rootfs = config.root?.path ?? "rootfs";
      fs.quietly(() => fs.stat(rootfs.startsWith("/") ? rootfs : `${bundle}/${rootfs}`));
    } catch (e) {
      throw this.#error(
        `create ${JSON.stringify(id)}`,
        `failed to load bundle: ${(e as Error).message}`,
      );
    }
    const cgroup = config.linux?.cgroupsPath?.replace(/^\/+/, "");
    const proc = procs.spawn(`container ${id}`, {
      onExit: (code) => {
        const c = this.containers.get(id);
        if (c) {
          c.status = "stopped";
          this.#saveState(c);
        }
        if (cgroup) cgroups.detach(cgroup, proc.pid);
        onExit(code);
      },
    });
    const c: FakeContainer = { id, bundle, status: "created", pid: proc.pid, cgroup };
    fs.quietly(() => fs.mkdir(`${this.root}/${id}`, { recursive: true, mode: 0o700 }));
    if (cgroup) cgroups.attach(cgroup, proc.pid);
    this.containers.set(id, c);
    this.#saveState(c);
    return proc.pid;
  }

  state(id: string): Promise<OciState | undefined> {
    this.#fail("state", id, false);
    const c = this.containers.get(id);
    return Promise.resolve(
      c ? { ociVersion: "1.0.2", id, status: c.status, pid: c.pid, bundle: c.bundle } : undefined,
    );
  }

  start(id: string): Promise<void> {
    this.#fail("start", id);
    const c = this.containers.get(id);
    if (!c) {
      return Promise.reject(
        this.#error(`start ${JSON.stringify(id)}`, `container ${id} does not exist`),
      );
    }
    if (c.status !== "created") {
      return Promise.reject(
        this.#error(
          `start ${JSON.stringify(id)}`,
          `cannot start a container in the ${c.status} state`,
        ),
      );
    }
    c.status = "running";
    this.#saveState(c);
    return Promise.resolve();
  }

  kill(id: string, signal: string, _options: { all?: boolean } = {}): Promise<void> {
    this.#fail("kill", id);
    const c = this.containers.get(id);
    if (!c) {
      return Promise.reject(
        this.#error(`signal ${JSON.stringify(id)}`, `container ${id} does not exist`),
      );
    }
    if (c.status === "stopped") {
      return Promise.reject(this.#error(`signal ${JSON.stringify(id)}`, "container not running"));
    }
    this.world.procs.kill(c.pid, signal as Deno.Signal);
    return Promise.resolve();
  }

  delete(id: string, options: { force?: boolean; missingOk?: boolean } = {}): Promise<void> {
    this.#fail("delete", id);
    const c = this.containers.get(id);
    if (!c) {
      if (options.missingOk) return Promise.resolve();
      return Promise.reject(
        this.#error(`delete ${JSON.stringify(id)}`, `container ${id} does not exist`),
      );
    }
    const { fs, procs, cgroups } = this.world;
    if (c.status !== "stopped") {
      if (!options.force) {
        return Promise.reject(
          this.#error(
            `delete ${JSON.stringify(id)}`,
            `cannot delete a container in the ${c.status} state`,
          ),
        );
      }
      if (procs.stat(c.pid)) procs.kill(c.pid, "SIGKILL");
    }
    try {
      if (c.cgroup) cgroups.rmdir(c.cgroup);
    } catch (e) {
      return Promise.reject(this.#error(`delete ${JSON.stringify(id)}`, (e as Error).message));
    }
    fs.quietly(() => fs.remove(`${this.root}/${id}`, { recursive: true }));
    this.containers.delete(id);
    return Promise.resolve();
  }

  exec(): Promise<number> {
    return Promise.reject(
      new RuntimeError("Cannot exec: FakeRuntime runs no processes", {
        argv: [this.binary, "exec"],
        stderr: "",
        status: -1,
      }),
    );
  }

  execCapture(): Promise<ExecCaptured> {
    return Promise.reject(
      new RuntimeError("Cannot exec: FakeRuntime runs no processes", {
        argv: [this.binary, "exec"],
        stderr: "",
        status: -1,
      }),
    );
  }

  /** `runtime/id status` of each container, for a snapshot. */
  list(): string[] {
    return [...this.containers.values()].map((c) => `${this.name}/${c.id} ${c.status}`);
  }
}

/**
 * conmon + `runtime create`, as the process port's createWithConmon does it:
 * rkl makes the work dir; conmon writes its pid file, runs the runtime's
 * create, writes the container's pid file, opens the log and links the
 * bundle into the socket dir, and writes the exit file when the container
 * ends (then exits itself).
 */
export function fakeConmon(world: RuntimeWorld, o: ConmonOptions): Promise<number> {
  const { fs, procs, faults } = world;
  fs.mkdir(o.workDir, { recursive: true, mode: 0o700 });
  const argv = [o.conmon, "-c", o.id];
  if (faults.hit("conmon.spawn", o.id)) {
    return Promise.reject(
      new RuntimeError("Cannot create container: conmon exited without reporting", {
        argv,
        stderr: "injected fault at conmon.spawn",
        status: -1,
      }),
    );
  }
  if (!(o.runtime instanceof FakeRuntime)) {
    return Promise.reject(new TypeError("fakeConmon runs FakeRuntimes only"));
  }
  const conmon = procs.spawn(`conmon ${o.id}`);
  fs.quietly(() => fs.writeTextFile(`${o.workDir}/conmon.pid`, `${conmon.pid}\n`));
  let pid: number;
  try {
    pid = o.runtime.create(o.id, o.bundle, (code) => {
      fs.quietly(() => {
        try {
          fs.writeTextFile(`${o.exitDir}/${o.id}`, `${code}`);
        } catch { /* its exit dir is gone */ }
      });
      procs.exit(conmon.pid, 0);
    });
  } catch (e) {
    procs.exit(conmon.pid, 1);
    return Promise.reject(
      new RuntimeError(
        `Cannot create container ${JSON.stringify(o.name)}: ${o.runtime.name} create failed`,
        {
          argv,
          stderr: e instanceof RuntimeError ? e.stderr : (e as Error).message,
          status: -1,
        },
      ),
    );
  }
  fs.quietly(() => {
    fs.writeTextFile(`${o.workDir}/pid`, `${pid}`);
    fs.writeTextFile(o.logPath, "", { append: true });
    try {
      fs.symlink(o.bundle, `${o.socketDir}/${o.id}`);
    } catch { /* conmon goes on without its attach link */ }
  });
  return Promise.resolve(pid);
}

/** cgroup v2 on the MemFs: directories with control files; rmdir of one with tasks is EBUSY. */
export class FakeCgroups implements CgroupManager {
  readonly version = 2 as const;

  constructor(
    private readonly fs: MemFs,
    private readonly faults: Faults,
    readonly root = "/fake/sys/fs/cgroup",
  ) {
    fs.quietly(() => fs.mkdir(root, { recursive: true }));
    // rmdir(2) on cgroupfs: a cgroup with tasks or child cgroups is EBUSY;
    // otherwise it goes, control files and all.
    fs.rmdirRule = (p) => {
      if (!p.startsWith(`${root}/`)) return undefined;
      const rel = p.slice(root.length + 1);
      const kids = fs.quietly(() => fs.readDir(p));
      if (kids.some((e) => e.isDirectory) || this.pids(rel).length > 0) {
        return fsError(16, "remove", p);
      }
      return "empty";
    };
  }

  #dir(rel: string): string {
    assertRelPath(rel);
    return `${this.root}/${rel}`;
  }

  #exists(rel: string): boolean {
    return this.fs.quietly(() => this.fs.exists(this.#dir(rel)));
  }

  dirs(rel: string): string[] {
    return this.#exists(rel) ? [this.#dir(rel)] : [];
  }

  /** mkdir -p, as cgroupfs does it: each new cgroup comes with its control files. */
  #make(rel: string): void {
    const parts = rel.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const d = this.#dir(parts.slice(0, i).join("/"));
      this.fs.quietly(() => {
        if (this.fs.exists(d)) return;
        this.fs.mkdir(d, { mode: 0o755 });
        for (const f of ["cgroup.procs", "cpu.max", "cpu.weight", "memory.max", "pids.max"]) {
          this.fs.writeTextFile(`${d}/${f}`, f === "cgroup.procs" ? "" : "max\n");
        }
      });
    }
  }

  apply(rel: string, limits: CgroupLimits): void {
    if (this.faults.hit("cgroups.apply", rel)) {
      throw fsError(5, "write", `${this.#dir(rel)}/cgroup.procs`);
    }
    this.#make(rel);
    const d = this.#dir(rel);
    this.fs.quietly(() => {
      if (limits.cpuQuota && limits.cpuQuota > 0) {
        this.fs.writeTextFile(`${d}/cpu.max`, `${limits.cpuQuota} ${limits.cpuPeriod ?? 100000}\n`);
      }
      if (limits.memoryLimit !== undefined) {
        this.fs.writeTextFile(`${d}/memory.max`, `${limits.memoryLimit}\n`);
      }
      if (limits.pidsLimit !== undefined) {
        this.fs.writeTextFile(`${d}/pids.max`, `${limits.pidsLimit}\n`);
      }
    });
  }

  read(rel: string): CgroupLimits {
    const d = this.#dir(rel);
    const num = (f: string) => {
      const t = this.fs.quietly(() => this.fs.readTextFile(`${d}/${f}`)).trim();
      return t === "max" ? undefined : Number(t.split(" ")[0]);
    };
    const cpu = this.fs.quietly(() => this.fs.readTextFile(`${d}/cpu.max`)).trim().split(" ");
    return {
      cpuQuota: cpu[0] === "max" ? undefined : Number(cpu[0]),
      cpuPeriod: cpu[1] ? Number(cpu[1]) : undefined,
      memoryLimit: num("memory.max"),
      pidsLimit: num("pids.max"),
    };
  }

  /** A process joins `rel` (made when missing): the runtime's create. */
  attach(rel: string, pid: number): void {
    this.#make(rel);
    const f = `${this.#dir(rel)}/cgroup.procs`;
    this.fs.quietly(() => this.fs.writeTextFile(f, `${pid}\n`, { append: true }));
  }

  /** A process leaves `rel` (it exited). */
  detach(rel: string, pid: number): void {
    const f = `${this.#dir(rel)}/cgroup.procs`;
    this.fs.quietly(() => {
      if (!this.fs.exists(f)) return;
      const left = this.fs.readTextFile(f).split("\n").filter((l) => l && l !== String(pid));
      this.fs.writeTextFile(f, left.map((l) => `${l}\n`).join(""));
    });
  }

  /** rmdir of the cgroup alone, as youki's delete does (EBUSY with tasks or children). */
  rmdir(rel: string): void {
    if (!this.#exists(rel)) return;
    const d = this.#dir(rel);
    const entries = this.fs.quietly(() => this.fs.readDir(d));
    if (entries.some((e) => e.isDirectory) || this.pids(rel).length > 0) {
      throw fsError(16, "remove", d);
    }
    this.fs.quietly(() => this.fs.remove(d));
  }

  #removeTree(rel: string, keepRoot: boolean): void {
    if (!this.#exists(rel)) return;
    const d = this.#dir(rel);
    for (const e of this.fs.quietly(() => this.fs.readDir(d))) {
      if (e.isDirectory) this.#removeTree(`${rel}/${e.name}`, false);
    }
    if (!keepRoot) this.rmdir(rel);
  }

  remove(rel: string): void {
    if (this.faults.hit("cgroups.remove", rel)) throw fsError(5, "remove", this.#dir(rel));
    this.#removeTree(rel, false);
  }

  removeChildren(rel: string): void {
    if (this.faults.hit("cgroups.removeChildren", rel)) throw fsError(5, "remove", this.#dir(rel));
    this.#removeTree(rel, true);
  }

  pids(rel: string): number[] {
    if (!this.#exists(rel)) return [];
    const t = this.fs.quietly(() => this.fs.readTextFile(`${this.#dir(rel)}/cgroup.procs`));
    return t.split("\n").filter(Boolean).map(Number);
  }

  usage(rel: string): CgroupUsage | undefined {
    return this.#exists(rel) ? { cpuNs: 0, memoryBytes: 0, oomKills: 0 } : undefined;
  }

  ownProcsFile(): string | undefined {
    return undefined;
  }

  /** Every cgroup below the root with its tasks, for a snapshot. */
  list(): string[] {
    const out: string[] = [];
    const walk = (rel: string) => {
      const d = rel ? this.#dir(rel) : this.root;
      for (const e of this.fs.quietly(() => this.fs.readDir(d))) {
        if (!e.isDirectory) continue;
        const r = rel ? `${rel}/${e.name}` : e.name;
        const pids = this.pids(r);
        out.push(pids.length ? `${r} (${pids.length} tasks)` : r);
        walk(r);
      }
    };
    walk("");
    return out;
  }
}

interface Lease {
  network: string;
  ip: string;
  containerId: string;
  ifName: string;
  /** The bridge and veth the bridge plugin attached, when the list has one. */
  link?: { bridge: string; port: string };
  /** Host ports portmap forwards (`8080:80/tcp`). */
  ports: string[];
}

/**
 * CNI with host-local's bookkeeping: ADD takes the next free address of the
 * network's subnet (10.88.0.0/24 when its conflist names none) and writes the
 * lease file where host-local would (`ipam.dataDir/NETWORK/IP`); a second ADD
 * of one container id and interface is refused; DEL frees it, and a DEL of
 * something never added succeeds, as the CNI spec asks. The netns must exist.
 */
export class FakeCni extends CniClient {
  readonly leases: Lease[] = [];
  readonly calls: string[] = [];

  constructor(
    private readonly fs: MemFs,
    private readonly faults: Faults,
    private readonly links?: FakeLinks,
  ) {
    super(new FakeCommandRunner(), ["/fake/opt/cni/bin"]);
  }

  override findPlugin(type: string): string {
    return `/fake/opt/cni/bin/${type}`;
  }

  #ipam(list: NetConfList): { subnet: string; dataDir?: string } {
    for (const p of list.plugins) {
      const ipam =
        (p as { ipam?: { subnet?: string; dataDir?: string; ranges?: { subnet: string }[][] } })
          .ipam;
      if (!ipam) continue;
      return {
        subnet: ipam.subnet ?? ipam.ranges?.[0]?.[0]?.subnet ?? "10.88.0.0/24",
        dataDir: ipam.dataDir,
      };
    }
    return { subnet: "10.88.0.0/24" };
  }

  /** ADD of the whole chain, each plugin inside the host-wide locks `around` takes for it. */
  override async add(
    list: NetConfList,
    att: Attachment,
    around?: <T>(plugin: PluginConf, run: () => Promise<T>) => Promise<T>,
  ): Promise<CniResult> {
    if (!around) return await this.#add(list, att);
    // The locks are taken as the real client takes them (bridge's shared, portmap's alone);
    // the bookkeeping below stands for the whole chain and runs inside the first plugin's.
    let result: CniResult | undefined;
    for (const plugin of chainFor(list, att)) {
      await around(plugin, async () => {
        result ??= await this.#add(list, att);
      });
    }
    return result ?? await this.#add(list, att);
  }

  #add(list: NetConfList, att: Attachment): Promise<CniResult> {
    this.calls.push(`ADD ${list.name} ${att.containerId} ${att.ifName}`);
    if (this.faults.hit("cni.add", `${list.name} ${att.containerId}`)) {
      return Promise.reject(
        new NetworkError(
          `Cannot ADD network ${JSON.stringify(list.name)}: plugin bridge: injected fault`,
        ),
      );
    }
    if (!this.fs.quietly(() => this.fs.exists(att.netns))) {
      return Promise.reject(
        new NetworkError(
          `Cannot ADD network ${JSON.stringify(list.name)}: failed to open netns "${att.netns}"`,
        ),
      );
    }
    if (
      this.leases.some((l) =>
        l.network === list.name && l.containerId === att.containerId && l.ifName === att.ifName
      )
    ) {
      return Promise.reject(
        new NetworkError(
          `Cannot ADD network ${
            JSON.stringify(list.name)
          }: plugin host-local: duplicate allocation for ${att.containerId}`,
        ),
      );
    }
    const { subnet, dataDir } = this.#ipam(list);
    const [base, bits] = subnet.split("/");
    const o = base.split(".").map(Number);
    const size = 2 ** (32 - Number(bits));
    let ip: string | undefined;
    for (let i = 2; i < size - 1; i++) {
      const n = ((o[0] << 24) >>> 0) + (o[1] << 16) + (o[2] << 8) + o[3] + i;
      const cand = [n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255].join(".");
      if (!this.leases.some((l) => l.network === list.name && l.ip === cand)) {
        ip = cand;
        break;
      }
    }
    if (!ip) {
      return Promise.reject(
        new NetworkError(
          `Cannot ADD network ${
            JSON.stringify(list.name)
          }: plugin host-local: no IP addresses available in range set`,
        ),
      );
    }
    const host = `veth${att.containerId.slice(-6)}${att.ifName.slice(-1)}`;
    const bridge = bridgeName(list);
    const link = bridge ? { bridge, port: host } : undefined;
    if (link) this.links?.attach(link.bridge, link.port);
    const ports = (att.capabilityArgs?.portMappings ?? []).map((m) =>
      `${m.hostPort}:${m.containerPort}/${m.protocol ?? "tcp"}`
    );
    this.leases.push({
      network: list.name,
      ip,
      containerId: att.containerId,
      ifName: att.ifName,
      link,
      ports,
    });
    if (dataDir) {
      this.fs.quietly(() => {
        this.fs.mkdir(`${dataDir}/${list.name}`, { recursive: true });
        this.fs.writeTextFile(
          `${dataDir}/${list.name}/${ip}`,
          `${att.containerId}\r\n${att.ifName}`,
        );
      });
    }
    return Promise.resolve({
      cniVersion: list.cniVersion,
      interfaces: [{ name: host, mac: "02:00:00:00:00:01" }, {
        name: att.ifName,
        mac: "02:00:00:00:00:02",
        sandbox: att.netns,
      }],
      ips: [{ address: `${ip}/${bits}`, interface: 1, gateway: `${o[0]}.${o[1]}.${o[2]}.1` }],
    } as CniResult);
  }

  override del(list: NetConfList, att: Attachment): Promise<void> {
    this.calls.push(`DEL ${list.name} ${att.containerId} ${att.ifName}`);
    if (this.faults.hit("cni.del", `${list.name} ${att.containerId}`)) {
      return Promise.reject(
        new NetworkError(
          `Cannot DEL network ${JSON.stringify(list.name)}: plugin bridge: injected fault`,
        ),
      );
    }
    const { dataDir } = this.#ipam(list);
    for (let i = this.leases.length - 1; i >= 0; i--) {
      const l = this.leases[i];
      if (l.network !== list.name || l.containerId !== att.containerId || l.ifName !== att.ifName) {
        continue;
      }
      this.leases.splice(i, 1);
      if (l.link) this.links?.detach(l.link.bridge, l.link.port);
      if (dataDir) this.fs.quietly(() => this.fs.remove(`${dataDir}/${list.name}/${l.ip}`));
    }
    return Promise.resolve();
  }

  override check(list: NetConfList, att: Attachment): Promise<void> {
    this.calls.push(`CHECK ${list.name} ${att.containerId} ${att.ifName}`);
    if (this.faults.hit("cni.check", att.containerId, false)) {
      return Promise.reject(
        new NetworkError(`Cannot CHECK network ${JSON.stringify(list.name)}: injected fault`),
      );
    }
    return Promise.resolve();
  }

  /** `network ip containerId/ifName` of each lease, for a snapshot. */
  list(): string[] {
    return this.leases.map((l) =>
      `${l.network} ${l.ip} ${l.containerId}/${l.ifName}${
        l.ports.length ? ` ports ${l.ports.join(",")}` : ""
      }`
    ).sort();
  }
}
