/**
 * Kubernetes pods: the pod's network, IPC and UTS namespaces are pinned as
 * files under the run root with no process holding them; only a pod with
 * shareProcessNamespace gets a pause container (catatonit -P) to be PID 1 of
 * the shared PID namespace. The work containers join them all by path. The pod owns the netns, the CNI attachment,
 * the /etc files, the emptyDir volumes and a pod-level cgroup whose limits
 * rkl writes itself; each container keeps its own limits below it.
 *
 * Rollback works as for containers: the pod record lists what has been made
 * (`resources`, `members`) before it is made, and {@linkcode teardownPod}
 * undoes exactly that, so a failed create, `pod rm` and the cleanup after a
 * crash are one code path.
 */
import { ConflictError, NotFoundError, RklError, SpecError, UsageError } from "../errors.ts";
import {
  type CniResult,
  hostVeth,
  type NetConfList,
  type PortMapping,
  resultIPv4,
} from "../net/cni.ts";
import { loadNetwork } from "../net/network.ts";
import { removeIdlePortmapChains, removeNatRulesFor } from "../net/portmap.ts";
import { readExitCode } from "../oci/conmon.ts";
import {
  milliCpuToQuota,
  milliCpuToShares,
  parseQuantity,
  quantityMilli,
  quantityValue,
} from "../spec/quantity.ts";
import type { ContainerSpec, LoadedContainer } from "../spec/container.ts";
import type {
  LoadedPod,
  PodDns,
  PodResolv,
  PodSpec,
  RestartPolicy,
  VolumeFile,
} from "../spec/pod.ts";
import { nodeCapacity } from "../spec/pod.ts";
import { podResolvConf } from "./dns.ts";
import { fieldValue, type PodInfo } from "../spec/downward.ts";
import { HOSTS_GROUP, HOSTS_NAMES } from "../spec/names.ts";
import { DamagedRecordError, type StoredRecord } from "../store/store.ts";
import { scavengeContainer, scavengePod } from "./scavenge.ts";
import type { CgroupLimits } from "../sys/cgroups/mod.ts";
import { createNamespaces, createNetns, pinNamespace, removeNetns } from "../sys/netns.ts";
import { linkGone } from "../sys/linkwatch.ts";
import { pathExists, privateDir, removeBelow } from "../sys/fsutil.ts";
import { mountImageLayers, unmount } from "../sys/mounts.ts";
import { defaultPullPolicy } from "../image/reference.ts";
import { which } from "../oci/runtime.ts";
import {
  type ContainerRecord,
  createContainer,
  type CreateOptions,
  deleteBridge,
  exitReason,
  getContainer,
  type Owner,
  ownerGone,
  portMappings,
  prepareHostPaths,
  procStat,
  quickRefresh,
  readBundle,
  refresh,
  refuseLeftovers,
  refuseWhileBeingMade,
  releaseNetworkIfUnused,
  removeCgroup,
  removeEmptyParent,
  removeUnmounted,
  rootSource,
  type Sandbox,
  selfOwner,
  startCreated,
  stopContainer,
  teardown,
  unusedBridge,
} from "./container.ts";
import { hostsFile, resolvConf } from "./etc_files.ts";
import { claimDir, cniIdFor, type Host, networkOptions, type RuntimeRef } from "./host.ts";
import { assertPortsFree, portConflict } from "./ports.ts";
import { natTable } from "../net/hostnet.ts";
import { cniDown, cniUp } from "../net/attach.ts";
import { trace } from "../trace.ts";
import { cancellable, checkCancelled } from "../cancel.ts";
import { parseCriLog, tail as tailEntries } from "./logs.ts";

export type PodPhase = "Creating" | "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface PodRecord extends StoredRecord {
  kind: "pod";
  specFile: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  createdAt: string;
  startedAt?: string;
  /** Set once the pod is fully created; until then it is being made. */
  created: boolean;
  restartPolicy: RestartPolicy;
  hostNetwork: boolean;
  shareProcessNamespace: boolean;
  /** The host's PID / IPC namespace (the CRI's NamespaceMode NODE). */
  hostPID?: boolean;
  hostIPC?: boolean;
  hostname: string;
  terminationGracePeriodSeconds: number;
  runtime: RuntimeRef;
  cgroupPath: string;
  limits: CgroupLimits;
  netns?: string;
  network?: {
    name: string;
    cniId: string;
    conflist: NetConfList;
    result?: CniResult;
    ip?: string;
    portMappings: PortMapping[];
  };
  /** Record names of the pause container, init containers and app containers, in creation order. */
  pause?: string;
  initContainers: string[];
  containers: string[];
  dirs: { dir: string; etc: string; volumes: string };
  emptyDirs: Record<string, string>;
  /** emptyDir paths with a tmpfs on them (medium: Memory), recorded before the mount. */
  memoryDirs?: string[];
  resources: {
    dir?: boolean;
    cgroup?: boolean;
    netns?: boolean;
    cni?: boolean;
    nsPins?: boolean;
    /** Image volumes mounted under the pod's volumes dir. */
    imageVolumes?: boolean;
  };
  /** The init containers that are native sidecars (restartPolicy Always): they keep running. */
  sidecars?: string[];
  /** Namespace type → pinned file that members join (ipc, uts, pid). */
  nsPins?: Record<string, string>;
  /** The process making it, until `created`: a dead owner means interrupted. */
  owner?: Owner;
  /** The run root's epoch it was made in; another one means a reboot came between. */
  epoch?: string;
  /** Set for pods `rkl daemon` made from a manifest: the file and its content hash. */
  static?: { file: string; hash: string };
  /** metadata.uid, made at create (the downward API shows it). */
  uid?: string;
  /** PersistentVolumeClaims it mounts: `rkl volume rm` refuses them while the pod exists. */
  claims?: string[];
  /** Image volumes: name → the image (`rkl image rm` refuses it while the pod exists). */
  imageVolumes?: Record<string, { imageId: string; dir: string }>;
  /** Made through the CRI (RunPodSandbox): its metadata; the record name is its id. */
  cri?: CriSandboxInfo;
}

/** What the CRI asked for a sandbox, kept for its status and list calls. */
export interface CriSandboxInfo {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
  logDirectory: string;
  runtimeHandler: string;
  /** False once StopPodSandbox ran: containers stopped, network released. */
  ready: boolean;
  /** Namespaced sysctls the sandbox asked for, set in every container of it. */
  sysctls?: Record<string, string>;
}

export function podDirs(host: Host, name: string) {
  const dir = `${host.paths.root}/pods/${name}`;
  return { dir, etc: `${dir}/etc`, volumes: `${dir}/volumes` };
}

/** Where a pod's shared namespaces are pinned (derived from the name, not read from the record). */
export function nsDir(host: Host, name: string): string {
  return `${host.paths.runRoot}/ns/p_${name}`;
}

