/**
 * Single containers: plan (pure) → apply (side effects).
 *
 * Rollback design: the store record lists each resource *before* it is made
 * (`resources`), and {@linkcode teardown} undoes exactly the listed ones,
 * tolerating the ones that are already gone. The same function is the undo
 * path of a failed create, the body of `rm`, and the cleanup after an rkl
 * process that died half-way (`rm -f` of a "creating" record), so there is
 * one rollback path to test instead of three.
 */
import { ConflictError, NotFoundError, RklError, SpecError } from "../errors.ts";
import {
  type CniResult,
  hostVeth,
  type NetConfList,
  type PortMapping,
  resultIPv4,
} from "../net/cni.ts";
import { bridgeName, loadNetwork } from "../net/network.ts";
import { removeIdlePortmapChains, removeNatRulesFor } from "../net/portmap.ts";
import { cniDown, cniUp, hostLocks } from "../net/attach.ts";
import { deleteIdleBridge, natTable } from "../net/hostnet.ts";
import { createWithConmon, killConmonGroup, readExitCode } from "../oci/conmon.ts";
import {
  type BundleDefaults,
  bundleDefaults,
  generateConfig,
  type GenerateContext,
  processArgs,
} from "../oci/generate.ts";
import type { OciConfig } from "../oci/spec.ts";
import { parseSeccompProfile, type SeccompProfile } from "../oci/seccomp.ts";
import type { ContainerSpec, LoadedContainer } from "../spec/container.ts";
import { DamagedRecordError, type StoredRecord } from "../store/store.ts";
import { runtimesKnowing, scavengeContainer } from "./scavenge.ts";
import { mountOverlay, mountPoints, unmount } from "../sys/mounts.ts";
import { stageSubPath, unstageSubPath } from "../sys/subpath.ts";
import { pathExists, privateDir } from "../sys/fsutil.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../sys/readfile.ts";
import { rotatedLogs } from "./logrotate.ts";
import { readUserFiles, resolveNames } from "./users.ts";
import { layeredUserFiles } from "../image/service.ts";
import { defaultPullPolicy } from "../image/reference.ts";
import { createNetns, removeNetns } from "../sys/netns.ts";
import { writeAtomic } from "../store/store.ts";
import { hostsFile, resolvConf } from "./etc_files.ts";
import type { PodInfo } from "../spec/downward.ts";
import type { ComposeHealthcheck } from "../spec/compose.ts";
import { runHook, type StoredHooks, storedHooks } from "./hooks.ts";
import { procStat } from "../sys/procstat.ts";
import { primeAttach } from "../sys/cgroups/mod.ts";
import { ensureHealthMonitor, healthFile } from "./health_spawn.ts";
export { procStat };
import { trace } from "../trace.ts";
import { linkGone } from "../sys/linkwatch.ts";
import { cancellable, checkCancelled } from "../cancel.ts";
import { callTimeoutMs } from "../timeouts.ts";
import { assertPortsFree, portConflict } from "./ports.ts";
import {
  claimDir,
  cniIdFor,
  type ContainerDirs,
  containerDirs,
  type Host,
  networkOptions,
  type RklPaths,
  type RuntimeRef,
} from "./host.ts";

export type ContainerStatus = "creating" | "created" | "running" | "exited" | "unknown";

export interface ContainerRecord extends StoredRecord {
  kind: "container";
  /** Runtime container id. */
  id: string;
  status: ContainerStatus;
  specFile: string;
  image: string;
  /** The image's id when the rootfs is made of an image's layers. */
  imageId?: string;
  /** Those layers' dirs as mounted (kept by `image rm -f` while the container exists). */
  lowerDirs?: string[];
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  pid?: number;
  /** Start time of `pid` (/proc/PID/stat field 22), to tell it from a reused pid. */
  pidStart?: number;
  /** How often rkl restarted it in place (restart policies, `rkl daemon`). */
  restarts?: number;
  /** Stopped by a user command: `unless-stopped` and `always` leave it stopped. */
  stoppedByUser?: boolean;

  runtime: RuntimeRef;
  cgroupPath: string;
  /** Limits asked for, as written to config.json. */
  limits: { cpuQuota?: number; cpuPeriod?: number; cpuShares?: number; memoryLimit?: number };
  network?: {
    name: string;
    /** CNI_CONTAINERID used for every attachment (absent in older records: `c_ID`). */
    cniId?: string;
    netns: string;
    ip?: string;
    conflist: NetConfList;
    result?: CniResult;
    portMappings: PortMapping[];
  };
  labels: Record<string, string>;
  /** Further networks (compose services on several networks): eth1, eth2, ... */
  extraNetworks?: ExtraNetwork[];
  /** In the host's network namespace (compose `network_mode: host`). */
  hostNetwork?: boolean;
  /** In this other container's network namespace (compose `network_mode: service:X`). */
  netnsOf?: string;
  /** process.terminal (`tty: true`): conmon holds the pty. */
  terminal?: boolean;
  /** conmon keeps a stdin pipe for attach; "once": closed when the first attach ends. */
  stdin?: "open" | "once";
  /** Signal `stop` sends first (default SIGTERM). */
  stopSignal?: string;
  /** Kubernetes lifecycle hooks, run at every start (postStart) and stop (preStop). */
  hooks?: StoredHooks;
  /** A compose healthcheck the health monitor runs while the container runs. */
  healthcheck?: ComposeHealthcheck;
  /** The pod this container belongs to (its sandbox is the pod's). */
  pod?: string;
  /** The process making it, while status is "creating": a dead owner means interrupted. */
  owner?: Owner;
  /** The run root's epoch it was made in (host.ts); another one means a reboot came between. */
  epoch?: string;
  /** What has been made so far; teardown undoes these. */

  resources: {
    dir?: boolean;
    overlay?: boolean;
    netns?: boolean;
    cni?: boolean;
    runtime?: boolean;
    subPaths?: boolean;
  };
  dirs: ContainerDirs;
  /** Volume subPaths, staged on `target` at create and again at each restart. */
  subPaths?: StagedSubPath[];
  /** Made through the CRI (CreateContainer): its metadata; the record name is its id. */
  cri?: CriContainerInfo;
}

/** What the CRI asked for a container, kept for its status and list calls. */
export interface CriContainerInfo {
  sandboxId: string;
  name: string;
  attempt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The image as the request named it (a reference or an image id). */
  image: string;
  /** The mounts as asked for, for ContainerStatus. */
  mounts?: CriMount[];
}

export interface CriMount {
  container_path: string;
  host_path: string;
  readonly: boolean;
  propagation: string;
  recursive_read_only?: boolean;
}

export interface StagedSubPath {
  root: string;
  subPath: string;
  target: string;
  /** Index in the spec's mounts, to locate errors. */
  mount: number;
}

/**
 * Removing what another live process is still making would race with it
 * (its next step would write the record back): refused, with who it is.
 * An owner that died is no obstacle; that is what rm -f and gc are for.
 */
export function refuseWhileBeingMade(
  name: string,
  what: "container" | "pod",
  owner: Owner | undefined,
): void {
  if (!owner || owner.pid === Deno.pid || ownerGone(owner)) return;
  throw new ConflictError(
    `Cannot remove ${what} ${JSON.stringify(name)}: process ${owner.pid} is still creating it`,
    { hint: "wait for that command to finish, or interrupt it (it rolls back)" },
  );
}

/**
 * Read-modify-write of a container record under the store lock, on the
 * record as it is now (not a copy read earlier); undefined when it is gone.
 */
export async function updateContainer(
  host: Host,
  name: string,
  fn: (rec: ContainerRecord) => void,
): Promise<ContainerRecord | undefined> {
  return await host.store.withLock(() => {
    const rec = host.store.get<ContainerRecord>("containers", name);
    if (!rec) return Promise.resolve(undefined);
    fn(rec);
    host.store.put("containers", rec);
    return Promise.resolve(rec);
  });
}

/** A process, told from a later one with its pid by its start time. */
export interface Owner {
  pid: number;
  start: number;
}

