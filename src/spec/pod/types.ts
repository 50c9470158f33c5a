/** What loading a Pod manifest gives: the pod's spec and its parts. */
import type * as z from "../zod.ts";
import type { LoadedContainer, SpecSource } from "../container.ts";
import type { resources } from "../schema.ts";
import type { PathSegment, Warning } from "../source.ts";
import type { InitRestart } from "./restart_rules.ts";

export type RestartPolicy = "Always" | "OnFailure" | "Never";

export interface PodSpec {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Absolute path of the pause bundle when the manifest names one (label `bundle`). */
  pauseBundle?: string;
  /** The pause process's image (a reference already in the image store); else the bundle. */
  pauseImage?: string;
  containers: LoadedContainer[];
  initContainers: LoadedContainer[];
  restartPolicy: RestartPolicy;
  hostNetwork: boolean;
  shareProcessNamespace: boolean;
  hostname: string;
  subdomain?: string;
  terminationGracePeriodSeconds: number;
  /** emptyDir volume names used by some container. */
  emptyDirs: string[];
  /**
   * The emptyDirs with `medium: Memory`: a tmpfs each, sized by sizeLimit in bytes (undefined:
   * none given) and, as the kubelet sizes it, never past the pod's memory limit or the node's.
   */
  memoryDirs?: Record<string, number | undefined>;
  /** configMap, secret, downwardAPI and projected volumes: name → the files to write. */
  fileVolumes: Record<string, VolumeFile[]>;
  /** PersistentVolumeClaims mounted by some container (named local volumes). */
  claims: string[];
  /** Init containers with their own restartPolicy (Never, OnFailure) and rules: name → them. */
  initRestarts?: Record<string, InitRestart>;
  /** Image volumes: name → the image, pulled by its policy and mounted read-only. */
  imageVolumes?: Record<string, ImageVolume>;
  hostAliases: { ip: string; hostnames: string[] }[];
  /** Group that owns the pod's volumes (securityContext.fsGroup). */
  fsGroup?: number;
  /** Pod-level resources: the pod cgroup's limits instead of the sum of its containers'. */
  resources?: z.output<typeof resources>;
  /** The host's PID / IPC namespace (the CRI's NamespaceMode NODE). */
  hostPID?: boolean;
  hostIPC?: boolean;
  /** metadata.uid as given (the CRI's sandbox metadata); made at create otherwise. */
  uid?: string;
  /** resolv.conf's content instead of the host's (the CRI's DNSConfig). */
  dns?: PodDns;
  /**
   * dnsPolicy None, or a dnsConfig: resolv.conf is the host's ("host", loopback servers dropped
   * off hostNetwork) or nothing ("none"), with these appended as the kubelet appends them.
   */
  resolv?: PodResolv;
  /** Host ports to publish, given as such (the CRI's port mappings) instead of from containers. */
  portMappings?: HostPortMapping[];
  /** The pod cgroup's path below the cgroup root, as given (the CRI's cgroup_parent). */
  cgroupParent?: string;
}

/**
 * One published host port. The same shape as net/cni.ts's PortMapping (CNI's `portMappings`
 * capability), which the workloads hand it to; spec keeps its own so it needs nothing from net.
 */
export interface HostPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

export interface PodDns {
  servers: string[];
  searches: string[];
  options: string[];
}

/** A Pod's dnsPolicy and dnsConfig, for the resolv.conf made at create. */
export interface PodResolv {
  base: "host" | "none";
  nameservers: string[];
  searches: string[];
  options: { name: string; value?: string }[];
}

/** One file of a configMap/secret/downwardAPI/projected volume. */
export interface VolumeFile {
  /** Relative path inside the volume. */
  path: string;
  /** Content, base64 (binary-safe) … */
  data?: string;
  /** … or a downward-API field resolved at create (metadata.uid). */
  fieldRef?: string;
  mode: number;
}

export interface LoadedPod {
  spec: PodSpec;
  source: SpecSource;
  warnings: Warning[];
}

/** A `volumes[].image`: the reference, its pull policy, and its field path in the pod. */
export interface ImageVolume {
  reference: string;
  pullPolicy?: "Always" | "IfNotPresent" | "Never";
  path: PathSegment[];
}