export function memberName(pod: string, container: string): string {
  return `${pod}_${container}`;
}

/** The pause bundle: the manifest's `bundle` label, RKL_PAUSE_BUNDLE, or rkl's own, built on first use. */
export function pauseBundle(host: Host, loaded: LoadedPod): string {
  if (loaded.spec.pauseBundle) return loaded.spec.pauseBundle;
  const dir = host.pauseBundle;
  try {
    Deno.statSync(`${dir}/rootfs/bin/catatonit`);
    return dir;
  } catch { /* build it */ }
  buildPauseBundle(dir);
  return dir;
}

/** `rkl`'s pause bundle: catatonit (static) in an otherwise empty rootfs. */
export function buildPauseBundle(dir: string): void {
  const bin = which("catatonit");
  if (!bin) {
    throw new NotFoundError("Cannot build the pause bundle: catatonit is not installed", {
      hint:
        "run scripts/setup.sh (Debian package catatonit) or name a bundle in metadata.labels.bundle",
    });
  }
  const rootfs = `${dir}/rootfs`;
  for (const d of ["bin", "proc", "sys", "dev", "etc", "tmp"]) {
    Deno.mkdirSync(`${rootfs}/${d}`, { recursive: true });
  }
  const tmp = `${rootfs}/bin/.catatonit-${Deno.pid}`;
  Deno.copyFileSync(bin, tmp);
  Deno.chmodSync(tmp, 0o755);
  Deno.renameSync(tmp, `${rootfs}/bin/catatonit`);
}

/**
 * The pause container as a container spec: from a bundle, catatonit -P
 * unless the bundle names its own process; from an image (already in the
 * store), the image's own entrypoint.
 */
function pauseSpec(bundle: string, hasArgs: boolean, image?: string): LoadedContainer {
  const spec: ContainerSpec = {
    name: "pause",
    image: image ?? bundle,
    ...(image ? { imagePullPolicy: "Never" as const } : {}),
    command: hasArgs || image ? undefined : ["/bin/catatonit", "-P"],
    env: [],
    ports: [],
    resources: {},
    mounts: [],
    securityContext: {},
    tty: false,
    labels: {},
  };
  return {
    spec,
    warnings: [],
    source: { file: bundle, at: (path) => ({ file: bundle, path: path.join(".") }) },
  };
}

/**
 * Pod cgroup limits as the kubelet sets them: the sum of the containers'
 * limits, for each resource that every container limits; shares from the sum
 * of requests.
 */
export function podLimits(containers: ContainerSpec[]): CgroupLimits {
  const out: CgroupLimits = {};
  const milli = (q: string | number | undefined) =>
    q === undefined ? undefined : Number(quantityMilli(parseQuantity(q)));
  const bytes = (q: string | number | undefined) =>
    q === undefined ? undefined : Number(quantityValue(parseQuantity(q)));
  const cpu = containers.map((c) => milli(c.resources.limits?.cpu));
  if (cpu.length > 0 && cpu.every((m) => m !== undefined && m > 0)) {
    out.cpuQuota = milliCpuToQuota(cpu.reduce((a, b) => a! + b!, 0)!);
    out.cpuPeriod = 100_000;
  }
  const mem = containers.map((c) => bytes(c.resources.limits?.memory));
  if (mem.length > 0 && mem.every((m) => m !== undefined && m > 0)) {
    out.memoryLimit = mem.reduce((a, b) => a! + b!, 0);
  }
  const req = containers.map((c) =>
    milli(c.resources.requests?.cpu ?? c.resources.limits?.cpu) ?? 0
  );
  out.cpuShares = milliCpuToShares(req.reduce((a, b) => a + b, 0));
  return out;
}

function podPortMappings(loaded: LoadedPod): PortMapping[] {
  return loaded.spec.containers.flatMap((c) => portMappings(c.spec.ports));
}

export function getPod(host: Host, name: string): PodRecord {
  const rec = host.store.get<PodRecord>("pods", name);
  if (!rec) {
    throw new NotFoundError(`Cannot find pod ${JSON.stringify(name)}`, {
      hint: "rkl pod list shows the names",
    });
  }
  return rec;
}

/**
 * Creates the sandbox (and the pause container where one is needed), runs the init containers
 * to completion and creates (not starts) the app containers.
 */
export interface CreatePodOptions {
  network: string | null;
  static?: { file: string; hash: string };
  cri?: CriSandboxInfo;
}

export function createPod(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
): Promise<PodRecord> {
  return cancellable(() => createPodNow(host, loaded, options));
}