/** This process as an owner. */
export function selfOwner(): Owner {
  return { pid: Deno.pid, start: procStat(Deno.pid)?.startTime ?? 0 };
}

/** True when the record's owner is set and is no longer running. */
export function ownerGone(owner: Owner | undefined): boolean {
  if (!owner) return false;
  const s = procStat(owner.pid);
  return !s || s.state === "Z" || s.startTime !== owner.start;
}

export interface ExtraNetwork {
  name: string;
  ifName: string;
  conflist: NetConfList;
  result?: CniResult;
  ip?: string;
}

export interface ContainerPlan {
  name: string;
  id: string;
  subPaths: StagedSubPath[];
  network: string | null;
  portMappings: PortMapping[];
  dirs: ContainerDirs;
  cgroupPath: string;
  config: OciConfig;
}

/** Another container's network namespace (a pinned netns file) and its hosts, hostname, resolv.conf. */
export interface JoinNetwork {
  /** The container whose namespace this is, for messages. */
  container: string;
  netns: string;
  etcDir: string;
  hostname: string;
}

export interface PlanOptions {
  host: Pick<Host, "paths" | "cgroupParent" | "nofileHard" | "hardLimits">;
  /** Run in the host's network namespace (compose `network_mode: host`). */
  hostNetwork?: boolean;
  /** The container's `Localhost` seccomp profile, already read. */
  localhostSeccomp?: SeccompProfile;
  /** Network name, or null for a container with only loopback. */
  network: string | null;
  bundle: BundleDefaults;
  /** A pod's sandbox to join instead of making one. */
  sandbox?: Sandbox;
  /** Another container's network namespace and /etc files to use (compose `network_mode: service:X`). */
  joinNetwork?: JoinNetwork;
  /** Downward-API fields without a sandbox (`pod validate` shows placeholders). */
  podInfo?: PodInfo;
}

/** What a pod gives the containers that join it. */
export interface Sandbox {
  pod: string;
  /** Store key and runtime id of the container (`pod_name`, `pod__pause`). */
  recordName: string;
  hostname: string;
  /** Directory with the pod's hosts, hostname and resolv.conf. */
  etcDir: string;
  /** Namespaces to join (paths), or "host". */
  join: NonNullable<GenerateContext["joinNamespaces"]>;
  cgroupPath: string;
  /** emptyDir and files volume name → host directory. */
  emptyDirs: Record<string, string>;
  labels: Record<string, string>;
  /** The pod's fields for env entries with a fieldRef. */
  podInfo?: PodInfo;
}

/** The pod's volumes as host paths: per-pod dirs, and claims under the volumes dir. */
function withPodVolumes(spec: ContainerSpec, dirs: Record<string, string>, paths: RklPaths) {
  return {
    ...spec,
    mounts: spec.mounts.map((m) => {
      if (m.kind === "emptyDir" || m.kind === "files" || m.kind === "image") {
        return { ...m, source: dirs[m.volume!] };
      }
      if (m.kind === "claim") return { ...m, source: claimDir(paths, m.volume!) };
      return m;
    }),
  };
}

/** Port mappings for portmap from the spec's ports (hostPort 0 is not published). */
export function portMappings(ports: LoadedContainer["spec"]["ports"]): PortMapping[] {
  return ports.filter((p) => (p.hostPort ?? 0) > 0).map((p) => ({
    hostPort: p.hostPort!,
    containerPort: p.containerPort,
    protocol: (p.protocol || "TCP").toLowerCase() as "tcp" | "udp",
    ...(p.hostIP ? { hostIP: p.hostIP } : {}),
  }));
}

/** Pure: what the container will be, with no I/O. */
export function planContainer(loaded: LoadedContainer, options: PlanOptions): ContainerPlan {
  const sb = options.sandbox;
  const spec = sb ? withPodVolumes(loaded.spec, sb.emptyDirs, options.host.paths) : loaded.spec;
  const name = sb?.recordName ?? spec.name;
  const dirs = containerDirs(options.host.paths, name);
  const cgroupPath = sb?.cgroupPath ?? `${options.host.cgroupParent}/${spec.name}`;
  const join = options.joinNetwork;
  const etc = sb?.etcDir ?? join?.etcDir ?? dirs.etc;
  if (!processArgs(spec, options.bundle)) {
    throw new SpecError(
      loaded.source.at(["args"]),
      "no command: set command or args (the bundle's config.json has no process.args)",
    );
  }
  const config = generateConfig(spec, {
    rootfs: dirs.rootfs,
    cgroupsPath: `/${cgroupPath}`,
    hostname: sb?.hostname ?? join?.hostname ?? spec.hostname ?? spec.name,
    etcFiles: {
      hosts: `${etc}/hosts`,
      hostname: `${etc}/hostname`,
      resolvConf: `${etc}/resolv.conf`,
    },
    joinNamespaces: sb?.join ??
      { network: options.hostNetwork ? "host" : join?.netns ?? dirs.netns },
    nofileHard: options.host.nofileHard,
    ...(spec.pidsLimit !== undefined ? { pidsLimit: spec.pidsLimit } : {}),
    bundle: options.bundle,
    annotations: sb
      ? { "org.rkl.kind": "pod-container", "org.rkl.pod": sb.pod, "org.rkl.name": spec.name }
      : { "org.rkl.kind": "container", "org.rkl.name": spec.name },
    localhostSeccomp: options.localhostSeccomp,
    podInfo: sb?.podInfo ?? options.podInfo,
  });
  // A subPath mount's source is its staging path, bind-mounted at create.
  const subPaths: StagedSubPath[] = [];
  spec.mounts.forEach((m, i) => {
    if (!m.subPath) return;
    const target = `${dirs.subPaths}/${i}`;
    subPaths.push({ root: m.source, subPath: m.subPath, target, mount: i });
    const cm = config.mounts.find((c) => c.destination === m.destination && c.type === "bind");
    if (cm) cm.source = target;
  });
  for (const [i, u] of (spec.ulimits ?? []).entries()) {
    // Without CAP_SYS_RESOURCE nothing may raise a hard limit above this process's own.
    const ceiling = options.host.hardLimits?.[u.type];
    if (ceiling !== undefined && u.hard > ceiling) {
      const at = loaded.source.at(["ulimits", i]);
      throw new SpecError(
        at,
        `${u.type.slice(7).toLowerCase()} hard limit ${u.hard} is above this host's ${ceiling}`,
      );
    }
  }
  if (spec.securityContext.runAsNonRoot && config.process.user.uid === 0) {
    // The kubelet's check: the uid the process will have, from the spec or the image.
    throw new SpecError(
      loaded.source.at(["securityContext", "runAsNonRoot"]),
      "runAsNonRoot is set but the container would run as root (uid 0): set runAsUser to a non-zero uid",
    );
  }
  return {
    name,
    id: name,
    network: sb ? null : options.network,
    portMappings: !sb && options.network ? portMappings(spec.ports) : [],

    dirs,
    cgroupPath,
    config,
    subPaths,
  };
}

