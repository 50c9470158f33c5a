/** The parts of the OCI runtime-spec (config.json, v1.0.2) that rkl writes. */
import type { SeccompProfile } from "./seccomp.ts";

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciNamespace {
  type: "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup";
  path?: string;
}

export interface OciResources {
  devices?: { allow: boolean; access?: string; type?: string; major?: number; minor?: number }[];
  cpu?: { quota?: number; period?: number; shares?: number };
  memory?: { limit?: number };
  pids?: { limit: number };
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits: { type: string; hard: number; soft: number }[];
  noNewPrivileges?: boolean;
}

export interface OciConfig {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: {
    resources: OciResources;
    cgroupsPath: string;
    namespaces: OciNamespace[];
    seccomp?: SeccompProfile;
    sysctl?: Record<string, string>;
    rootfsPropagation?: "shared" | "slave" | "private" | "unbindable";
    devices?: {
      path: string;
      type: string;
      major: number;
      minor: number;
      fileMode?: number;
      uid?: number;
      gid?: number;
    }[];
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
}

/** What the runtime's `state` command prints. */
export interface OciState {
  ociVersion?: string;
  id: string;
  status: "creating" | "created" | "running" | "stopped" | "paused";
  pid?: number;
  bundle?: string;
}