async function createPodNow(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
): Promise<PodRecord> {
  const spec = loaded.spec;
  const name = spec.name;
  // Everything that can fail on input fails here, before any side effect.
  // A pause process only where something needs it: PID 1 of a shared PID
  // namespace. Otherwise the namespaces are pinned as files with no process
  // holding them (CRI-O's pinns without an infra container).
  const withPause = spec.shareProcessNamespace;
  let pauseDir = "";
  let pauseDefaults;
  if (withPause && !spec.pauseImage) {
    pauseDir = pauseBundle(host, loaded);
    try {
      pauseDefaults = readBundle(host, pauseSpec(pauseDir, false));
    } catch {
      throw new SpecError(
        spec.pauseBundle ? loaded.source.at(["metadata", "labels", "bundle"]) : { file: pauseDir },
        `pause bundle ${JSON.stringify(pauseDir)} has no rootfs/ directory`,
      );
    }
  }
  const mappings = spec.hostNetwork ? [] : spec.portMappings ?? podPortMappings(loaded);
  // Host ports other roots and other forwarders hold (the nat table), read
  // meanwhile: checked at the reservation below.
  const natRead = mappings.length > 0 && !spec.hostNetwork && options.network
    ? natTable(host.cmd)
    : undefined;
  // Images are pulled (as each container's policy says) before anything is made.
  for (const c of [...spec.initContainers, ...spec.containers]) {
    await rootSource(host, c);
    prepareHostPaths(host, c);
  }
  const dirs = podDirs(host, name);
  // Image volumes too, as their pullPolicy says (default as for a container's image).
  const imageVolumes: NonNullable<PodRecord["imageVolumes"]> = {};
  for (const [v, iv] of Object.entries(spec.imageVolumes ?? {})) {
    if (!host.images) throw new SpecError(iv.loc, "an image volume needs the image store");
    const image = await host.images.ensure(
      iv.reference,
      iv.pullPolicy ?? defaultPullPolicy(iv.reference),
      iv.loc,
    );
    imageVolumes[v] = { imageId: image.id, dir: `${dirs.volumes}/${v}` };
  }
  const network = spec.hostNetwork ? null : options.network;
  const conflist = network ? await loadNetwork(network, networkOptions(host)) : undefined;
  const nat = conflist && mappings.length > 0 ? await (natRead ?? natTable(host.cmd)) : "";

  const rec: PodRecord = await host.store.withLock(() => {
    if (host.store.get("pods", name)) {
      throw new ConflictError(
        `${locText(loaded, ["metadata", "name"])}: Cannot create pod: name ${
          JSON.stringify(name)
        } is already in use`,
      );
    }
    refuseLeftovers(host, name, "pod");
    const conflict = portConflict(host, mappings, { nat });
    if (conflict) {
      const where = findPort(loaded, conflict.mapping.hostPort);
      throw new ConflictError(
        `${
          locText(loaded, where)
        }: Cannot publish port ${conflict.mapping.hostPort}/${conflict.mapping.protocol}: ${conflict.reason}`,
      );
    }
    const r: PodRecord = {
      schemaVersion: 1,
      kind: "pod",
      name,
      specFile: loaded.source.file,
      namespace: spec.namespace,
      labels: spec.labels,
      annotations: spec.annotations,
      createdAt: host.now().toISOString(),
      created: false,
      restartPolicy: spec.restartPolicy,
      hostNetwork: spec.hostNetwork,
      shareProcessNamespace: spec.shareProcessNamespace,
      hostPID: spec.hostPID || undefined,
      hostIPC: spec.hostIPC || undefined,
      hostname: spec.hostname,
      terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
      runtime: { name: host.runtime.name, binary: host.runtime.binary, root: host.runtime.root },
      cgroupPath: spec.cgroupParent ?? `${host.cgroupParent}/pod-${name}`,
      limits: spec.resources
        ? podLimits([{ resources: spec.resources } as ContainerSpec])
        : podLimits(spec.containers.map((c) => c.spec)),
      netns: spec.hostNetwork ? undefined : `${host.paths.runRoot}/netns/p_${name}`,
      network: conflist
        ? {
          name: network!,
          cniId: cniIdFor(host.paths, "p", name),
          conflist,
          portMappings: mappings,
        }
        : undefined,
      initContainers: [],
      containers: [],
      dirs,
      emptyDirs: Object.fromEntries(
        [...spec.emptyDirs, ...Object.keys(spec.fileVolumes), ...Object.keys(imageVolumes)].map((
          v,
        ) => [v, `${dirs.volumes}/${v}`]),
      ),
      imageVolumes: Object.keys(imageVolumes).length > 0 ? imageVolumes : undefined,
      resources: {},
      static: options.static,
      cri: options.cri,
      uid: spec.uid ?? crypto.randomUUID(),
      claims: spec.claims.length > 0 ? spec.claims : undefined,
      owner: selfOwner(host),
      epoch: host.epoch,
    };
    host.store.put("pods", r);
    return Promise.resolve(r);
  });

  trace("pod: record reserved");
  let netUp: Promise<void> | undefined;
  const save = () => {
    host.store.put("pods", rec);
    checkCancelled();
  };
  try {
    rec.resources.dir = true;
    save();
    privateDir(`${host.paths.root}/pods`);
    for (const d of [dirs.dir, dirs.etc, dirs.volumes]) {
      Deno.mkdirSync(d, { recursive: true, mode: 0o711 });
    }
    for (const v of spec.emptyDirs) {
      const dir = rec.emptyDirs[v];
      Deno.mkdirSync(dir, { recursive: true });
      if (spec.memoryDirs && v in spec.memoryDirs) {
        rec.memoryDirs = [...(rec.memoryDirs ?? []), dir];
        save();
        mountMemoryDir(host, dir, spec.memoryDirs[v], rec.limits.memoryLimit);
      }
      Deno.chmodSync(dir, 0o777); // as the kubelet makes emptyDir
      if (spec.fsGroup !== undefined) setGroup(dir, spec.fsGroup, 0o2777);
    }
    for (const claim of spec.claims) makeClaim(host, claim, spec.fsGroup);
    if (rec.imageVolumes) {
      rec.resources.imageVolumes = true;
      save();
      mountImageVolumes(host, rec);
      trace("pod: image volumes");
    }

    trace("pod: dirs");
    rec.resources.cgroup = true;
    save();
    host.cgroups.apply(rec.cgroupPath, rec.limits);
    trace("pod: cgroup");

    // CNI ADD runs while the first containers are created: they need the
    // netns file, not the address. /etc/hosts is written again, in place (the
    // members bind the inode), once the address is known; a pod that puts its
    // IP in an env var or a file waits for it before anything is created.
    if (rec.netns) {
      Deno.mkdirSync(`${host.paths.runRoot}/netns`, { recursive: true, mode: 0o755 });
      rec.resources.netns = true;
      save();
      createNetns(host.sys, rec.netns);
      rec.resources.cni = true;
      save();
      const cniId = rec.network?.cniId ?? cniIdFor(host.paths, "p", name);
      netUp = cniUp(host.cni, {
        cniId,
        netns: rec.netns,
        conflist,
        portMappings: mappings,
        portsFree: () => assertPortsFree(host, mappings, cniId),
      }).then((result) => {
        if (result && rec.network) {
          rec.network.result = result;
          rec.network.ip = resultIPv4(result);
          save();
        }
        trace("pod: netns + cni");
      });
      netUp.catch(() => {}); // awaited below, or before the rollback
      if (usesPodIP(spec)) await netUp;
    }
    const etcFiles = () => {
      writeEtcFiles(
        rec,
        spec.subdomain,
        spec.hostAliases,
        spec.dns,
        spec.resolv,
        (note) => host.warn(`pod ${JSON.stringify(rec.name)}: resolv.conf: ${note}`),
      );
      if (spec.annotations[HOSTS_GROUP]) writeGroupHosts(host, spec.annotations[HOSTS_GROUP]);
    };
    etcFiles();
    // Awaited before the first start; the IP then goes into /etc/hosts.
    let networked = !netUp;
    const networkReady = async () => {
      if (networked) return;
      await netUp;
      networked = true;
      etcFiles();
    };
    const info = podInfoOf(rec);
    for (const [v, files] of Object.entries(spec.fileVolumes)) {
      writeVolumeFiles(rec.emptyDirs[v], files, info, spec.fsGroup);
    }

    // Members join pinned files, never /proc/PID/ns/*: a restart after the
    // pause process died must not join whoever got its pid next.
    const pinTypes = [
      ...(spec.hostIPC ? [] : ["ipc"]),
      ...(spec.hostNetwork ? [] : ["uts"]),
      ...(withPause ? ["pid"] : []),
    ];
    const pins = Object.fromEntries(pinTypes.map((t) => [t, `${nsDir(host, name)}/${t}`]));
    // Recorded before any pin is made, so a failure or a crash after it is undone.
    const recordPins = () => {
      rec.nsPins = pins;
      rec.resources.nsPins = true;
      save();
      privateDir(nsDir(host, name), 0o711);
    };
    if (withPause) {
      // The pause container, in the pod netns (or the host's), with new IPC/UTS/PID.
      const pauseName = `${name}__pause`;
      rec.pause = pauseName;
      save();
      const pauseRec = await createContainer(
        host,
        pauseSpec(pauseDir, (pauseDefaults?.args ?? []).length > 0, spec.pauseImage),
        {
          network: null,
          sandbox: sandboxFor(rec, pauseName, {
            network: rec.netns ?? "host",
            ...(spec.hostNetwork ? { uts: "host" } : {}),
            ...(spec.hostIPC ? { ipc: "host" } : {}),
          }, `${rec.cgroupPath}/_pause`),
        },
      );
      await networkReady();
      await startCreated(host, pauseRec);
      trace("pod: pause running");
      recordPins();
      for (const t of pinTypes) {
        pinNamespace(host.sys, {
          pid: pauseRec.pid!,
          startTime: pauseRec.pidStart!,
          type: t,
          path: pins[t],
        }, (p) => procStat(p)?.startTime);
      }
    } else {
      recordPins();
      if (pins.ipc || pins.uts) {
        createNamespaces(
          host.sys,
          { ipc: pins.ipc, uts: pins.uts },
          spec.hostNetwork ? undefined : rec.hostname,
        );
      }
    }
    trace("pod: namespaces pinned");
    const join = podJoin(rec);

    if (spec.initContainers.length > 0) await networkReady();
    for (const c of spec.initContainers) {
      const member = memberName(name, c.spec.name);
      rec.initContainers.push(member);
      save();
      const r = await createContainer(host, c, {
        network: null,
        sandbox: sandboxFor(rec, member, join, `${rec.cgroupPath}/${c.spec.name}`),
      });
      await startCreated(host, r);
      if (c.spec.sidecar) {
        // A native sidecar: started, then the next init container goes on, as the
        // kubelet does; it runs for the pod's life and restarts Always.
        (rec.sidecars ??= []).push(member);
        save();
        continue;
      }
      const done = await waitExited(host, r);
      trace("pod: init container done");
      if (done.exitCode !== 0) {
        throw new RklError(
          "EINIT",
          `${locText(c, ["name"])}: Cannot start pod ${JSON.stringify(name)}: init container ${
            JSON.stringify(c.spec.name)
          } exited with code ${done.exitCode}${lastLines(done)}`,
        );
      }
    }
    // App containers are independent once the namespaces exist: create
    // them side by side. All are recorded first, so a failure rolls back all.
    for (const c of spec.containers) rec.containers.push(memberName(name, c.spec.name));
    save();
    const made = await Promise.allSettled([
      ...spec.containers.map((c) =>
        createContainer(host, c, {
          network: null,
          sandbox: sandboxFor(
            rec,
            memberName(name, c.spec.name),
            join,
            `${rec.cgroupPath}/${c.spec.name}`,
          ),
        })
      ),
      networkReady(),
    ]);
    const failed = made.find((m): m is PromiseRejectedResult => m.status === "rejected");
    if (failed) throw failed.reason;
    trace("pod: app containers created");
    rec.created = true;
    rec.owner = undefined;
    save();
    return rec;
  } catch (e) {
    // A CNI ADD still running would attach after the rollback's DEL.
    await netUp?.catch(() => {});
    try {
      await teardownPod(host, rec);
    } catch (e2) {
      host.warn(
        `Cannot roll back pod ${JSON.stringify(name)} after "${(e as Error).message}": ${
          (e2 as Error).message
        }`,
      );
    }
    throw e;
  }
}