/** Reads the bundle's config.json (optional) and checks its rootfs exists. */
export function readBundle(loaded: LoadedContainer): BundleDefaults {
  const image = loaded.spec.image;
  try {
    if (!Deno.statSync(`${image}/rootfs`).isDirectory) throw new Error();
  } catch {
    throw new SpecError(
      loaded.source.at(["image"]),
      `bundle ${JSON.stringify(image)} has no rootfs/ directory`,
    );
  }
  try {
    return bundleDefaults(JSON.parse(Deno.readTextFileSync(`${image}/config.json`)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new SpecError(
      loaded.source.at(["image"]),
      `Cannot read ${image}/config.json: ${(e as Error).message}`,
    );
  }
}

const RESOLV = "/etc/resolv.conf";

/**
 * Checks each hostPath against its Kubernetes `type` (making it for the
 * *OrCreate ones, as the kubelet does) before anything else is made, so a
 * missing or wrong source is an error at its line instead of the runtime's
 * "failed to prepare rootfs" that names no path.
 */
export function prepareHostPaths(
  loaded: LoadedContainer,
  options: { dryRun?: boolean } = {},
): string[] {
  const notes: string[] = [];
  for (const m of loaded.spec.mounts) {
    if (m.kind !== "hostPath" || !m.loc) continue;
    const type = m.hostPathType ?? "";
    const fail = (why: string): never => {
      throw new SpecError(m.loc!, `hostPath ${JSON.stringify(m.source)} ${why}`);
    };
    let st: Deno.FileInfo | undefined;
    try {
      st = Deno.statSync(m.source);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) fail(`cannot be read: ${(e as Error).message}`);
    }
    if (!st) {
      const dirType = type === "DirectoryOrCreate" || m.createMissingDir;
      if (options.dryRun && (dirType || type === "FileOrCreate")) {
        notes.push(`hostPath ${m.source} will be created (${type || "a directory"})`);
        continue;
      }
      if (dirType) {
        Deno.mkdirSync(m.source, { recursive: true, mode: 0o755 });
        continue;
      }
      if (type === "FileOrCreate") {
        try {
          Deno.writeFileSync(m.source, new Uint8Array(), { createNew: true, mode: 0o644 });
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) {
            fail(`cannot be created: ${(e as Error).message}`);
          }
        }
        continue;
      }
      fail(
        type === ""
          ? "does not exist (the bind's create_host_path is false)"
          : `does not exist (type ${type})`,
      );
    }
    const is: Record<string, boolean> = {
      DirectoryOrCreate: st!.isDirectory,
      Directory: st!.isDirectory,
      FileOrCreate: st!.isFile,
      File: st!.isFile,
      Socket: st!.isSocket === true,
      CharDevice: st!.isCharDevice === true,
      BlockDevice: st!.isBlockDevice === true,
    };
    if (type !== "" && !is[type]) fail(`is not what type ${type} asks for`);
  }
  return notes;
}

/** What a container's root filesystem is made of: a bundle's rootfs or an image's layers. */
export interface RootSource {
  /** overlayfs lower dirs, topmost first. */
  lowers: string[];
  defaults: BundleDefaults;
  /** The image's id when the rootfs is an image. */
  imageId?: string;
  /** The /etc/passwd and /etc/group the container will see. */
  userFiles(): { passwd?: string; group?: string };
  /** How messages name it. */
  where: string;
}

/**
 * The container's root filesystem source. A bundle (an absolute path once
 * parsed) is read as it is; an image reference is pulled as its policy says
 * (default: Always for `:latest`, else IfNotPresent), or with `pull: false`
 * only looked up (undefined lowers when absent: a dry run).
 */
export async function rootSource(
  host: Pick<Host, "sys" | "images">,
  loaded: LoadedContainer,
  options: { pull?: boolean } = {},
): Promise<RootSource> {
  const image = loaded.spec.image;
  if (image.startsWith("/")) {
    const defaults = readBundle(loaded);
    const rootfs = `${image}/rootfs`;
    return {
      lowers: [rootfs],
      defaults,
      userFiles: () => readUserFiles(host.sys, rootfs),
      where: rootfs,
    };
  }
  const at = loaded.source.at(["image"]);
  if (!host.images) throw new SpecError(at, `image ${JSON.stringify(image)}: no image store here`);
  const policy = loaded.spec.imagePullPolicy ?? defaultPullPolicy(image);
  const rec = options.pull === false
    ? host.images.store.find(image)
    : await host.images.ensure(image, policy, at);
  if (!rec) return { lowers: [], defaults: {}, userFiles: () => ({}), where: `image ${image}` };
  const view = host.images.view(host.sys, rec, at);
  return {
    lowers: view.lowers,
    defaults: view.defaults,
    imageId: rec.id,
    userFiles: () => layeredUserFiles(host.sys, view.lowers),
    where: `image ${image}`,
  };
}

/** The spec with user/group names turned into ids from the rootfs's own files. */
export function withResolvedUser(
  host: Pick<Host, "sys">,
  loaded: LoadedContainer,
  source?: RootSource,
): LoadedContainer {
  const names = loaded.spec.userNames;
  if (!names) return loaded;
  const rootfs = `${loaded.spec.image}/rootfs`;
  const sc = loaded.spec.securityContext;
  const ids = resolveNames(names, { uid: sc.runAsUser, gid: sc.runAsGroup }, {
    ...(source ? source.userFiles() : readUserFiles(host.sys, rootfs)),
    where: source?.where ?? rootfs,
  });
  return {
    ...loaded,
    spec: { ...loaded.spec, securityContext: { ...sc, runAsUser: ids.uid, runAsGroup: ids.gid } },
  };
}

/** Reads the profile a `seccompProfile: {type: Localhost}` names, from the seccomp dir. */
export function readLocalhostSeccomp(
  host: Pick<Host, "paths">,
  loaded: LoadedContainer,
): SeccompProfile | undefined {
  const p = loaded.spec.securityContext.seccompProfile;
  if (p?.type !== "Localhost" || !p.localhostProfile) return undefined;
  const dir = host.paths.seccompDir ?? `${host.paths.root}/seccomp`;
  // The CRI names profiles by absolute path; the YAML schema allows only relative ones.
  const file = p.localhostProfile.startsWith("/")
    ? p.localhostProfile
    : `${dir}/${p.localhostProfile}`;
  const at = loaded.source.at(["securityContext", "seccompProfile", "localhostProfile"]);
  let text: string;
  try {
    text = readTextBounded(file, { max: MAX_INPUT_BYTES });
  } catch (e) {
    const why = e instanceof FileReadError ? e.reason : (e as Error).message;
    throw new SpecError(at, `Cannot read seccomp profile ${file}: ${why}`, { cause: e });
  }
  try {
    return parseSeccompProfile(text, file);
  } catch (e) {
    throw new SpecError(at, (e as Error).message);
  }
}

