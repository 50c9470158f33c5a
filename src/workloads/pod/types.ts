/** A pod's record, the views of it, and the names and places derived from its name. */
import { NotFoundError } from "../../errors.ts";
import type { CniResult, NetConfList, PortMapping } from "../../net/cni.ts";
import type { RestartPolicy } from "../../spec/pod.ts";
import type { StoredRecord } from "../../store/store.ts";
import type { CgroupLimits } from "../../sys/cgroups/mod.ts";
import type { ContainerRecord, Owner } from "../container.ts";
import type { Host, RuntimeRef } from "../host.ts";
import type { RecordSource } from "../record_source.ts";
import type { ProbeKind, ProbeState } from "../probes.ts";
import type { ProbeSpec } from "../../spec/schema.ts";

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
    /** Its bridge did not exist before this pod's ADD (a rollback deletes it when idle). */
    newBridge?: boolean;
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
  /**
   * Set once a served `pod rm` has answered while its teardown goes on
   * (lifecycle.ts, removePod), with the process doing it. Such a pod is gone
   * to every command; a dead remover means the removal was cut short, and
   * `pod rm -f`, `pod run` of the name and `gc` finish it.
   */
  removing?: boolean;
  remover?: Owner;
  /** The run root's epoch it was made in; another one means a reboot came between. */
  epoch?: string;
  /** Set for pods `rkl daemon` made from a manifest: the file and its content hash. */
  static?: { file: string; hash: string };
  /** metadata.uid, made at create (the downward API shows it). */
  uid?: string;
  /** PersistentVolumeClaims it mounts: `rkl volume rm` refuses them while the pod exists. */
  claims?: string[];
  /**
   * Members with probes: record name → them. A pod not made by the daemon has them run by its
   * probe monitor (probe_monitor.ts) for as long as it lives.
   */
  probes?: Record<string, MemberProbes>;
  /** Image volumes: name → the image (`rkl image rm` refuses it while the pod exists). */
  imageVolumes?: Record<string, { imageId: string; dir: string }>;
  /** The front end that made it and what it keeps here (opaque to the core). */
  source?: RecordSource;
  /**
   * Records written before `source`: the CRI's metadata. Read through
   * recordSource() (as a "cri" source), never written any more.
   */
  cri?: Record<string, unknown>;
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

/**
 * Creates the sandbox (and the pause container where one is needed), runs the init containers
 * to completion and creates (not starts) the app containers.
 */
export interface CreatePodOptions {
  network: string | null;
  static?: { file: string; hash: string };
  /** The front end that makes it, kept on the record as given. */
  source?: RecordSource;
}

export function getPod(host: Host, name: string): PodRecord {
  const rec = host.store.get<PodRecord>("pods", name);
  if (!rec || rec.removing) {
    throw new NotFoundError(`Cannot find pod ${JSON.stringify(name)}`, {
      hint: "rkl pod list shows the names",
    });
  }
  return rec;
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
  /** Running, started and its readiness probe passing (the kubelet's `ready`). */
  ready: boolean;
  /** What the pod's probe monitor last saw of it; null when it has no probes or none ran yet. */
  probes: MemberProbeState | null;
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
  /** The front end that made it and its name for the pod (the CRI: NAMESPACE/NAME). */
  source: { kind: RecordSource["kind"]; name: string } | null;
  containers: PodContainerView[];
}

/** One member's probes, as stored on the pod record at create. */
export interface MemberProbes {
  liveness?: ProbeSpec;
  readiness?: ProbeSpec;
  startup?: ProbeSpec;
  ports: { name?: string; containerPort: number }[];
  /** A native sidecar: restarted Always, whatever the pod's policy. */
  sidecar?: boolean;
}

/** What the monitor last saw of a member, as `pod state` shows it. */
export interface MemberProbeState {
  /** The container process the states are about (a restart starts afresh). */
  pid?: number;
  startup?: ProbeState;
  liveness?: ProbeState;
  readiness?: ProbeState;
  /** The last probe that failed past its threshold, and when. */
  lastFailure?: { probe: ProbeKind; at: string };
  /** When a restart is due (after the back-off), if one is. */
  restartAt?: string;
}