/**
 * Creates one more container in a pod that is made (the CRI's
 * CreateContainer). It is listed in the pod before it is made, and dropped
 * from it again when the create fails, so the pod's teardown always finds it.
 */
export async function addPodContainer(
  host: Host,
  pod: string,
  loaded: LoadedContainer,
  options: Pick<CreateOptions, "cri" | "logPath"> & { recordName: string },
): Promise<ContainerRecord> {
  const member = options.recordName;
  const rec = await host.store.withLock(() => {
    const r = getPod(host, pod);
    if (!r.created) {
      throw new ConflictError(`Cannot add to pod ${JSON.stringify(pod)}: it is being made`);
    }
    if (r.containers.includes(member)) {
      throw new ConflictError(`Cannot add ${JSON.stringify(member)}: pod ${pod} holds it already`);
    }
    r.containers.push(member);
    host.store.put("pods", r);
    return Promise.resolve(r);
  });
  try {
    return await createContainer(host, loaded, {
      network: null,
      sandbox: sandboxFor(rec, member, podJoin(rec), `${rec.cgroupPath}/${member}`),
      cri: options.cri,
      logPath: options.logPath,
    });
  } catch (e) {
    await forgetPodContainer(host, pod, member);
    throw e;
  }
}

/** Drops a removed container from its pod's list (the CRI's RemoveContainer). */
export function forgetPodContainer(host: Host, pod: string, member: string): Promise<void> {
  return host.store.withLock(() => {
    const r = host.store.get<PodRecord>("pods", pod);
    if (r && r.containers.includes(member)) {
      r.containers = r.containers.filter((m) => m !== member);
      host.store.put("pods", r);
    }
    return Promise.resolve();
  });
}

/** Whether the pod's IP goes into an env var or a volume file (downward API). */
function usesPodIP(spec: PodSpec): boolean {
  const ip = (ref: string | undefined) => ref === "status.podIP" || ref === "status.podIPs";
  return [...spec.initContainers, ...spec.containers].some((c) =>
    c.spec.env.some((e) => ip(e.fieldRef))
  ) || Object.values(spec.fileVolumes).some((files) => files.some((f) => ip(f.fieldRef)));
}

/**
 * Mounts each image volume's layers on its dir under the pod's volumes dir,
 * read-only and noexec (the members bind that mount); an image gone since
 * the pull (removed meanwhile) is an error at its volume.
 */
function mountImageVolumes(host: Host, rec: PodRecord): void {
  const dirs = podDirs(host, rec.name);
  const empty = `${dirs.dir}/image-volume-empty`;
  Deno.mkdirSync(empty, { mode: 0o755 });
  for (const [v, iv] of Object.entries(rec.imageVolumes ?? {})) {
    const image = host.images!.store.find(iv.imageId);
    if (!image) {
      throw new RklError(
        "EIMAGE",
        `Cannot mount image volume ${JSON.stringify(v)}: image ${
          iv.imageId.slice(7, 19)
        } was removed`,
      );
    }
    Deno.mkdirSync(iv.dir, { mode: 0o755 });
    mountImageLayers(host.sys, {
      lower: host.images!.store.lowerDirs(image),
      empty,
      target: iv.dir,
    });
  }
}

