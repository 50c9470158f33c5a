/** Everything with side effects that the workloads use, passed in explicitly. */
import type { CniClient } from "../net/cni.ts";
import type { OciRuntime } from "../oci/runtime.ts";
import type { StateStore } from "../store/store.ts";
import type { CgroupManager } from "../sys/cgroups/mod.ts";
import type { CommandRunner } from "../sys/command.ts";
import type { Syscalls } from "../sys/syscalls.ts";
import type { HostFs } from "../sys/fs.ts";
import type { ConmonOptions } from "../oci/conmon.ts";
import type { ImageService } from "../image/service.ts";
import { DEFAULT_CONF_DIR, type NetworkOptions } from "../net/network.ts";
import { type HostLock, slash24s } from "../net/hostnet.ts";

export interface RklPaths {
  /** Persistent state: records, container dirs, exit codes (`--root`). */
  root: string;
  /** Volatile state: netns pins, runtime state, conmon files, lock (`--run-root`). */
  runRoot: string;
  /** Container log files. */
  logDir: string;
  /** CNI conflists rkl owns. */
  cniConfDir: string;
  /** Where `seccompProfile: {type: Localhost}` profiles are looked up. */
  seccompDir?: string;
  /**
   * Prefix that keeps this state root's host-wide names (CNI container ids,
   * hence the plugins' nat chains) apart from another root's: "" for the
   * default root, `rXXXXXXXX-` (a hash of the root) for any other.
   */
  tag?: string;
}

/** The CNI container id of a container ("c") or pod ("p") of this root. */
export function cniIdFor(paths: Pick<RklPaths, "tag">, kind: "c" | "p", name: string): string {
  return `${paths.tag ?? ""}${kind}_${name}`;
}

/** The hash in this root's tag ("" for the default root). */
export function rootHash(paths: Pick<RklPaths, "tag">): string {
  return /^r([0-9a-f]{8})-$/.exec(paths.tag ?? "")?.[1] ?? "";
}

/**
 * How this root loads its networks. The default root's `rkl0` keeps its
 * bridge `rkl0` and 10.89.0.0/24 (what every earlier rkl made); any other
 * root's is bridge `rkl0-HASH` with the first /24 of 10.89.1.0-10.89.255.0
 * that nothing on the host uses (RKL_SUBNET, when set, is taken as given and
 * checked). Names derived from the root keep two roots off each other's
 * bridges, as CNI ids keep them off each other's nat rules; subnets cannot be
 * derived without a chance of collision, so they are chosen host-wide.
 */
