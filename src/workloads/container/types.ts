/**
 * The shapes of a single container: its stored record, its plan, and what
 * create is asked for. Data only; the files beside this one act on them.
 */
import type { CniResult, NetConfList, PortMapping } from "../../net/cni.ts";
import type { BundleDefaults, GenerateContext } from "../../oci/generate.ts";
import type { OciConfig } from "../../oci/spec.ts";
import type { SeccompProfile } from "../../oci/seccomp.ts";
import type { StoredRecord } from "../../store/store.ts";
import type { PodInfo } from "../../spec/downward.ts";
import type { LifecycleHandlerSpec } from "../../spec/schema.ts";
import type { ExecHook } from "../../spec/container_spec.ts";
import type { ComposeHealthcheck } from "../../spec/compose.ts";
import type { ContainerDirs, Host, RuntimeRef } from "../host.ts";
import type { UserFiles } from "../../image/users.ts";
import type { RecordSource } from "../record_source.ts";

export type ContainerStatus = "creating" | "created" | "running" | "exited" | "unknown";

/** A container's lifecycle hooks as its record keeps them (named ports resolved). */
export interface StoredHooks {
  postStart?: LifecycleHandlerSpec;
  preStop?: LifecycleHandlerSpec;
  /** Commands run, in order, after postStart and after preStop (compose hooks). */
  postStartExec?: ExecHook[];
  preStopExec?: ExecHook[];
}

export interface ContainerRecord extends StoredRecord {
  kind: "container";
  /**
   * Runtime container id, and what its dirs, cgroup, netns and log are named
   * by: the name it was made with, kept when it is renamed (docker's way).
   */
  id: string;
  /** The name it had before its last rename (gc finishes a rename cut short). */
  renamedFrom?: string;
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
  /**
   * When rkl last sent it a signal the runtime delivered (it was alive then):
   * its exit is never timed before that (status.ts exitTime).
   */
  signaledAt?: string;
  exitCode?: number;
  pid?: number;
  /** Start time of `pid` (/proc/PID/stat field 22), to tell it from a reused pid. */
  pidStart?: number;
  /** The named volumes it mounts (`run -v NAME:/dir`): none is removed while it exists. */
  volumes?: string[];
  /** Those its create made (they were missing): a create undone removes them again. */
  madeVolumes?: string[];
  /** Its anonymous volumes (`-v /dir`, 64-hex names): `rm -v` and `run --rm` remove them. */
  anonymousVolumes?: string[];
  /**
   * Volumes (dir names under ROOT/volumes) that get the image's files at
   * `destination` when empty as the rootfs is mounted (populate.ts).
   */
  populate?: { volume: string; destination: string }[];
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
    /** Its bridge did not exist before this container's ADD (a rollback deletes it when idle). */
    newBridge?: boolean;
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
  /**
   * Created with its launch left for the start (the CRI's CreateContainer,
   * as containerd leaves its task to StartContainer): config.json is
   * written, but no overlay, subPath, conmon or runtime container exists
   * yet, and nothing runs. Cleared, and saved, before the start makes them.
   */
  deferred?: boolean;
  /**
   * Removed through the CRI, its teardown finishing after the answer: no
   * CRI call sees it any more; its pod's teardown (or the next daemon)
   * finishes the removal if this one could not.
   */
  removing?: boolean;
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
  /** The front end that made it and what it keeps here (opaque to the core). */
  source?: RecordSource;
  /**
   * Records written before `source`: the CRI's metadata. Read through
   * recordSource() (as a "cri" source), never written any more.
   */
  cri?: Record<string, unknown>;
}

export interface StagedSubPath {
  root: string;
  subPath: string;
  target: string;
  /** Index in the spec's mounts, to locate errors. */
  mount: number;
}

/** A process, told from a later one with its pid by its start time. */
export interface Owner {
  pid: number;
  start: number;
}

export interface ExtraNetwork {
  name: string;
  ifName: string;
  conflist: NetConfList;
  result?: CniResult;
  ip?: string;
  /** Its bridge did not exist before this container's ADD (a rollback deletes it when idle). */
  newBridge?: boolean;
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
  /**
   * The id its dirs, cgroup, netns, log and runtime container are named by
   * (default: its name). Another one when a renamed container keeps that
   * name as its id (see chooseId).
   */
  id?: string;
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

/** What a container's root filesystem is made of: a bundle's rootfs or an image's layers. */
export interface RootSource {
  /** overlayfs lower dirs, topmost first. */
  lowers: string[];
  defaults: BundleDefaults;
  /** The image's id when the rootfs is an image. */
  imageId?: string;
  /** The /etc/passwd and /etc/group the container will see. */
  userFiles(): UserFiles;
  /** How messages name it. */
  where: string;
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
  /** The front end that makes it, kept on the record as given. */
  source?: RecordSource;
  /** Where conmon writes the log instead of the log dir (the CRI's log_directory/log_path). */
  logPath?: string;
  /** The caller starts it at once and saves it then (run): no save as "created" between. */
  thenStart?: boolean;
  /**
   * Leave the overlay, subPaths, conmon and the runtime's create to the
   * start (see ContainerRecord.deferred); an image's rootfs only.
   */
  deferLaunch?: boolean;
  /** Rootless: refuse limits that cannot apply instead of warning (`--strict-limits`). */
  strictLimits?: boolean;
}

/** A workload attached to a network, as far as releasing the network goes. */
export interface NetworkUser {
  kind: "containers" | "pods";
  name: string;
  network: {
    name: string;
    conflist: NetConfList;
    portMappings: PortMapping[];
    /** The bridge did not exist before this user's ADD (see bridgeGoesWith). */
    newBridge?: boolean;
  };
}

/**
 * The names in exit directories, listed once for a refresh of many records:
 * a running container has no exit file, and a failed read (an exception per
 * container) costs more than one listing. A file that appears after the
 * listing is still seen: the process check below falls back to `refresh()`.
 */
export type ExitFiles = Map<string, ReadonlySet<string>>;