/** The namespaces a member of the pod joins: pinned files, or the host's. */
export function podJoin(rec: PodRecord): Sandbox["join"] {
  const pins = rec.nsPins ?? {};
  return {
    network: rec.netns ?? "host",
    ipc: rec.hostIPC ? "host" : pins.ipc,
    uts: rec.hostNetwork ? "host" : pins.uts,
    ...(rec.hostPID ? { pid: "host" } : rec.shareProcessNamespace ? { pid: pins.pid } : {}),
  };
}

export function sandboxFor(
  rec: PodRecord,
  recordName: string,
  join: Sandbox["join"],
  cgroupPath: string,
): Sandbox {
  return {
    pod: rec.name,
    recordName,
    hostname: rec.hostname,
    etcDir: rec.dirs.etc,
    join,
    cgroupPath,
    emptyDirs: rec.emptyDirs,
    labels: { "org.rkl.pod": rec.name },
    podInfo: podInfoOf(rec),
  };
}

/** The pod's own fields for the downward API. */
export function podInfoOf(rec: PodRecord): PodInfo {
  const hostIP = hostIPv4();
  return {
    name: rec.name,
    namespace: rec.namespace,
    uid: rec.uid ?? "",
    labels: rec.labels,
    annotations: rec.annotations,
    nodeName: nodeName(),
    serviceAccountName: "default",
    hostIP,
    podIP: rec.hostNetwork ? hostIP : rec.network?.ip ?? "",
  };
}

/** The node name a kubelet would register: the host name, lower case. */
function nodeName(): string {
  try {
    return Deno.hostname().toLowerCase();
  } catch {
    return "localhost";
  }
}

/** The host's first non-loopback IPv4 address, or 127.0.0.1. */
function hostIPv4(): string {
  try {
    for (const i of Deno.networkInterfaces()) {
      if (i.family === "IPv4" && !i.address.startsWith("127.") && !/^(veth|cni|rkl)/.test(i.name)) {
        return i.address;
      }
    }
  } catch { /* no interfaces visible */ }
  return "127.0.0.1";
}

function setGroup(path: string, gid: number, mode: number): void {
  Deno.chownSync(path, 0, gid);
  Deno.chmodSync(path, mode);
}

function makeClaim(host: Host, claim: string, fsGroup: number | undefined): void {
  const dir = claimDir(host.paths, claim);
  privateDir(`${host.paths.root}/volumes`);
  try {
    const st = Deno.lstatSync(dir);
    if (!st.isDirectory) throw new RklError("ECLAIM", `volume ${dir} is not a directory`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    Deno.mkdirSync(dir, { mode: 0o755 });
    Deno.chmodSync(dir, 0o777);
  }
  if (fsGroup !== undefined) setGroup(dir, fsGroup, 0o2777);
}

/**
 * Writes a configMap/secret/downwardAPI/projected volume into its fresh
 * directory (made by this pod, so nothing in it can be a planted link); the
 * paths were checked relative and free of `..` when the file was read.
 */
function writeVolumeFiles(
  dir: string,
  files: VolumeFile[],
  info: PodInfo,
  fsGroup: number | undefined,
): void {
  Deno.mkdirSync(dir, { mode: 0o755 });
  Deno.chmodSync(dir, 0o755);
  if (fsGroup !== undefined) setGroup(dir, fsGroup, 0o2755);
  for (const f of files) {
    const path = `${dir}/${f.path}`;
    const parent = path.slice(0, path.lastIndexOf("/"));
    if (parent !== dir) Deno.mkdirSync(parent, { recursive: true, mode: 0o755 });
    const bytes = f.fieldRef !== undefined
      ? new TextEncoder().encode(fieldValue(f.fieldRef, info))
      : Uint8Array.from(atob(f.data ?? ""), (c) => c.charCodeAt(0));
    // With fsGroup the group may read, as the kubelet's volume ownership does.
    const mode = fsGroup !== undefined ? f.mode | 0o440 : f.mode;
    Deno.writeFileSync(path, bytes, { mode, createNew: true });
    Deno.chmodSync(path, mode); // past the umask
    if (fsGroup !== undefined) Deno.chownSync(path, 0, fsGroup);
  }
}

/**
 * A tmpfs for an `emptyDir.medium: Memory`, sized as the kubelet sizes it: the
 * sizeLimit, but never more than the pod's memory limit, or the node's memory
 * when the pod has none. Its pages are charged to the memory cgroup of whoever
 * writes them.
 */
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;

function mountMemoryDir(
  host: Host,
  dir: string,
  sizeLimit: number | undefined,
  podMemory: number | undefined,
): void {
  const cap = podMemory ?? nodeCapacity().memoryBytes;
  const size = sizeLimit !== undefined && (cap <= 0 || sizeLimit < cap) ? sizeLimit : cap;
  host.sys.mount({
    source: "tmpfs",
    target: dir,
    fstype: "tmpfs",
    flags: MS_NOSUID | MS_NODEV,
    data: `mode=0777${size > 0 ? `,size=${size}` : ""}`,
  });
}

function writeEtcFiles(
  rec: PodRecord,
  subdomain: string | undefined,
  aliases: { ip: string; hostnames: string[] }[] = [],
  dns?: PodDns,
  podResolv?: PodResolv,
  warn: (note: string) => void = () => {},
): void {
  const extra = aliases.length > 0
    ? `\n# Entries added by HostAliases.\n${
      aliases.map((a) => `${a.ip}\t${a.hostnames.join("\t")}\n`).join("")
    }`
    : "";
  const names = subdomain
    ? [`${rec.hostname}.${subdomain}.${rec.namespace}.svc.cluster.local`, rec.hostname]
    : [rec.hostname];
  if (!dns && podResolv) {
    // dnsPolicy None or a dnsConfig, on the pod's network or the host's.
    let hostText = "";
    try {
      if (podResolv.base === "host") hostText = Deno.readTextFileSync("/etc/resolv.conf");
    } catch { /* none on the host */ }
    const made = podResolvConf(podResolv, hostText, rec.hostNetwork);
    made.notes.forEach(warn);
    dns = made.dns;
  }
  if (rec.hostNetwork) {
    // The host's files, but a manifest's dnsPolicy None or dnsConfig still shapes resolv.conf.
    const own = podResolv ? dns : undefined;
    for (const f of ["hosts", "hostname", ...(own ? [] : ["resolv.conf"])]) {
      Deno.copyFileSync(`/etc/${f}`, `${rec.dirs.etc}/${f}`);
    }
    if (own) Deno.writeTextFileSync(`${rec.dirs.etc}/resolv.conf`, dnsResolvConf(own));
    if (extra) Deno.writeTextFileSync(`${rec.dirs.etc}/hosts`, extra, { append: true });
    return;
  }
  const hosts = hostsFile(names.join("\t"), rec.network?.ip);
  Deno.writeTextFileSync(`${rec.dirs.etc}/hosts`, hosts + extra);
  Deno.writeTextFileSync(`${rec.dirs.etc}/hostname`, `${rec.hostname}\n`);
  if (dns) {
    Deno.writeTextFileSync(`${rec.dirs.etc}/resolv.conf`, dnsResolvConf(dns));
    return;
  }
  let resolv = "";
  try {
    resolv = Deno.readTextFileSync("/etc/resolv.conf");
  } catch { /* none on the host */ }
  Deno.writeTextFileSync(`${rec.dirs.etc}/resolv.conf`, resolvConf(resolv));
}

/** resolv.conf from a DNS config (the CRI's DNSConfig), as the kubelet writes it. */
export function dnsResolvConf(dns: PodDns): string {
  const lines = [
    ...(dns.searches.length > 0 ? [`search ${dns.searches.join(" ")}`] : []),
    ...dns.servers.map((s) => `nameserver ${s}`),
    ...(dns.options.length > 0 ? [`options ${dns.options.join(" ")}`] : []),
  ];
  return lines.join("\n") + "\n";
}

function findPort(loaded: LoadedPod, hostPort: number): (string | number)[] {
  for (const [i, c] of loaded.spec.containers.entries()) {
    const j = c.spec.ports.findIndex((p) => p.hostPort === hostPort);
    if (j >= 0) return ["spec", "containers", i, "ports", j, "hostPort"];
  }
  return ["metadata", "name"];
}

function locText(
  x: { source: { at(p: (string | number)[]): { file: string; line?: number; column?: number } } },
  path: (string | number)[],
): string {
  const at = x.source.at(path);
  return `${at.file}${at.line ? `:${at.line}:${at.column}` : ""}`;
}

/** Waits for a container to exit (init containers); no deadline, as in Kubernetes. */
async function waitExited(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
    const exit = readExitCode(rec.dirs.exitDir, rec.id);
    if (exit !== undefined) return await refresh(host, rec);
    checkCancelled(); // an init container that never ends can still be interrupted
    await host.sleep(delay);
  }
}