/** Creates the container (not started). On any failure everything made is undone. */
export function createContainer(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<ContainerRecord> {
  return cancellable(() => createContainerNow(host, loaded, options));
}

export interface CreateOptions {
  network: string | null;
  sandbox?: Sandbox;
  extraNetworks?: string[];
  /** The host's network namespace: no netns, no CNI, the host's /etc files. */
  hostNetwork?: boolean;
  /** Another container's network namespace and /etc files: no netns or CNI of its own. */
  joinNetwork?: JoinNetwork;
  /** Fixed addresses and MACs by network name (compose `ipv4_address`, `mac_address`). */
  fixed?: Record<string, { ips?: string[]; mac?: string }>;
  /** Made through the CRI: kept on the record. */
  cri?: CriContainerInfo;
  /** Where conmon writes the log instead of the log dir (the CRI's log_directory/log_path). */
  logPath?: string;
  /** The caller starts it at once and saves it then (run): no save as "created" between. */
  thenStart?: boolean;
}

async function createContainerNow(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<ContainerRecord> {
  trace("create: begin");
  // The runtime's cgroup attach, 10-30 ms from now, then waits little (see primeAttach).
  void primeAttach(host.cgroups);
  // Host ports other roots and other forwarders hold (the nat table), read
  // while the create is planned: an iptables-save of 2-3 ms, off the path.
  const natRead = !options.hostNetwork && !options.sandbox && options.network &&
      portMappings(loaded.spec.ports).length > 0
    ? natTable(host.cmd)
    : undefined;
  const source = await rootSource(host, loaded);
  const bundle = source.defaults;
  prepareHostPaths(loaded);
  loaded = withResolvedUser(host, loaded, source);
  const sandbox = options.sandbox;
  const plan = planContainer(loaded, {
    host,
    network: options.hostNetwork || options.joinNetwork ? null : options.network,
    hostNetwork: options.hostNetwork,
    joinNetwork: options.joinNetwork,
    bundle,
    sandbox,
    localhostSeccomp: readLocalhostSeccomp(host, loaded),
  });
  if (options.logPath) plan.dirs.log = options.logPath;
  const netOptions = networkOptions(host);
  const conflist = plan.network ? await loadNetwork(plan.network, netOptions) : undefined;
  const extra: ExtraNetwork[] = [];
  const extraNames = sandbox || options.hostNetwork || options.joinNetwork
    ? []
    : options.extraNetworks ?? [];
  for (const [k, n] of extraNames.entries()) {
    extra.push({ name: n, ifName: `eth${k + 1}`, conflist: await loadNetwork(n, netOptions) });
  }
  const nat = plan.portMappings.length > 0 ? await (natRead ?? natTable(host.cmd)) : "";

  // Everything this create is going to make. The reservation stores it all
  // (synced) before any of it exists, so an rkl that dies midway leaves a
  // record naming every part, and teardown takes a missing part as removed:
  // refuseLeftovers() has just found none of these paths, and the name is
  // ours from then on. In memory, `resources` says what has been started
  // (this process's own rollback undoes just that); a part found not to be
  // ours is set false there, and every save stores the plan with those
  // changes on top. One synced write instead of one per step.
  const ownSandbox = !options.hostNetwork && !sandbox && !options.joinNetwork;
  const planned: ContainerRecord["resources"] = {
    dir: true,
    overlay: true,
    subPaths: plan.subPaths.length > 0 || undefined,
    netns: ownSandbox || undefined,
    cni: ownSandbox || undefined,
    runtime: true,
  };
  const rec: ContainerRecord = await host.store.withLock(() => {
    if (host.store.get("containers", plan.name)) {
      if (sandbox) {
        throw new ConflictError(
          `Cannot create container ${JSON.stringify(plan.name)}: a record with that name exists`,
        );
      }
      throw new ConflictError(
        `${locText(loaded, ["name"])}: Cannot create container: name ${
          JSON.stringify(plan.name)
        } is already in use`,
      );
    }
    refuseLeftovers(host, plan.name, "container");
    checkPorts(host, loaded, plan.portMappings, nat);
    const r: ContainerRecord = {
      schemaVersion: 1,
      kind: "container",
      name: plan.name,
      id: plan.id,
      status: "creating",
      specFile: loaded.source.file,
      image: loaded.spec.image,
      imageId: source.imageId,
      lowerDirs: source.imageId ? source.lowers : undefined,
      createdAt: host.now().toISOString(),
      runtime: { name: host.runtime.name, binary: host.runtime.binary, root: host.runtime.root },
      cgroupPath: plan.cgroupPath,
      limits: {
        cpuQuota: plan.config.linux.resources.cpu?.quota,
        cpuPeriod: plan.config.linux.resources.cpu?.period,
        cpuShares: plan.config.linux.resources.cpu?.shares,
        memoryLimit: plan.config.linux.resources.memory?.limit,
      },
      network: conflist
        ? {
          name: plan.network!,
          cniId: cniIdFor(host.paths, "c", plan.id),
          netns: plan.dirs.netns,
          conflist,
          portMappings: plan.portMappings,
        }
        : undefined,
      labels: sandbox?.labels ?? loaded.spec.labels,
      pod: sandbox?.pod,
      extraNetworks: extra.length > 0 ? extra : undefined,
      hostNetwork: options.hostNetwork || undefined,
      netnsOf: options.joinNetwork?.container,
      terminal: plan.config.process.terminal || undefined,
      stdin: loaded.spec.stdin ? (loaded.spec.stdinOnce ? "once" : "open") : undefined,
      stopSignal: loaded.spec.stopSignal,
      hooks: storedHooks(loaded.spec.lifecycle, loaded.spec.ports),
      healthcheck: loaded.spec.healthcheck,
      cri: options.cri,
      resources: planned,
      subPaths: plan.subPaths.length > 0 ? plan.subPaths : undefined,
      dirs: plan.dirs,
      owner: selfOwner(),
      epoch: host.epoch,
    };
    host.store.put("containers", r);
    return Promise.resolve({ ...r, resources: {} });
  });

  trace("create: record reserved");
  const save = () => {
    host.store.put("containers", { ...rec, resources: { ...planned, ...rec.resources } });
    checkCancelled();
  };
  try {
    const d = plan.dirs;
    rec.resources.dir = true;
    checkCancelled(); // every step starts here: a good place to stop
    // Root-only: no host user may walk into a container's files or logs.
    privateDir(`${host.paths.root}/containers`);
    privateDir(host.paths.logDir);
    privateDir(`${host.paths.runRoot}/conmon`);
    // Claimed exclusively: if it exists now, it is someone else's, and the
    // rollback must not remove it.
    try {
      Deno.mkdirSync(d.dir, { mode: 0o711 });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        // Someone else's: nothing of this create may be undone in or under it.
        for (const k of Object.keys(planned) as (keyof typeof planned)[]) rec.resources[k] = false;
        save();
      } else rec.resources.dir = false;
      throw e instanceof Deno.errors.AlreadyExists
        ? new ConflictError(`Cannot create container ${JSON.stringify(rec.name)}: ${d.dir} exists`)
        : e;
    }
    for (
      const p of [
        d.upper,
        d.work,
        d.rootfs,
        d.etc,
        d.exitDir,
        d.socketDir,
        host.paths.logDir,
        d.log.slice(0, d.log.lastIndexOf("/")),
      ]
    ) {
      Deno.mkdirSync(p, { recursive: true, mode: 0o711 });
    }
    rec.resources.overlay = true;
    checkCancelled();
    mountOverlay(host.sys, {
      lower: source.lowers,
      upper: d.upper,
      work: d.work,
      merged: d.rootfs,
    });

    trace("create: overlay mounted");
    if (plan.subPaths.length > 0) {
      rec.resources.subPaths = true; // rec.subPaths: in the reservation
      checkCancelled();
      stageSubPaths(host, rec, loaded);
    }
    trace("create: dirs + overlay");
    if (options.hostNetwork) {
      for (const f of ["hosts", "hostname", "resolv.conf"]) {
        Deno.writeTextFileSync(`${d.etc}/${f}`, readOr(`/etc/${f}`));
      }
    } else if (!sandbox && !options.joinNetwork) {
      await setUpOwnSandbox(host, rec, plan, conflist, save, options.fixed);
    }
    writeAtomic(d.config, JSON.stringify(plan.config, null, 2) + "\n");
    trace("create: config written");
    rec.resources.runtime = true;
    checkCancelled();
    await launch(host, rec);
    trace("create: conmon + runtime create");
    rec.owner = undefined; // made: no longer anyone's half-done work
    // A run saves it once, started; until then it stays "creating", ours.
    if (!options.thenStart) save();
    else checkCancelled();
    return rec;
  } catch (e) {
    await rollback(host, rec, e);
    throw e;
  }
}

/**
 * CNI_CONTAINERID of a single container. Pods use `p_NAME`; the kind prefix
 * (names cannot hold '_') keeps a container and a pod of one name apart.
 */
export function cniContainerId(rec: { id: string; network?: { cniId?: string } }): string {
  return rec.network?.cniId ?? `c_${rec.id}`; // records made before ids carried the root's tag
}

/** A single container's own network namespace, CNI attachments and /etc files. */
async function setUpOwnSandbox(
  host: Host,
  rec: ContainerRecord,
  plan: ContainerPlan,
  conflist: NetConfList | undefined,
  save: () => void,
  fixed?: CreateOptions["fixed"],
): Promise<void> {
  const d = plan.dirs;
  Deno.mkdirSync(`${host.paths.runRoot}/netns`, { recursive: true, mode: 0o755 });
  rec.resources.netns = true;
  checkCancelled();
  try {
    createNetns(host.sys, d.netns);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      // Not ours: never unpinned, and no DEL or runtime delete in it either.
      Object.assign(rec.resources, { netns: false, cni: false, runtime: false });
      save();
    }
    throw e;
  }
  trace("create: netns");
  rec.resources.cni = true;
  checkCancelled();
  const result = await cniUp(host.cni, {
    cniId: cniContainerId(rec),
    netns: d.netns,
    conflist,
    portMappings: plan.portMappings,
    fixed: rec.network ? fixed?.[rec.network.name] : undefined,
    portsFree: () => assertPortsFree(host, plan.portMappings, cniContainerId(rec)),
  });
  if (result && rec.network) {
    rec.network.result = result;
    rec.network.ip = resultIPv4(result);
    save();
  }
  for (const x of rec.extraNetworks ?? []) {
    x.result = await host.cni.add(x.conflist, {
      containerId: cniContainerId(rec),
      netns: d.netns,
      ifName: x.ifName,
      ...(fixed?.[x.name] ? { capabilityArgs: fixed[x.name] } : {}),
    }, hostLocks());
    x.ip = resultIPv4(x.result);
    save();
  }

  Deno.writeTextFileSync(
    `${d.etc}/hosts`,
    hostsFile(plan.config.hostname ?? plan.name, rec.network?.ip),
  );
  Deno.writeTextFileSync(`${d.etc}/hostname`, `${plan.config.hostname ?? plan.name}\n`);
  Deno.writeTextFileSync(`${d.etc}/resolv.conf`, resolvConf(readOr(RESOLV)));
  trace("create: cni + etc files");
}

