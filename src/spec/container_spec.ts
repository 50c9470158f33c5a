/** The container spec rkl runs, its mounts, and where it came from. */
import type { SourceLocation } from "../errors.ts";
import { type PathSegment, type SourceDoc, specErrorAt, type Warning } from "./source.ts";
import type {
  ContainerPortSpec,
  LifecycleSpec,
  ProbeSpec,
  ResourcesSpec,
  SecurityContextSpec,
} from "./schema.ts";

/** A compose healthcheck as the container runs it (workloads/health.ts). */
export interface ComposeHealthcheck {
  /** argv run in the container. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  /** How often to check during the start period (compose `start_interval`, default 5 s). */
  startIntervalMs: number;
}

/** A container as rkl runs it, with paths resolved against the YAML file. */
export interface DeviceSpec {
  /** Where the node is made in the container. */
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode: number;
  /** Device cgroup access: some of r, w, m. */
  access: string;
}

export interface ContainerSpec {
  name: string;
  /** Absolute path of a bundle directory, or an image reference (never starts with '/'). */
  image: string;
  /** For a reference: when to pull (default: Always for `:latest`, else IfNotPresent). */
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  command?: string[];
  args?: string[];
  env: EnvEntry[];
  /**
   * From a Kubernetes file, with the kubelet's semantics: `$(VAR)` in command
   * and args is expanded from env, and no CPU request means cpu.shares 2.
   * Compose services have docker's (neither).
   */
  kubernetes?: boolean;
  workingDir?: string;
  ports: ContainerPortSpec[];
  resources: ResourcesSpec;
  /** Mounts with their host source resolved (bind mounts only for single containers). */
  mounts: ResolvedMount[];
  securityContext: SecurityContextSpec;
  tty: boolean;
  /** Host device nodes made in the container and allowed by its device cgroup (the CRI's devices). */
  devices?: DeviceSpec[];
  /** Keep the process's stdin open for attach (Kubernetes `stdin`); `stdinOnce` closes it after the first attach. */
  stdin?: boolean;
  stdinOnce?: boolean;
  labels: Record<string, string>;
  /** Hostname inside the container (default: the container name). */
  hostname?: string;
  /** A user and/or group given by name (compose `user: app:staff`), resolved in the rootfs at create. */
  /** `path`: where the names are, relative to the request's root (for errors; see FieldError). */
  userNames?: { user?: string; group?: string; path?: PathSegment[] };
  /** Signal that asks the process to stop (compose `stop_signal`; default SIGTERM). */
  stopSignal?: string;
  /**
   * Host path of a static init (catatonit) bind-mounted read-only at
   * /sbin/docker-init and run as PID 1 in front of the process, as docker's
   * `--init` does with tini (compose `init: true`).
   */
  init?: string;
  /** Size of /dev/shm in bytes (compose `shm_size`; default 64 MiB). */
  shmSize?: number;
  /** linux.resources.pids.limit (docker `--pids-limit`); 0 for none; default generate.ts's. */
  pidsLimit?: number;
  /** Namespaced sysctls the runtime sets in the container. */
  sysctls?: Record<string, string>;
  /** rlimits beyond rkl's NOFILE default (compose `ulimits`). */
  ulimits?: { type: string; soft: number; hard: number }[];
  /** A native sidecar: an init container with restartPolicy Always, started and left running. */
  sidecar?: boolean;
  /** postStart and preStop hooks, run around start and before the stop signal. */
  lifecycle?: LifecycleSpec;
  /** Commands run in the container after start and before the stop signal (compose hooks). */
  execHooks?: { postStart?: ExecHook[]; preStop?: ExecHook[] };
  /** Extra groups of the process (pod securityContext supplementalGroups and fsGroup). */
  supplementalGroups?: number[];
  /** A compose healthcheck, run for as long as the container runs (workloads/health.ts). */
  healthcheck?: ComposeHealthcheck;
  /** Kubernetes probes, run by `rkl daemon` for static pods. */
  probes?: { liveness?: ProbeSpec; readiness?: ProbeSpec; startup?: ProbeSpec };
  /** Paths masked and made read-only instead of rkl's defaults (the CRI gives its own). */
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

/**
 * One environment variable: a literal value (with `$(VAR)` references when
 * `expand`), or a downward-API field known only at create (the pod's uid, IP).
 */
export interface EnvEntry {
  name: string;
  value?: string;
  fieldRef?: string;
  expand?: boolean;
}

export interface ResolvedMount {
  /** Absolute host path; for emptyDir, empty until the workload creates it. */
  source: string;
  destination: string;
  readOnly: boolean;
  /**
   * emptyDir and files (configMap, secret, downwardAPI, projected) live in the
   * pod's volumes dir; a claim is a named volume that outlives the pod.
   */
  kind: "hostPath" | "emptyDir" | "files" | "claim" | "tmpfs" | "image";
  /** tmpfs: the mount(2) options (compose `tmpfs`, checked against a fixed set when loaded). */
  tmpfsOptions?: string[];
  /** Volume name (emptyDir, files: a dir per pod), or the claim's name. */
  volume?: string;
  /**
   * A hostPath that is the docker-style named volume of this name (`run -v
   * NAME:/dir`): `source` is its data dir, which the create makes when missing.
   */
  namedVolume?: string;
  /**
   * A named volume's mount (its `source` a `ROOT/volumes/NAME/_data`) that,
   * empty when the container is made, gets the image's files at
   * `destination` first (docker's copy; compose's `nocopy` turns it off).
   */
  populate?: boolean;
  /** The named volume is anonymous (`-v /dir`): made for this container, gone with `rm -v`. */
  anonymous?: boolean;
  /**
   * Path below `source` to mount instead of the whole volume; resolved at
   * every create and restart without following symlinks (sys/subpath.ts).
   */
  subPath?: string;
  /** Kubernetes hostPath.type, checked (and for *OrCreate applied) at create. */
  hostPathType?: HostPathType;
  /**
   * A missing source becomes a directory; an existing one of any type is used (compose's
   * short binds, a hostPath with no type, CRI mounts: what docker and containerd do).
   */
  createMissingDir?: boolean;
  /**
   * A hostPath checked at create (prepareHostPaths): the field path of its
   * source, relative to the request's root, that an error found then names.
   */
  path?: PathSegment[];
  /** Mount propagation (the CRI's): rprivate unless given. */
  propagation?: "rprivate" | "rslave" | "rshared";
}

/** Kubernetes hostPath types; "" checks nothing before the mount. */
export const HOST_PATH_TYPES = [
  "",
  "DirectoryOrCreate",
  "Directory",
  "FileOrCreate",
  "File",
  "Socket",
  "CharDevice",
  "BlockDevice",
] as const;
export type HostPathType = typeof HOST_PATH_TYPES[number];

/** Where a workload came from: the file, and a way to locate any field in it. */
export interface SpecSource {
  file: string;
  at(path: readonly PathSegment[]): SourceLocation & { path: string };
}

export interface LoadedContainer {
  spec: ContainerSpec;
  source: SpecSource;
  warnings: Warning[];
}

export function sourceOf(src: SourceDoc, prefix: readonly PathSegment[] = []): SpecSource {
  return {
    file: src.file,
    at(path) {
      const err = specErrorAt(src, path, "", { pathPrefix: prefix });
      return { file: err.file, line: err.line, column: err.column, path: err.path };
    },
  };
}

/**
 * A command a hook runs in the container, with what differs from the
 * container's process (compose `post_start`/`pre_stop`: user, privileged,
 * working_dir, environment).
 */
export interface ExecHook {
  command: string[];
  user?: { uid: number; gid: number };
  /** Every capability the runtime can give, as `docker exec --privileged`. */
  privileged?: boolean;
  cwd?: string;
  /** KEY=VALUE over the container's environment. */
  env?: string[];
}