export function networkOptions(
  host: Pick<Host, "paths" | "subnet" | "cmd"> & Partial<Pick<Host, "fs" | "lock">>,
): NetworkOptions {
  const hash = rootHash(host.paths);
  return {
    confDir: host.paths.cniConfDir,
    ipamDataDir: `${host.paths.root}/cni/networks`,
    subnet: host.subnet,
    bridge: hash ? `rkl0-${hash}` : undefined,
    candidates: hash ? slash24s("10.89", 1) : undefined,
    hostNet: {
      cmd: host.cmd,
      confDirs: [...new Set([host.paths.cniConfDir, DEFAULT_CONF_DIR])],
      fs: host.fs,
      lock: host.lock,
    },
  };
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable tag for a path. */
export function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** What the node says of itself: the downward API's nodeName and hostIP come from it. */
export interface HostNode {
  hostname(): string;
  networkInterfaces(): { name: string; family: "IPv4" | "IPv6"; address: string }[];
}

export interface Host {
  sys: Syscalls;
  /** Files under the state roots, /proc and /sys (an in-memory tree in tests). */
  fs: HostFs;
  /** Processes: this one, others' liveness, signals, and conmon's spawn. */
  proc: HostProc;
  cmd: CommandRunner;
  store: StateStore;
  cgroups: CgroupManager;
  /** The runtime for new containers. */
  runtime: OciRuntime;
  /** The runtime a container was created with (it keeps using that one). */
  runtimeFor(ref: RuntimeRef): OciRuntime;
  cni: CniClient;
  /** The host-wide locks under /run/lock (default: flock); a table of held locks in fakes. */
  lock?: HostLock;
  /** The image store (ROOT/images) and pulls; absent in fakes that use bundles only. */
  images?: ImageService;
  paths: RklPaths;
  /** The node's name and addresses; absent in fakes (nodeName "localhost", hostIP 127.0.0.1). */
  node?: HostNode;
  /** rkl's own pause bundle (built from catatonit on first use when missing). */
  pauseBundle: string;
  /** conmon binary. */
  conmon: string;
  /** Parent cgroup (relative) that holds every rkl container. */
  cgroupParent: string;
  /** This process's hard RLIMIT_NOFILE. */
  nofileHard: number;
  /** This process's hard limits by RLIMIT_* name (Infinity: unlimited), the ceiling for ulimits. */
  hardLimits?: Record<string, number>;
  /**
   * Identifies this run root's life: made anew when the run root is (after a
   * reboot wiped /run). A record made under another epoch describes
   * processes, mounts and namespaces that no longer exist.
   */
  epoch?: string;
  /** Largest size of a container's log before conmon starts it afresh (0: no limit). */
  logSizeMax?: number;
  /** When `rkl daemon` rotates logs, and how many files it keeps. */
  logRotation?: { maxBytes: number; maxFiles: number };
  /** Subnet for the default network when rkl writes its conflist. */
  subnet?: string;
  /** How to run this rkl again (helper processes such as the health monitor). */
  selfArgv?: string[];
  /** Set when rkl runs rootless, as root of the user's namespace (src/sys/userns.ts). */
  rootless?: RootlessHost;
  /** True when something on the host already listens on the port. */
  portInUse(port: number, protocol: "tcp" | "udp", hostIP: string): boolean;
  warn(message: string): void;
  now(): Date;
  sleep(ms: number): Promise<void>;
}

/** The rootless part of a Host (workloads/container/rootless.ts uses it). */
export interface RootlessHost {
  /** Lowest host port the user may bind (net.ipv4.ip_unprivileged_port_start). */
  unprivilegedPortStart: number;
  /** Pins a new network namespace with `lo` up at `path` (made by a child process). */
  createNetns(path: string): void;
  /** Why limits cannot apply, for the warning ("cgroup v1"). */
  limitsReason: string;
  /** Pins new IPC and/or UTS namespaces (with the hostname set), made by a child process. */
  createNamespaces?(pins: { ipc?: string; uts?: string }, hostname?: string): void;
  /** `--strict-limits`: refuse limits that cannot apply instead of warning. */
  strictLimits?: boolean;
}

/**
 * The process port: what the core asks of processes, so that a test can
 * answer from a table of pids and record the signals and spawns instead.
 */
export interface HostProc {
  /** This process's pid. */
  readonly self: number;
  /** State letter and start time of a process (/proc/PID/stat); undefined once it is gone. */
  stat(pid: number): { state: string; startTime: number } | undefined;
  /** kill(2): a negative pid signals that process group; throws when there is no such process. */
  kill(pid: number, signal: Deno.Signal): void;
  /** conmon + `runtime create` of a bundle (oci/conmon.ts); resolves to the container's pid. */
  createWithConmon(options: ConmonOptions): Promise<number>;
  /**
   * Starts a helper that outlives this process (`setsid ARGV`, no stdio, no
   * inherited fds); absent where helpers cannot be started.
   */
  spawnDetached?(argv: string[]): void;
}

/** Which runtime, and which state dir, a record belongs to. */
export interface RuntimeRef {
  name: string;
  binary: string;
  root: string;
}

/** Where a PersistentVolumeClaim's data lives: a named volume that outlives its pods. */
export function claimDir(paths: RklPaths, claim: string): string {
  return `${paths.root}/volumes/pvc-${claim}`;
}

export function containerDirs(
  paths: RklPaths,
  name: string,
) {
  const dir = `${paths.root}/containers/${name}`;
  return {
    dir,
    bundle: dir,
    config: `${dir}/config.json`,
    rootfs: `${dir}/rootfs`,
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    etc: `${dir}/etc`,
    subPaths: `${dir}/subpaths`,
    netns: `${paths.runRoot}/netns/c_${name}`,

    conmonDir: `${paths.runRoot}/conmon/${name}`,
    socketDir: `${paths.runRoot}/sock`,
    exitDir: `${paths.root}/exits`,
    log: `${paths.logDir}/${name}.log`,
  };
}

export type ContainerDirs = ReturnType<typeof containerDirs>;

/** The run root's epoch, made on first use (`boot_id` + a random part, so a wiped /run counts too). */
export function runRootEpoch(runRoot: string, fs: HostFs): string {
  const path = `${runRoot}/epoch`;
  try {
    return fs.readTextFile(path).trim();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let boot = "";
  try {
    boot = fs.readTextFile("/proc/sys/kernel/random/boot_id").trim().slice(0, 8);
  } catch { /* not Linux /proc */ }
  const epoch = `${boot}-${crypto.randomUUID().slice(0, 8)}`;
  fs.mkdir(runRoot, { recursive: true, mode: 0o711 });
  try {
    fs.writeTextFile(path, `${epoch}\n`, { createNew: true, mode: 0o644 });
    return epoch;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return fs.readTextFile(path).trim();
    throw e;
  }
}