/** `: last output line` of a failed container, to put in its error. */
function lastLines(rec: ContainerRecord): string {
  try {
    const { entries } = parseCriLog(Deno.readTextFileSync(rec.dirs.log));
    const last = tailEntries(entries, 2).map((e) => e.content).join(" | ");
    return last ? ` (last output: ${last})` : "";
  } catch {
    return "";
  }
}

/** Starts the app containers of a created pod. */
export async function startPod(
  host: Host,
  name: string,
  options: { justCreated?: boolean } = {},
): Promise<PodRecord> {
  return await host.store.withLock(async () => {
    const rec = getPod(host, name);
    if (!rec.created) {
      throw new ConflictError(
        `Cannot start pod ${JSON.stringify(name)}: it is still being created`,
      );
    }
    // Members this command has just created need no runtime state call: the
    // records say "created" (or "running" if someone started them meanwhile).
    const members = await Promise.all(
      rec.containers.map((m) =>
        options.justCreated ? getContainer(host, m) : refresh(host, getContainer(host, m))
      ),
    );
    const bad = members.find((c) => c.status !== "created" && c.status !== "running");
    if (bad) {
      throw new ConflictError(
        `Cannot start pod ${JSON.stringify(name)}: container ${
          JSON.stringify(bad.name)
        } is ${bad.status}`,
        {
          hint: "remove the pod and run it again",
        },
      );
    }
    const toStart = members.filter((c) => c.status === "created");
    if (toStart.some((c) => c.hooks?.postStart)) {
      // As the kubelet: in order, each postStart done before the next starts.
      for (const c of toStart) await startCreated(host, c);
    } else await Promise.all(toStart.map((c) => startCreated(host, c)));
    rec.startedAt ??= host.now().toISOString();
    host.store.put("pods", rec);
    trace("pod: started");
    return rec;
  });
}

export function runPod(
  host: Host,
  loaded: LoadedPod,
  options: { network: string | null; static?: { file: string; hash: string } },
): Promise<PodRecord> {
  return cancellable(() => runPodNow(host, loaded, options));
}

async function runPodNow(
  host: Host,
  loaded: LoadedPod,
  options: { network: string | null; static?: { file: string; hash: string } },
): Promise<PodRecord> {
  const rec = await createPod(host, loaded, options);
  try {
    return await startPod(host, rec.name, { justCreated: true });
  } catch (e) {
    await host.store.withLock(() => teardownPod(host, rec)).catch((e2) =>
      host.warn(`Cannot roll back pod ${JSON.stringify(rec.name)}: ${(e2 as Error).message}`)
    );
    throw e;
  }
}

/** Stops the app containers (in parallel, each with the grace period), then the pause container. */
export async function stopPod(host: Host, name: string, timeoutSec?: number): Promise<PodRecord> {
  const rec = getPod(host, name);
  const grace = timeoutSec ?? rec.terminationGracePeriodSeconds;
  await Promise.all(
    rec.containers.filter((m) => host.store.get("containers", m)).map((m) =>
      stopContainer(host, m, grace, { byUser: true })
    ),
  );
  // Sidecars outlive the app containers they serve, and stop after them (the kubelet's order).
  for (const m of [...(rec.sidecars ?? [])].reverse()) {
    if (host.store.get("containers", m)) await stopContainer(host, m, grace, { byUser: true });
  }
  if (rec.pause && host.store.get("containers", rec.pause)) await stopContainer(host, rec.pause, 0);
  return rec;
}

/**
 * Undoes whatever the record lists, containers first. Idempotent. Runs under
 * the store lock (taken here if the caller has not), so whether the network
 * is left unused cannot change while it runs.
 */
export function teardownPod(host: Host, rec: PodRecord): Promise<void> {
  return host.store.withLock(() => teardownPodLocked(host, rec));
}