async function rollback(host: Host, rec: ContainerRecord, cause: unknown): Promise<void> {
  try {
    await teardown(host, rec);
  } catch (e) {
    host.warn(
      `Cannot roll back container ${JSON.stringify(rec.name)} after "${
        (cause as Error).message
      }": ${(e as Error).message}`,
    );
  }
}

/** (Re)stages every subPath of the container; errors name the volumeMount. */
function stageSubPaths(host: Host, rec: ContainerRecord, loaded?: LoadedContainer): void {
  if (!rec.subPaths || rec.subPaths.length === 0) return;
  privateDir(rec.dirs.subPaths);
  for (const sp of rec.subPaths) {
    try {
      stageSubPath(host.sys, sp);
    } catch (e) {
      const where = loaded ? `${locText(loaded, ["volumeMounts", sp.mount, "subPath"])}: ` : "";
      throw new RklError(
        "ESUBPATH",
        `${where}Cannot mount subPath of container ${JSON.stringify(rec.name)}: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
  }
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

export function locText(loaded: LoadedContainer, path: (string | number)[]): string {
  const at = loaded.source.at(path);
  return `${at.file}${at.line ? `:${at.line}:${at.column}` : ""}`;
}

/**
 * Refuses a name whose resources are still on the host though no record
 * owns them (a record deleted by hand, a crash before `rkl gc` ran): making
 * the new object would share, and its rollback destroy, the old one's.
 */
export function refuseLeftovers(host: Host, name: string, what: "container" | "pod"): void {
  const paths = what === "container"
    ? (() => {
      const d = containerDirs(host.paths, name);
      return [d.dir, d.conmonDir, d.netns];
    })()
    : [
      `${host.paths.root}/pods/${name}`,
      `${host.paths.runRoot}/netns/p_${name}`,
      `${host.paths.runRoot}/ns/p_${name}`,
    ];
  const known = what === "container" ? runtimesKnowing(host, name)[0] : undefined;
  const found = paths.find(pathExists) ?? (known ? `${known[1]}/${name}` : undefined);
  if (found) {
    throw new ConflictError(
      `Cannot create ${what} ${
        JSON.stringify(name)
      }: ${found} is left from an earlier ${what} of that name whose record is gone`,
      { hint: "rkl gc removes what no record owns (rkl gc --dry-run shows it first)" },
    );
  }
}

/** hostPorts must be free: neither published by another rkl workload nor bound on the host. */
function checkPorts(
  host: Host,
  loaded: LoadedContainer,
  mappings: PortMapping[],
  nat: string,
): void {
  const c = portConflict(host, mappings, { nat });
  if (!c) return;
  const i = loaded.spec.ports.findIndex((p) => p.hostPort === c.mapping.hostPort);
  throw new ConflictError(
    `${
      locText(loaded, ["ports", i, "hostPort"])
    }: Cannot publish port ${c.mapping.hostPort}/${c.mapping.protocol}: ${c.reason}`,
  );
}

/** conmon + `runtime create` of the container's bundle; sets pid and status "created". */
async function launch(host: Host, rec: ContainerRecord): Promise<void> {
  const d = rec.dirs;
  // Again, in case the wait primed at "create: begin" is over by now.
  void primeAttach(host.cgroups);
  rec.pid = await createWithConmon(host.sys, {
    conmon: host.conmon,
    runtime: host.runtimeFor(rec.runtime),
    id: rec.id,
    name: rec.name,
    bundle: d.bundle,
    workDir: d.conmonDir,
    logPath: d.log,
    exitDir: d.exitDir,
    socketDir: d.socketDir,
    logSizeMax: host.logSizeMax,
    terminal: rec.terminal,
    stdin: rec.stdin,
  });
  rec.pidStart = procStat(rec.pid)?.startTime;
  rec.status = "created";
}

/**
 * Restarts an exited container in place, as the kubelet does: same bundle,
 * rootfs view, namespaces and cgroup path; a new process, log appended,
 * `restarts` + 1.
 */
export async function restartContainer(host: Host, name: string): Promise<ContainerRecord> {
  return await host.store.withLock(async () => {
    const rec = getContainer(host, name);
    await deleteWithRetry(host, rec);
    await waitConmonGone(host, rec.dirs.conmonDir);
    removeAll(`${rec.dirs.exitDir}/${rec.id}`);
    // Resolved again: the volume may have changed under the subPath since.
    stageSubPaths(host, rec);
    await launch(host, rec);
    rec.restarts = (rec.restarts ?? 0) + 1;
    rec.exitCode = undefined;
    rec.finishedAt = undefined;
    rec.stoppedByUser = false;
    host.store.put("containers", rec);
    return await startCreated(host, rec);
  });
}

/**
 * Undoes whatever `rec.resources` lists, newest first. Idempotent.
 * `keepBridges`: bridges whose removal the caller has taken over (compose
 * down deletes a project's bridge beside the DELs, as pod teardown does).
 */
export async function teardown(
  host: Host,
  rec: ContainerRecord,
  options: { keepBridges?: ReadonlySet<string> } = {},
): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => unknown | Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  const d = rec.dirs;
  const runtimeDown = async () => {
    if (!rec.resources.runtime) return;
    // An interrupted create may still be running in conmon: let it finish,
    // or the container it makes would appear after this teardown.
    if (rec.status === "creating") await step(() => settleConmon(host, d.conmonDir));
    await step(() => deleteWithRetry(host, rec));
    trace("teardown: runtime delete");
    await step(() => waitConmonGone(host, d.conmonDir, { kill: true }));
    trace("teardown: conmon gone");
    await step(() => removeCgroup(host, rec.cgroupPath));
    await step(() => removeEmptyParent(host, rec.cgroupPath));
  };
  const cniErrors: unknown[] = [];
  const networkDown = async () => {
    if (rec.resources.cni) await cniDel(host, rec, cniErrors);
  };
  // In its own pinned netns, DEL needs none of the container's processes:
  // it runs beside the runtime's delete (bridge's DEL is mostly iptables
  // commits, 40-70 ms). Any other netns keeps the old order.
  if (rec.resources.netns) await Promise.all([runtimeDown(), networkDown()]);
  else {
    await runtimeDown();
    await networkDown();
  }
  errors.push(...cniErrors);
  // A failed DEL is retried by the next rm -f, and the plugins need the
  // netns for it (bridge removes its masquerade rules from inside it).
  const cniFailed = cniErrors.length > 0;
  if (rec.resources.netns && !cniFailed) await step(() => removeNetns(host.sys, d.netns));
  if (rec.resources.subPaths) {
    for (const sp of rec.subPaths ?? []) await step(() => unstageSubPath(host.sys, sp.target));
  }
  if (rec.resources.overlay) await step(() => unmount(host.sys, d.rootfs));
  if (rec.resources.dir) {
    // Never recurse into a mount: a bind mount still there would be emptied.
    await step(() => removeUnmounted(d.dir));
    await step(() => removeAll(d.conmonDir));
    await step(() => removeAll(`${d.exitDir}/${rec.id}`));
    await step(() => removeAttachLinks(d.socketDir, rec.id, d.bundle));
    // A CRI container's log is the kubelet's file (it removes it with the pod).
    if (!rec.cri) {
      await step(() => removeAll(d.log));
      for (const old of rotatedLogs(d.log)) await step(() => removeAll(old));
    }
  }
  if (rec.healthcheck) await step(() => removeAll(healthFile(host, rec.name)));
  if (errors.length > 0) {
    // Keep the record so that `rm -f` can try again.
    host.store.put("containers", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot remove everything of container ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  // Only this part needs the store lock: the record goes, and whether the
  // network is now unused is decided against the records that remain (a
  // create reserves its record under the same lock before its CNI ADD).
  // Everything above touches this container's own resources only, so
  // several teardowns can run side by side.
  await host.store.withLock(async () => {
    host.store.delete("containers", rec.name);
    if (!rec.resources.cni) return;
    const nets: NetworkUser["network"][] = [
      ...(rec.network ? [rec.network] : []),
      ...(rec.extraNetworks ?? []).map((x) => ({
        name: x.name,
        conflist: x.conflist,
        portMappings: [],
      })),
    ];
    for (const network of nets) {
      await releaseNetworkIfUnused(
        host,
        { kind: "containers", name: rec.name, network },
        options.keepBridges,
      );
    }
  });
  trace("teardown: release network");
}

/** CNI DEL on every network the container is on; errors go to `errors`. */
async function cniDel(host: Host, rec: ContainerRecord, errors: unknown[]): Promise<void> {
  const d = rec.dirs;
  const netnsGone = !pathExists(d.netns);
  await cniDown(host.cni, {
    cniId: cniContainerId(rec),
    netns: d.netns,
    conflist: rec.network?.conflist,
    portMappings: rec.network?.portMappings ?? [],
    result: rec.network?.result,
  }, (e) => errors.push(e));
  const collect = (e: unknown) => void errors.push(e);
  // Without its netns (a reboot wiped /run) bridge's DEL cannot find the
  // addresses its masquerade rules are for: remove them by container id.
  if (netnsGone) await removeNatRulesFor(host.cmd, cniContainerId(rec)).catch(collect);
  await Promise.all(
    (rec.extraNetworks ?? []).map((x) =>
      host.cni.del(x.conflist, {
        containerId: cniContainerId(rec),
        netns: d.netns,
        ifName: x.ifName,
      }, x.result).catch(collect)
    ),
  );
  trace("teardown: cni del");
}

/**
 * `delete --force`, tried again after a pause: under load a runtime's own
 * cgroup removal can time out while the killed tasks are still exiting.
 * Sub-cgroups the container made (a privileged one can) go first and again
 * before each retry: youki rmdirs the container's cgroup alone, which fails
 * while a child is there (its kill reaches the child's tasks, so the child
 * can go once they have exited).
 */
export async function deleteWithRetry(
  host: Pick<Host, "cgroups" | "runtimeFor" | "sleep">,
  rec: Pick<ContainerRecord, "id" | "runtime" | "cgroupPath">,
): Promise<void> {
  const rt = host.runtimeFor(rec.runtime);
  for (let attempt = 1;; attempt++) {
    try {
      host.cgroups.removeChildren(rec.cgroupPath);
    } catch { /* a child still has tasks: the runtime's kill comes first */ }
    try {
      await rt.delete(rec.id, { force: true, missingOk: true });
      return;
    } catch (e) {
      if (attempt >= 4) throw e;
      await host.sleep(100 * attempt * attempt);
    }
  }
}

/**
 * The bridge plugin creates its bridge on first ADD and never deletes it;
 * like podman, rkl removes it when the last container on the network goes,
 * together with portmap's shared chains once no mapping is left.
 */
export async function releaseNetworkIfUnused(
  host: Host,
  user: NetworkUser,
  keepBridges?: ReadonlySet<string>,
): Promise<void> {
  if (user.network.portMappings.length > 0) await removeIdlePortmapChains(host.cmd);
  const bridge = unusedBridge(host, user);
  if (bridge && !keepBridges?.has(bridge)) await deleteBridge(host, bridge);
}

/**
 * The bridge of `user`'s network when no other record is on that network
 * (asked under the store lock, so no create can join it meanwhile). A
 * damaged record may still be on it and keeps it (gc removes it later),
 * unless `going` names it: records being removed with `user` (a pod's members).
 */
export function unusedBridge(
  host: Host,
  user: NetworkUser,
  going: ReadonlySet<string> = new Set(),
): string | undefined {
  const bridge = bridgeName(user.network.conflist);
  if (!bridge) return undefined;
  for (const kind of ["containers", "pods"] as const) {
    if (host.store.damaged(kind).some((d) => !(kind === "containers" && going.has(d.name)))) {
      return undefined;
    }
    const others = host.store.list<
      StoredRecord & { network?: { name: string }; extraNetworks?: { name: string }[] }
    >(kind)
      .filter((r) =>
        !(kind === user.kind && r.name === user.name) &&
        !(kind === "containers" && going.has(r.name)) &&
        (r.network?.name === user.network.name ||
          (r.extraNetworks ?? []).some((x) => x.name === user.network.name))
      );
    if (others.length > 0) return undefined;
  }
  return bridge;
}

/**
 * Deletes a bridge this root no longer uses, unless an interface of anyone
 * (another root sharing it through its own conflist, another CNI user) is
 * still attached: checked under the host-wide lock (see net/hostnet.ts).
 */
export async function deleteBridge(host: Host, bridge: string): Promise<void> {
  await deleteIdleBridge(host.cmd, bridge);
}

/** A workload attached to a network, as far as releasing the network goes. */
export interface NetworkUser {
  kind: "containers" | "pods";
  name: string;
  network: { name: string; conflist: NetConfList; portMappings: PortMapping[] };
}

/**
 * Why an exited container ended, in the CRI's words: `Completed` (code 0),
 * `OOMKilled` (code 137 and its memory cgroup counted an OOM kill, read
 * while the cgroup is still there: until the container is removed or
 * restarted) or `Error`; undefined unless it has exited.
 */
export function exitReason(
  host: Pick<Host, "cgroups">,
  c: Pick<ContainerRecord, "status" | "exitCode" | "cgroupPath">,
): "Completed" | "OOMKilled" | "Error" | undefined {
  if (c.status !== "exited") return undefined;
  if (c.exitCode === 0) return "Completed";
  if (c.exitCode === 137 && (host.cgroups.usage(c.cgroupPath)?.oomKills ?? 0) > 0) {
    return "OOMKilled";
  }
  return "Error";
}

/**
 * A killed container's tasks can still be exiting when the runtime already
 * reports "stopped"; rmdir then fails with EBUSY until they are gone.
 */
export async function removeCgroup(host: Host, path: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      host.cgroups.remove(path);
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.Busy) || attempt >= 100) throw e;
      await host.sleep(20);
    }
  }
}

/** rm -rf of `path`, refused while anything is mounted on or below it. */
export function removeUnmounted(path: string): void {
  const below = mountPoints(Deno.readTextFileSync("/proc/self/mountinfo")).filter((m) =>
    m === path || m.startsWith(`${path}/`)
  );
  if (below.length > 0) {
    throw new RklError(
      "EBUSY",
      `Cannot remove ${path}: ${below[0]} is still mounted`,
      { hint: "rkl rm -f tries the unmount again" },
    );
  }
  removeAll(path);
}

/**
 * conmon's link to a bundle in the socket dir is named by the container id,
 * cut short when SOCKET_DIR/ID/attach would not fit in a socket address:
 * removes the link under its full name and any such shortened one (a link
 * of at least 32 characters that `id` starts with and that points at
 * `bundle`, so another container's link is never taken).
 */
export function removeAttachLinks(socketDir: string, id: string, bundle: string): number {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(socketDir)];
  } catch {
    return 0;
  }
  let removed = 0;
  for (const e of entries) {
    if (
      e.name === id ||
      (e.isSymlink && e.name.length >= 32 && id.startsWith(e.name) &&
        readLinkOr(`${socketDir}/${e.name}`) === bundle)
    ) {
      removeAll(`${socketDir}/${e.name}`);
      removed++;
    }
  }
  return removed;
}

function readLinkOr(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined;
  }
}

function removeAll(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** rmdir the `rkl` parent once the last container left it (a busy one stays). */
export function removeEmptyParent(host: Host, cgroupPath: string): void {
  const parent = cgroupPath.split("/").slice(0, -1).join("/");
  if (!parent) return;
  for (const dir of host.cgroups.dirs(parent)) {
    try {
      Deno.removeSync(dir);
    } catch { /* still in use */ }
  }
}

/** conmon's pid from its pid file, if it wrote one. */
function conmonPid(conmonDir: string): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(`${conmonDir}/conmon.pid`).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * conmon exits right after its container; wait for it so its files can go.
 * With `kill`, a conmon still there after the wait (its runtime call hung)
 * is killed with its process group, which holds that runtime call.
 */
export async function waitConmonGone(
  host: Host,
  conmonDir: string,
  options: { kill?: boolean } = {},
): Promise<void> {
  const pid = conmonPid(conmonDir);
  if (pid === undefined) return;
  const start = procStat(pid)?.startTime;
  for (let i = 0; i < 100 && processAlive(pid); i++) await host.sleep(20);
  if (!options.kill || !processAlive(pid) || procStat(pid)?.startTime !== start) return;
  killConmonGroup(`${conmonDir}/conmon.pid`);
  for (let i = 0; i < 100 && processAlive(pid); i++) await host.sleep(20);
}

/**
 * For a create that was interrupted: waits until the conmon it started has
 * either made the container (its pid file) or exited, so that a teardown
 * does not race with a runtime create still under way.
 */
async function settleConmon(host: Host, conmonDir: string): Promise<void> {
  const deadline = Date.now() + callTimeoutMs(60_000);
  // conmon writes its pid file at once; give a just-spawned one a moment.
  for (let i = 0; i < 50 && conmonPid(conmonDir) === undefined; i++) {
    if (!dirExists(conmonDir)) return;
    await host.sleep(20);
  }
  const pid = conmonPid(conmonDir);
  if (pid === undefined) return;
  while (Date.now() < deadline && processAlive(pid)) {
    try {
      Deno.statSync(`${conmonDir}/pid`);
      return; // the runtime created the container: delete can take it from here
    } catch { /* not yet */ }
    await host.sleep(20);
  }
}

function dirExists(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

export function processAlive(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== "Z"; // a zombie has exited already
}

/**
 * Status without asking the runtime: conmon's exit file, or the recorded pid
 * still being the same process (same start time, so a reused pid is not
 * mistaken for it). Anything unclear falls back to {@linkcode refresh}.
 */
export async function quickRefresh(
  host: Host,
  rec: ContainerRecord,
  exits?: ExitFiles,
): Promise<ContainerRecord> {
  if (rec.status === "creating" || rec.status === "exited") return rec;
  if (fromEarlierBoot(host, rec)) return markBootLost(host, rec);
  const known = exits?.get(rec.dirs.exitDir);
  if (known === undefined || known.has(rec.id)) {
    const exit = readExitCode(rec.dirs.exitDir, rec.id);
    if (exit !== undefined) return await refresh(host, rec);
  }
  if (rec.pid !== undefined && rec.pidStart !== undefined) {
    const s = procStat(rec.pid);
    if (s && s.state !== "Z" && s.startTime === rec.pidStart) return rec;
  }
  return await refresh(host, rec);
}

/**
 * The names in exit directories, listed once for a refresh of many records:
 * a running container has no exit file, and a failed read (an exception per
 * container) costs more than one listing. A file that appears after the
 * listing is still seen: the process check below falls back to `refresh()`.
 */
export type ExitFiles = Map<string, ReadonlySet<string>>;

export function listExitFiles(dirs: Iterable<string>): ExitFiles {
  const out: ExitFiles = new Map();
  for (const dir of new Set(dirs)) {
    try {
      out.set(dir, new Set([...Deno.readDirSync(dir)].map((e) => e.name)));
    } catch { /* unreadable: each record reads its own file */ }
  }
  return out;
}

/** Made under another run-root epoch: its processes died with the reboot that came between. */
export function fromEarlierBoot(host: Host, rec: { epoch?: string }): boolean {
  return host.epoch !== undefined && rec.epoch !== undefined && rec.epoch !== host.epoch;
}

/** A container a reboot ended: exited (no exit code is known), as podman shows it. */
function markBootLost(host: Host, rec: ContainerRecord): ContainerRecord {
  if (rec.status !== "exited") {
    rec.status = "exited";
    rec.pid = undefined;
    rec.finishedAt ??= host.now().toISOString();
  }
  return rec;
}

export function getContainer(host: Host, name: string): ContainerRecord {
  const rec = host.store.get<ContainerRecord>("containers", name);
  if (!rec) {
    throw new NotFoundError(`Cannot find container ${JSON.stringify(name)}`, {
      hint: "rkl container list shows the names",
    });
  }
  return rec;
}

/** The record with its status, pid and exit code brought up to date from the runtime. */
/** A stopped container: its exit code (if conmon wrote one) and when its exit file was written. */
function markExited(rec: ContainerRecord, exitCode: number | undefined): void {
  rec.status = "exited";
  rec.pid = undefined;
  if (exitCode !== undefined) rec.exitCode = exitCode;
  if (!rec.finishedAt) {
    try {
      rec.finishedAt = Deno.statSync(`${rec.dirs.exitDir}/${rec.id}`).mtime?.toISOString();
    } catch { /* no exit file yet */ }
  }
}

export async function refresh(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  if (rec.status === "creating") return rec;
  if (fromEarlierBoot(host, rec)) return markBootLost(host, rec);
  const st = await host.runtimeFor(rec.runtime).state(rec.id);
  const exit = readExitCode(rec.dirs.exitDir, rec.id);
  if (!st) {
    rec.status = exit !== undefined ? "exited" : "unknown";
    rec.exitCode = exit ?? rec.exitCode;
    rec.pid = undefined;
    return rec;
  }
  if (st.status === "stopped") {
    markExited(rec, exit);
  } else if (st.status === "running" || st.status === "paused" || st.status === "created") {
    rec.status = st.status === "created" ? "created" : "running";
    if (rec.pid !== st.pid) {
      rec.pid = st.pid;
      rec.pidStart = st.pid ? procStat(st.pid)?.startTime : undefined;
    }
  }
  return rec;
}

export async function startContainer(host: Host, name: string): Promise<ContainerRecord> {
  return await host.store.withLock(async () => {
    const rec = await refresh(host, getContainer(host, name));
    return await startCreated(host, rec);
  });
}

/** Starts a container known to be "created" (checked again here, without asking the runtime). */
export async function startCreated(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  if (rec.status !== "created") {
    throw new ConflictError(
      `Cannot start container ${JSON.stringify(rec.name)}: it is ${rec.status}, not created`,
      { hint: rec.status === "exited" ? "remove it and run it again" : undefined },
    );
  }
  await host.runtimeFor(rec.runtime).start(rec.id);
  rec.status = "running";
  rec.startedAt = host.now().toISOString();
  host.store.put("containers", rec);
  if (rec.healthcheck && host.selfArgv) ensureHealthMonitor(host);
  const hook = rec.hooks?.postStart;
  if (hook) {
    const why = await runHook(host, hookTarget(host, rec), hook, HOOK_TIMEOUT_MS);
    if (why !== undefined) {
      // As the kubelet: a failed postStart kills the container; the start failed.
      await signal(host, rec, "SIGKILL");
      throw new RklError(
        "EHOOK",
        `Cannot start container ${JSON.stringify(rec.name)}: its postStart hook failed: ${why}`,
      );
    }
  }
  return rec;
}

/** postStart has no timeout in Kubernetes; here it may not hold a command forever. */
const HOOK_TIMEOUT_MS = 120_000;

function hookTarget(host: Host, rec: ContainerRecord) {
  let ip = rec.network?.ip;
  if (!ip && rec.pod && !rec.hostNetwork) {
    try {
      ip = host.store.get<{ network?: { ip?: string } } & StoredRecord>("pods", rec.pod)?.network
        ?.ip;
    } catch { /* a damaged pod record: exec hooks still work */ }
  }
  return { ...rec, ip };
}

/** create + start; a failed start removes what create made. */
export function runContainer(
  host: Host,
  loaded: LoadedContainer,
  options: { network: string | null },
): Promise<ContainerRecord> {
  return cancellable(() => runContainerNow(host, loaded, options));
}

async function runContainerNow(
  host: Host,
  loaded: LoadedContainer,
  options: { network: string | null },
): Promise<ContainerRecord> {
  const rec = await createContainer(host, loaded, { ...options, thenStart: true });
  try {
    // Just created by us: no need to ask the runtime for its state first.
    const started = await host.store.withLock(() => startCreated(host, rec));
    trace("run: started");
    return started;
  } catch (e) {
    await rollback(host, rec, e);
    throw e;
  }
}

/** SIGTERM, up to `timeoutSec` for the container to exit, then SIGKILL. */
export async function stopContainer(
  host: Host,
  name: string,
  timeoutSec = 10,
  options: { byUser?: boolean } = {},
): Promise<ContainerRecord> {
  let rec = await quickRefresh(host, getContainer(host, name));
  if (rec.status !== "running" && rec.status !== "created") {
    if (options.byUser && !rec.stoppedByUser) {
      // An exited container waiting for a restart stays stopped.
      return await updateContainer(host, name, (r) => r.stoppedByUser = true) ?? rec;
    }
    return rec;
  }
  // conmon writes the exit file the moment the container ends: watching it
  // costs a stat, where asking the runtime costs a process.
  const exited = () => readExitCode(rec.dirs.exitDir, rec.id) !== undefined;
  const waitExit = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (!exited() && Date.now() < deadline) await host.sleep(10);
    return exited();
  };
  let graceMs = timeoutSec * 1000;
  const preStop = rec.hooks?.preStop;
  if (preStop && rec.status === "running") {
    // Within the grace period; what is left of it (at least 2 s, as the
    // kubelet gives) is the signal's.
    const t0 = Date.now();
    const why = await runHook(host, hookTarget(host, rec), preStop, graceMs);
    if (why !== undefined) {
      host.warn(`container ${JSON.stringify(rec.name)}: preStop hook failed: ${why}`);
    }
    graceMs = Math.max(2_000, graceMs - (Date.now() - t0));
  }
  await signal(host, rec, rec.stopSignal ?? "SIGTERM");
  if (!(await waitExit(graceMs))) {
    await signal(host, rec, "SIGKILL");
    await waitExit(5_000);
  }
  // conmon wrote the exit file after it reaped the container: it is stopped,
  // no runtime call needed to say so. Without the file, ask the runtime.
  const code = readExitCode(rec.dirs.exitDir, rec.id);
  if (code !== undefined) markExited(rec, code);
  else rec = await refresh(host, rec);
  const finishedAt = rec.finishedAt ?? host.now().toISOString();
  return await updateContainer(host, name, (r) => {
    r.status = rec.status;
    r.pid = rec.pid;
    r.exitCode = rec.exitCode;
    r.finishedAt ??= finishedAt;
    if (options.byUser) r.stoppedByUser = true;
  }) ?? rec;
}

async function signal(host: Host, rec: ContainerRecord, sig: string): Promise<void> {
  try {
    await host.runtimeFor(rec.runtime).kill(rec.id, sig, { all: true });
  } catch (e) {
    // Exited between our look and the signal: not an error.
    const now = await refresh(host, rec);
    if (now.status === "running" || now.status === "created") throw e;
  }
}

export async function removeContainer(
  host: Host,
  name: string,
  options: { force?: boolean; keepBridges?: ReadonlySet<string> } = {},
): Promise<void> {
  trace("rm: begin");
  let rec: ContainerRecord;
  try {
    rec = getContainer(host, name);
  } catch (e) {
    // A damaged record: clean by what the host holds under this name.
    if (!(e instanceof DamagedRecordError) || !options.force) throw e;
    host.warn(`${e.message}; removing what the host holds for ${JSON.stringify(name)}`);
    await scavengeContainer(host, name);
    return;
  }
  refuseWhileBeingMade(rec.name, "container", rec.status === "creating" ? rec.owner : undefined);
  if (options.force) {
    // `<runtime> delete --force` kills whatever still runs, so -f needs no stop step.
    await teardown(host, rec, options);
    trace("rm: teardown");
    return;
  }
  await refresh(host, rec);
  const interrupted = rec.status === "creating" && ownerGone(rec.owner);
  if (rec.status === "running" || (rec.status === "creating" && !interrupted)) {
    throw new ConflictError(
      `Cannot remove container ${JSON.stringify(name)}: it is ${rec.status}`,
      {
        hint: "stop it first, or use rm -f",
      },
    );
  }
  await teardown(host, rec, options);
  trace("rm: teardown");
}

/**
 * `rm -f` of several containers side by side (compose down). A bridge that
 * none but them uses is deleted as soon as their DELs have deleted its
 * veths, beside the rest of the DELs (their iptables work), not after the
 * last one: the bridge's own deletion takes 35-50 ms of the kernel's rtnl
 * lock, which the veth deletions need too. Runs under the store lock, so no
 * create joins such a network meanwhile. Returns the names removed; throws
 * the first error once every removal has ended.
 */
export async function removeContainers(host: Host, names: string[]): Promise<string[]> {
  return await host.store.withLock(async () => {
    const going = new Set(names);
    const idle = new Map<string, { user: NetworkUser; veths: string[] }>();
    const unsure = new Set<string>();
    for (const name of names) {
      let rec: ContainerRecord | undefined;
      try {
        rec = host.store.get<ContainerRecord>("containers", name);
      } catch {
        continue; // damaged: its removal scavenges, and the bridge waits for the last DEL
      }
      if (!rec?.resources.cni) continue;
      const attachments = [
        ...(rec.network ? [{ network: rec.network, result: rec.network.result }] : []),
        ...(rec.extraNetworks ?? []).map((x) => ({
          network: { name: x.name, conflist: x.conflist, portMappings: [] },
          result: x.result,
        })),
      ];
      for (const { network, result } of attachments) {
        const user: NetworkUser = { kind: "containers", name: rec.name, network };
        const bridge = unusedBridge(host, user, going);
        if (!bridge) continue;
        const entry = idle.get(bridge) ?? { user, veths: [] };
        idle.set(bridge, entry);
        const veth = hostVeth(result, bridge);
        if (veth) entry.veths.push(veth);
        else unsure.add(bridge); // a veth not known by name: the old way, after the last DEL
      }
    }
    for (const b of unsure) idle.delete(b);
    let ended!: () => void;
    const allEnded = new Promise<void>((r) => ended = r);
    // Subscribed before any DEL starts, so no deletion is missed.
    const watches = [...idle].map(([bridge, e]) => ({
      bridge,
      user: e.user,
      gone: Promise.all(e.veths.map((v) => linkGone(v, allEnded))).then(() =>
        e.veths.every((v) => !pathExists(`/sys/class/net/${v}`))
      ),
    }));
    const keepBridges = new Set(idle.keys());
    const removals = Promise.allSettled(
      names.map((n) => removeContainer(host, n, { force: true, keepBridges })),
    ).finally(ended);
    const bridgeResults = await Promise.allSettled(watches.map(async (w) => {
      if (await w.gone) return await deleteBridge(host, w.bridge);
      // A veth is still there (its DEL failed): decide once the records are
      // gone, as a single rm would.
      await removals;
      if (unusedBridge(host, w.user)) await deleteBridge(host, w.bridge);
    }));
    const results = await removals;
    const failed = [...results, ...bridgeResults].find((r): r is PromiseRejectedResult =>
      r.status === "rejected"
    );
    if (failed) throw failed.reason;
    return names;
  });
}

export async function listContainers(host: Host): Promise<ContainerRecord[]> {
  const recs = host.store.list<ContainerRecord>("containers");
  return await Promise.all(recs.map((r) => quickRefresh(host, r)));
}
