/** The normalised project model a compose load returns, and what it is given. */
import type { SourceLocation } from "../../errors.ts";
import type { PathSegment, SourceDoc } from "../source.ts";
import type { Warning } from "../source.ts";
import type { ComposeHealthcheck, ExecHook } from "../container_spec.ts";
export type { ComposeHealthcheck };
import type { Located } from "./located.ts";
import type { RawProject, RawService } from "./schema.ts";

export interface ComposePort {
  hostIP?: string;
  hostPort: number;
  /** `"6005-6015:80"`: the first port of hostPort..hostPortEnd free when the container is made. */
  hostPortEnd?: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

export interface ComposeMount {
  kind: "bind" | "volume" | "anonymous" | "config" | "secret" | "tmpfs";
  /** Absolute host path (bind, config, secret file) or volume name. */
  source: string;
  target: string;
  readOnly: boolean;
  /** A bind source that is missing is made as a directory (short syntax, `create_host_path`). */
  createHostPath?: boolean;
  /** Where the mount is written, for errors found when the service is made. */
  loc?: SourceLocation;
  /** tmpfs mount options (size=BYTES, mode=OCTAL, uid=, gid=, and flags such as noexec). */
  options?: string[];
  /** A volume's `volume.nocopy`: the image's files are not copied into it when empty. */
  nocopy?: boolean;
  /** A config's or secret's own copy: owner and mode (`uid`, `gid`, `mode`). */
  owner?: { uid: number; gid: number; mode: number };
}

export type DependencyCondition =
  | "service_started"
  | "service_healthy"
  | "service_completed_successfully";

export interface ComposeService {
  name: string;
  /** A bundle directory (absolute) or an image reference. */
  image: string;
  pullPolicy?: "Always" | "IfNotPresent" | "Never";
  entrypoint?: string[];
  command?: string[];
  environment: Record<string, string>;
  ports: ComposePort[];
  mounts: ComposeMount[];
  /** `ipv4Address`, `macAddress`: fixed ones (CNI host-local `ips`, bridge `mac`). */
  networks: { name: string; aliases: string[]; ipv4Address?: string; macAddress?: string }[];
  /** `restart: true`: restarted by `restart` of the dependency, recreated with it by `up`. */
  dependsOn: {
    service: string;
    condition: DependencyCondition;
    required: boolean;
    restart?: boolean;
  }[];
  healthcheck?: ComposeHealthcheck;
  restart: "no" | "always" | "on-failure" | "unless-stopped";
  containerName?: string;
  hostname?: string;
  workingDir?: string;
  /** Numbers, or names that the bundle's /etc/passwd and /etc/group resolve at create. */
  user?: { uid?: number; gid?: number; name?: string; group?: string; loc?: SourceLocation };
  /** Kubernetes quantities, for the container spec. */
  cpus?: string;
  memory?: string;
  /** `pids_limit`, `deploy.resources.limits.pids`: 0 for none (docker's -1). */
  pidsLimit?: number;
  replicas: number;
  labels: Record<string, string>;
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  readOnly: boolean;
  stopGraceSec: number;
  tty: boolean;
  /** `stdin_open`: the process's stdin stays open (docker's -i), for attach. */
  stdinOpen?: boolean;
  /** `links`: SERVICE → extra names it resolves by in this service's /etc/hosts. */
  links: { service: string; alias: string }[];
  /** `security_opt` that rkl applies (docker's `--security-opt`). */
  securityOpt: ComposeSecurityOpt;
  /** `post_start`, `pre_stop`: commands run in the container after start, before the stop signal. */
  hooks: { postStart?: ExecHook[]; preStop?: ExecHook[] };
  /** `init: true`: catatonit runs as PID 1 in front of the process (docker's `--init`). */
  init: boolean;
  /**
   * `network_mode`: the host's network namespace, loopback only, or another
   * service's (its first replica's) or rkl container's, named by `networkTarget`.
   */
  networkMode?: "host" | "none" | "service" | "container";
  networkTarget?: string;
  /** `stop_signal`, as SIGNAME. */
  stopSignal?: string;
  /** `shm_size` in bytes. */
  shmSize?: number;
  sysctls: Record<string, string>;
  /** `ulimits`, as RLIMIT_* with soft and hard values. */
  ulimits: { type: string; soft: number; hard: number }[];
}

export interface ComposeSecurityOpt {
  /** `no-new-privileges[:true]`. */
  noNewPrivileges?: boolean;
  /** `seccomp=unconfined`, `seccomp=builtin`, or `seccomp=FILE` (absolute, a Localhost profile). */
  seccomp?: { type: "Unconfined" | "RuntimeDefault" } | { type: "Localhost"; file: string };
  /** `systempaths=unconfined`: no masked or read-only /proc and /sys paths. */
  systemPathsUnconfined?: boolean;
}

export interface ComposeProject {
  name: string;
  /** Directory relative paths resolve against (the first file's). */
  dir: string;
  files: string[];
  /** Enabled services, in dependency order (dependencies first). */
  services: ComposeService[];
  networks: { name: string; external: boolean; subnet?: string }[];
  /**
   * `device`: the local driver's bind (`driver_opts` type none, o bind): this host directory.
   * `tmpfs`: the local driver's tmpfs (type tmpfs, its `o`): each mount of it is that tmpfs.
   */
  volumes: {
    name: string;
    external: boolean;
    /**
     * The volume's own name, not the project's `PROJECT_KEY`: its `name:`, or an external
     * volume's key. An external volume must exist (`rkl volume create`); up never makes it
     * and `down -v` never removes it.
     */
    volumeName?: string;
    /** Where the volume is declared (external ones, for the error when it is missing). */
    loc?: SourceLocation;
    device?: string;
    tmpfs?: { options: string[]; readOnly: boolean };
  }[];
  configs: { name: string; file?: string; content?: string }[];
  secrets: { name: string; file?: string; content?: string }[];
}

export interface ComposeFile {
  file: string;
  text: string;
  /** Directory the file's `extends.file` paths resolve against (absolute); default `dir`. */
  dir?: string;
}

export interface LoadComposeOptions {
  /** Variables for interpolation (the process environment over `.env`). */
  env: Record<string, string | undefined>;
  /** `-p`, else the top-level `name`, else the directory name. */
  projectName?: string;
  /** Directory of the first file, absolute. */
  dir: string;
  profiles?: string[];
  /**
   * Reads an `env_file` (absolute path); undefined when it does not exist. It
   * throws when the file cannot be read (not a regular file, too big): the
   * error becomes a SpecError at the `env_file` line.
   */
  readFile?: (path: string) => string | undefined;
}

/** Paths (from the document root) of the values a file tags `!reset` or `!override`. */
export interface Tags {
  reset: PathSegment[][];
  override: PathSegment[][];
}

/** One compose file parsed, interpolated, its tags collected and its schema checked. */
export interface Prepared {
  src: SourceDoc;
  raw: RawProject;
  tags: Tags;
  dir: string;
}

/** What every service of a project is checked against. */
export interface ServiceContext {
  L: Located;
  options: LoadComposeOptions;
  warnings: Warning[];
  /** Every merged service, enabled or not. */
  services: Record<string, RawService>;
  /** Names the top level declares. */
  declared: {
    networks: Set<string>;
    volumes: Set<string>;
    configs: Set<string>;
    secrets: Set<string>;
  };
  /** Services the profiles enable. */
  enabledNames: Set<string>;
}