async function teardownPodLocked(host: Host, rec: PodRecord): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => unknown | Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  const members = [...rec.containers, ...rec.initContainers];
  const down = async (m: string) => {
    let c: ContainerRecord | undefined;
    try {
      c = host.store.get<ContainerRecord>("containers", m);
    } catch (e) {
      if (!(e instanceof DamagedRecordError)) throw e;
      await scavengeContainer(host, m);
      return;
    }
    if (c) await teardown(host, c);
  };
  // The members, CNI DEL and the idle bridge go side by side: the netns is a
  // pinned file, so DEL needs none of the members' processes, and neither
  // DEL nor the members need the bridge. Whether the bridge is idle is known
  // now: only this pod and its members (damaged records too) are going.
  const user = rec.resources.cni && rec.netns && rec.network
    ? { kind: "pods" as const, name: rec.name, network: rec.network }
    : undefined;
  const bridge = user
    ? unusedBridge(host, user, new Set([...members, ...(rec.pause ? [rec.pause] : [])]))
    : undefined;
  const cniErrors: unknown[] = [];
  // The bridge goes once DEL has deleted the pod's veth (the first thing the
  // bridge plugin does): both hold the kernel's rtnl lock, and a bridge
  // deleted first would hold up the rest of DEL for its whole 35-50 ms.
  const veth = bridge ? hostVeth(rec.network?.result, bridge) : undefined;
  let delDone!: () => void;
  const delEnded = new Promise<void>((r) => delDone = r);
  const vethGone = veth ? linkGone(veth, delEnded) : undefined;
  const [, cniDone] = await Promise.all([
    (async () => {
      await Promise.all(members.map((m) => step(() => down(m))));
      if (rec.pause) await step(() => down(rec.pause!));
    })(),
    delPodNetwork(host, rec, cniErrors).finally(delDone),
    bridge
      ? (async () => {
        // A veth not known by name: after the DEL, which deletes it (the
        // bridge is deleted only once no port of anyone is attached).
        await (vethGone ?? delEnded);
        await step(() => deleteBridge(host, bridge));
      })()
      : undefined,
  ]);
  errors.push(...cniErrors);
  trace("pod teardown: members, cni del, bridge");
  await finishPodNetwork(host, rec, cniDone && cniErrors.length === 0, errors, {
    bridgeDone: true,
  });
  if (rec.resources.nsPins) {
    const dir = nsDir(host, rec.name);
    for (const t of ["ipc", "uts", "pid"]) await step(() => removeNetns(host.sys, `${dir}/${t}`));
    await step(() => removeBelow(`${host.paths.runRoot}/ns`, dir, `pod ${rec.name} namespaces`));
  }
  if (rec.resources.cgroup) {
    await step(() => removeCgroup(host, rec.cgroupPath));
    // A parent the CRI gave is the kubelet's (its pod cgroup): not ours to remove.
    if (rec.cgroupPath === `${host.cgroupParent}/pod-${rec.name}`) {
      await step(() => removeEmptyParent(host, rec.cgroupPath));
    }
  }
  for (const dir of rec.memoryDirs ?? []) await step(() => unmount(host.sys, dir));
  if (rec.resources.imageVolumes) {
    for (const iv of Object.values(rec.imageVolumes ?? {})) {
      await step(() => unmount(host.sys, iv.dir));
    }
  }
  if (rec.resources.dir) {
    // Tolerates a dir already gone (a teardown that failed later), refuses a mounted one.
    await step(() => removeUnmounted(host, podDirs(host, rec.name).dir));
  }
  if (errors.length > 0) {
    host.store.put("pods", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot remove everything of pod ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  host.store.delete("pods", rec.name);
  trace("pod teardown: done");
  const group = rec.annotations?.[HOSTS_GROUP];
  if (group) writeGroupHosts(host, group);
}

/**
 * CNI DEL (the IP lease and port rules go with it) and the netns, as far as
 * the record lists them; errors are collected, not thrown. A failed DEL
 * keeps the netns: the retry needs it (see teardown in container.ts).
 */
async function downPodNetwork(host: Host, rec: PodRecord, errors: unknown[]): Promise<void> {
  const before = errors.length;
  const ran = await delPodNetwork(host, rec, errors);
  await finishPodNetwork(host, rec, ran && errors.length === before, errors);
}

/** CNI DEL of the pod's attachment; true when there was one to delete. */
async function delPodNetwork(host: Host, rec: PodRecord, errors: unknown[]): Promise<boolean> {
  if (!rec.resources.cni || !rec.netns) return false;
  const cniId = rec.network?.cniId ?? `p_${rec.name}`;
  if (!pathExists(rec.netns)) {
    try {
      await removeNatRulesFor(host.cmd, cniId); // see teardown()
    } catch (e) {
      errors.push(e);
    }
  }
  await cniDown(host.cni, {
    cniId,
    netns: rec.netns,
    conflist: rec.network?.conflist,
    portMappings: rec.network?.portMappings ?? [],
    result: rec.network?.result,
  }, (e) => errors.push(e));
  return true;
}

/**
 * After a DEL: portmap's idle chains and the bridge when no one else uses
 * them (`released` says the DEL ran and succeeded; `bridgeDone`, that the
 * bridge was dealt with already), then the netns, unless an error so far
 * says a retry still needs it.
 */
async function finishPodNetwork(
  host: Host,
  rec: PodRecord,
  released: boolean,
  errors: unknown[],
  options: { bridgeDone?: boolean } = {},
): Promise<void> {
  const before = errors.length;
  if (released && rec.network) {
    try {
      const user = { kind: "pods" as const, name: rec.name, network: rec.network };
      if (options.bridgeDone) {
        if (rec.network.portMappings.length > 0) await removeIdlePortmapChains(host.cmd);
      } else await releaseNetworkIfUnused(host, user);
    } catch (e) {
      errors.push(e);
    }
  }
  const cniFailed = rec.resources.cni && !released && !!rec.netns;
  if (rec.resources.netns && rec.netns && !cniFailed && errors.length === before) {
    try {
      removeNetns(host.sys, rec.netns);
    } catch (e) {
      errors.push(e);
    }
  }
}

/**
 * Releases the pod's network and keeps the rest (the CRI's StopPodSandbox):
 * afterwards the record lists no CNI attachment and no netns.
 */
export async function releasePodNetwork(host: Host, rec: PodRecord): Promise<void> {
  const errors: unknown[] = [];
  await downPodNetwork(host, rec, errors);
  if (errors.length > 0) {
    host.store.put("pods", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot release the network of pod ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  rec.resources.cni = false;
  rec.resources.netns = false;
  host.store.put("pods", rec);
}

/**
 * Pods that share the annotation {@linkcode HOSTS_GROUP} (a converted
 * compose project) find each other by name: each one's /etc/hosts ends with
 * the others' addresses and names, rewritten in place (same inode, so running
 * containers see it) whenever a pod of the group comes or goes.
 */
export function writeGroupHosts(host: Host, group: string): void {
  const MARK = "# rkl hosts group";
  const members = host.store.list<PodRecord>("pods").filter((p) =>
    p.annotations?.[HOSTS_GROUP] === group
  );
  const entries = members.filter((p) => p.network?.ip && !p.hostNetwork).map((p) => ({
    pod: p.name,
    line: `${p.network!.ip}\t${
      [...new Set([p.hostname, ...(p.annotations[HOSTS_NAMES] ?? "").split(",")])]
        .filter((n) => /^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/.test(n)).join(" ")
    }`,
  }));
  for (const p of members) {
    if (p.hostNetwork) continue;
    const path = `${p.dirs.etc}/hosts`;
    try {
      const text = Deno.readTextFileSync(path);
      const base = text.includes(`\n${MARK}`) ? text.slice(0, text.indexOf(`\n${MARK}`) + 1) : text;
      const others = entries.filter((e) => e.pod !== p.name).map((e) => e.line);
      Deno.writeTextFileSync(
        path,
        others.length > 0 ? `${base}${MARK} ${group}\n${others.join("\n")}\n` : base,
      );
    } catch { /* a pod being made or removed */ }
  }
}

export async function removePod(
  host: Host,
  name: string,
  options: { force?: boolean } = {},
): Promise<void> {
  let rec: PodRecord;
  try {
    rec = getPod(host, name);
  } catch (e) {
    if (!(e instanceof DamagedRecordError) || !options.force) throw e;
    host.warn(`${e.message}; removing what the host holds for pod ${JSON.stringify(name)}`);
    await scavengePod(host, name, podMembersOnHost(host, name));
    return;
  }
  trace("pod rm: begin");
  refuseWhileBeingMade(host, name, "pod", rec.created ? undefined : rec.owner);
  if (!options.force) {
    const view = await podView(host, rec);
    const interrupted = !rec.created && ownerGone(host, rec.owner);
    if (view.phase === "Running" || (view.phase === "Creating" && !interrupted)) {
      throw new ConflictError(
        `Cannot remove pod ${JSON.stringify(name)}: it is ${view.phase.toLowerCase()}`,
        {
          hint: "stop it first, or use rm -f",
        },
      );
    }
  }
  await host.store.withLock(() => teardownPod(host, rec));
}

/** Record names of a pod's members, from records (usable or not) and container dirs. */
export function podMembersOnHost(host: Host, pod: string): string[] {
  const names = new Set<string>();
  for (const r of host.store.list("containers")) names.add(r.name);
  for (const d of host.store.damaged("containers")) names.add(d.name);
  try {
    for (const e of Deno.readDirSync(`${host.paths.root}/containers`)) names.add(e.name);
  } catch { /* none */ }
  return [...names].filter((n) => n.startsWith(`${pod}_`)).sort();
}

export interface PodContainerView {
  name: string;
  init: boolean;
  status: ContainerRecord["status"] | "missing";
  pid: number | null;
  exitCode: number | null;
  /** Why it exited, as the CRI says it (`OOMKilled`, `Completed`, `Error`); null unless exited. */
  reason: string | null;
  restarts: number;
  limits: ContainerRecord["limits"];
}

export interface PodView {
  name: string;
  namespace: string;
  phase: PodPhase;
  ip: string | null;
  hostNetwork: boolean;
  ports: PortMapping[];
  pausePid: number | null;
  cgroup: string;
  limits: CgroupLimits;
  created: string;
  started: string | null;
  specFile: string;
  runtime: string;
  labels: Record<string, string>;
  /** For pods made by `rkl daemon`: the manifest and its content hash. */
  static: { file: string; hash: string } | null;
  /** For sandboxes made through the CRI: the Kubernetes pod it is. */
  cri: { namespace: string; name: string; uid: string; ready: boolean } | null;
  containers: PodContainerView[];
}

/** The pod's phase, from its containers as Kubernetes defines it. */
export function podPhase(created: boolean, app: PodContainerView["status"][]): PodPhase {
  if (!created) return "Creating";
  if (app.some((s) => s === "running")) return "Running";
  if (app.every((s) => s === "created")) return "Pending";
  if (app.every((s) => s === "exited")) return "Succeeded";
  return "Unknown";
}

export async function podView(
  host: Host,
  rec: PodRecord,
  options: { exact?: boolean } = {},
): Promise<PodView> {
  const look = async (m: string, init: boolean): Promise<PodContainerView> => {
    const name = m.slice(rec.name.length + 1);
    let c: ContainerRecord | undefined;
    try {
      c = host.store.get<ContainerRecord>("containers", m);
    } catch (e) {
      if (!(e instanceof DamagedRecordError)) throw e;
      return {
        name,
        init,
        status: "unknown",
        pid: null,
        exitCode: null,
        reason: null,
        restarts: 0,
        limits: {},
      };
    }
    if (!c) {
      return {
        name,
        init,
        status: "missing",
        pid: null,
        exitCode: null,
        reason: null,
        restarts: 0,
        limits: {},
      };
    }
    const r = options.exact ? await refresh(host, c) : await quickRefresh(host, c);
    return {
      name,
      init,
      status: r.status,
      pid: r.pid ?? null,
      exitCode: r.exitCode ?? null,
      reason: exitReason(host, r) ?? null,
      restarts: r.restarts ?? 0,
      limits: r.limits,
    };
  };
  const inits = await Promise.all(rec.initContainers.map((m) => look(m, true)));
  const apps = await Promise.all(rec.containers.map((m) => look(m, false)));
  let phase = podPhase(rec.created, apps.map((a) => a.status));
  if (phase === "Succeeded" && apps.some((a) => a.exitCode !== 0)) phase = "Failed";
  if (phase === "Unknown" && apps.every((a) => a.status === "exited" || a.status === "missing")) {
    phase = "Failed";
  }
  let pause: ContainerRecord | undefined;
  try {
    pause = rec.pause ? host.store.get<ContainerRecord>("containers", rec.pause) : undefined;
  } catch { /* damaged: no pid to show */ }
  return {
    name: rec.name,
    namespace: rec.namespace,
    phase,
    ip: rec.network?.ip ?? null,
    hostNetwork: rec.hostNetwork,
    ports: rec.network?.portMappings ?? [],
    pausePid: pause?.pid ?? null,
    cgroup: rec.cgroupPath,
    limits: rec.limits,
    created: rec.createdAt,
    started: rec.startedAt ?? null,
    specFile: rec.specFile,
    runtime: rec.runtime.name,
    labels: rec.labels,
    static: rec.static ?? null,
    cri: rec.cri
      ? { namespace: rec.cri.namespace, name: rec.cri.name, uid: rec.cri.uid, ready: rec.cri.ready }
      : null,
    containers: [...inits, ...apps],
  };
}

export function listPods(host: Host): Promise<PodView[]> {
  return Promise.all(host.store.list<PodRecord>("pods").map((r) => podView(host, r)));
}

/** The record name of a pod's container; with one app container the name may be left out. */
export function podMember(host: Host, pod: string, container: string | undefined): ContainerRecord {
  const rec = getPod(host, pod);
  const names = [...rec.initContainers, ...rec.containers].map((m) => m.slice(pod.length + 1));
  if (container === undefined) {
    if (rec.containers.length === 1) return getContainer(host, rec.containers[0]);
    throw new UsageError(
      `pod ${JSON.stringify(pod)} has several containers: name one of ${names.join(", ")}`,
    );
  }
  if (!names.includes(container)) {
    throw new NotFoundError(
      `Cannot find container ${JSON.stringify(container)} in pod ${JSON.stringify(pod)}`,
      {
        hint: `its containers: ${names.join(", ")}`,
      },
    );
  }
  return getContainer(host, memberName(pod, container));
}
