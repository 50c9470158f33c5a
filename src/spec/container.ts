/**
 * The single-container file (`rkl container run FILE`), rk8s's format: a
 * Kubernetes Container at the top level, plus optional `volumes` and
 * `restartPolicy`.
 */
import { z } from "zod";
import { type SourceLocation, SpecError } from "../errors.ts";
import {
  parseYamlDocuments,
  type PathSegment,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "./source.ts";
import {
  containerFields,
  type ContainerPortSpec,
  hostPathVolume,
  labelMap,
  type LifecycleSpec,
  type ProbeSpec,
  type ResourcesSpec,
  type SecurityContextSpec,
  VOLUME_SOURCES,
  type VolumeMountSpec,
  type VolumeSpec,
} from "./schema.ts";
import { dirnameOf, isBundlePath, joinPath } from "./paths.ts";
import { RESTART_LABEL } from "./names.ts";
import type { ComposeHealthcheck } from "./compose.ts";

const singleContainer = z.strictObject({
  ...containerFields,
  volumes: z.array(hostPathVolume).optional(),
  restartPolicy: z.enum(["Always", "OnFailure", "Never"]).optional(),
  labels: labelMap.optional(),
});

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
 * Resolves a container's volumeMounts against the declared volumes. Shared
 * by single containers and pods.
 */
export function resolveMounts(
  src: SourceDoc,
  mounts: VolumeMountSpec[],
  volumes: VolumeSpec[],
  options: {
    baseDir: string;
    pathPrefix: readonly PathSegment[];
    volumesPath: readonly PathSegment[];
    /** Pods take every volume source; a single container hostPath only. */
    pod?: boolean;
  },
): ResolvedMount[] {
  const out: ResolvedMount[] = [];
  const seen = new Set<string>();
  mounts.forEach((m, i) => {
    const at = [...options.pathPrefix, "volumeMounts", i];
    if (seen.has(m.mountPath)) {
      throw specErrorAt(
        src,
        [...at, "mountPath"],
        `${JSON.stringify(m.mountPath)} is mounted twice`,
      );
    }
    seen.add(m.mountPath);
    const readOnly = m.readOnly ?? false;
    let subPath: string | undefined;
    if (m.subPath !== undefined && m.subPath !== "") {
      const parts = m.subPath.split("/");
      if (m.subPath.startsWith("/") || parts.includes("..") || m.subPath.includes("\0")) {
        throw specErrorAt(src, [...at, "subPath"], "must be a relative path without '..'");
      }
      subPath = parts.filter((p) => p !== "" && p !== ".").join("/") || undefined;
    }
    const sub = subPath ? { subPath } : {};
    if (m.hostPath !== undefined) {
      out.push({
        source: joinPath(options.baseDir, m.hostPath),
        destination: m.mountPath,
        readOnly,
        kind: "hostPath",
        path: [...at, "hostPath"],
        ...sub,
      });
      return;
    }
    if (m.name === undefined) {
      throw specErrorAt(src, at, "a volume mount needs 'name' (a declared volume) or 'hostPath'");
    }
    const vol = volumes.find((v) => v.name === m.name);
    if (!vol) {
      throw specErrorAt(
        src,
        [...at, "name"],
        `volume ${JSON.stringify(m.name)} is not declared in ${
          options.volumesPath.map(String).join(".") || "volumes"
        }`,
      );
    }
    if (vol.hostPath) {
      const source = joinPath(options.baseDir, vol.hostPath.path);
      const vi = volumes.indexOf(vol);
      const type = vol.hostPath.type ?? "";
      if (!(HOST_PATH_TYPES as readonly string[]).includes(type)) {
        throw specErrorAt(
          src,
          [...options.volumesPath, vi, "hostPath", "type"],
          `hostPath type ${JSON.stringify(type)} must be one of ${
            HOST_PATH_TYPES.filter(Boolean).join(", ")
          } or ""`,
        );
      }
      out.push({
        source,
        destination: m.mountPath,
        readOnly,
        kind: "hostPath",
        hostPathType: type as HostPathType,
        // No type: the kubelet checks nothing and containerd's CRI (like docker's -v) makes a
        // missing source a directory (MkdirAll, 0755); the checked types still refuse.
        ...(type === "" ? { createMissingDir: true } : {}),
        path: [...options.volumesPath, vi, "hostPath", "path"],
        ...sub,
      });
    } else if (vol.persistentVolumeClaim) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: readOnly || (vol.persistentVolumeClaim.readOnly ?? false),
        kind: "claim",
        volume: vol.persistentVolumeClaim.claimName,
        ...sub,
      });
    } else if (vol.image) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      // Read-only and noexec always, as the kubelet mounts an image volume.
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: true,
        kind: "image",
        volume: vol.name,
        ...sub,
      });
    } else if (vol.configMap || vol.secret || vol.downwardAPI || vol.projected) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      // Read-only always, as the kubelet mounts them.
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: true,
        kind: "files",
        volume: vol.name,
        ...sub,
      });
    } else {
      // A volume with no source is an emptyDir, as the API server defaults it.
      if (!vol.emptyDir && !options.pod) {
        throw specErrorAt(
          src,
          [...options.volumesPath, volumes.indexOf(vol)],
          "volume needs 'hostPath' (other volume types need a pod)",
        );
      }
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly,
        kind: "emptyDir",
        volume: vol.name,
        ...sub,
      });
    }
  });
  return out;
}

function needsPod(src: SourceDoc, at: readonly PathSegment[], i: number): SpecError {
  return specErrorAt(
    src,
    [...at, i],
    "configMap, secret, downwardAPI, projected, persistentVolumeClaim and image volumes need a pod (rkl pod run); a single container takes hostPath",
  );
}

export function checkUniqueVolumes(
  src: SourceDoc,
  volumes: VolumeSpec[],
  at: readonly PathSegment[],
): void {
  const names = new Set<string>();
  volumes.forEach((v, i) => {
    if (names.has(v.name)) {
      throw specErrorAt(
        src,
        [...at, i, "name"],
        `volume ${JSON.stringify(v.name)} is declared twice`,
      );
    }
    names.add(v.name);
  });
}

/**
 * Refuses volume types rkl cannot make (nfs, csi, …): validate() only warns
 * about unknown keys, and a volume left without its source would silently
 * become an emptyDir.
 */
export function checkVolumeSources(src: SourceDoc, at: readonly PathSegment[]): void {
  let list: unknown = src.value;
  for (const seg of at) list = (list as Record<string | number, unknown> | undefined)?.[seg];
  if (!Array.isArray(list)) return;
  list.forEach((v, i) => {
    if (v === null || typeof v !== "object") return;
    for (const k of Object.keys(v)) {
      if (k === "name" || VOLUME_SOURCES.includes(k)) continue;
      throw specErrorAt(
        src,
        [...at, i, k],
        `volume type ${JSON.stringify(k)} is not supported on a single host (use ${
          VOLUME_SOURCES.join(", ")
        })`,
        { key: true },
      );
    }
  });
}

/** Checks shared by containers in any workload: ports, resources. */
export function checkContainer(
  src: SourceDoc,
  c: { ports?: ContainerPortSpec[]; resources?: ResourcesSpec },
  at: readonly PathSegment[],
): void {
  const seen = new Set<string>();
  (c.ports ?? []).forEach((p, i) => {
    const proto = (p.protocol || "TCP").toUpperCase();
    const key = `${p.containerPort}/${proto}`;
    if (seen.has(key)) {
      throw specErrorAt(src, [...at, "ports", i, "containerPort"], `port ${key} is listed twice`);
    }
    seen.add(key);
  });
}

/** The validated Kubernetes Container fields → the spec rkl runs. */
export function toContainerSpec(
  c: {
    name: string;
    image: string;
    imagePullPolicy?: ContainerSpec["imagePullPolicy"];
    command?: string[];
    args?: string[];
    env?: { name: string; value?: string }[];
    workingDir?: string;
    ports?: ContainerSpec["ports"];
    resources?: ContainerSpec["resources"];
    securityContext?: ContainerSpec["securityContext"];
    tty?: boolean;
    stdin?: boolean;
    stdinOnce?: boolean;
    livenessProbe?: ProbeSpec;
    readinessProbe?: ProbeSpec;
    startupProbe?: ProbeSpec;
    lifecycle?: LifecycleSpec;
  },
  options: {
    baseDir: string;
    mounts: ResolvedMount[];
    labels?: Record<string, string>;
    securityContext?: ContainerSpec["securityContext"];
    /** The env already resolved (pods: envFrom and valueFrom). */
    env?: EnvEntry[];
  },
): ContainerSpec {
  return {
    name: c.name,
    image: isBundlePath(c.image) ? joinPath(options.baseDir, c.image) : c.image,
    imagePullPolicy: c.imagePullPolicy,
    command: c.command,
    args: c.args,
    env: options.env ??
      (c.env ?? []).map((e) => ({ name: e.name, value: e.value ?? "", expand: true })),
    kubernetes: true,
    workingDir: c.workingDir,
    ports: c.ports ?? [],
    resources: c.resources ?? {},
    mounts: options.mounts,
    securityContext: options.securityContext ?? c.securityContext ?? {},
    tty: c.tty ?? false,
    ...(c.stdin ? { stdin: true, stdinOnce: c.stdinOnce ?? false } : {}),
    labels: options.labels ?? {},
    ...(c.lifecycle ? { lifecycle: c.lifecycle } : {}),
    ...(c.lifecycle?.stopSignal ? { stopSignal: c.lifecycle.stopSignal } : {}),
    probes: c.livenessProbe || c.readinessProbe || c.startupProbe
      ? { liveness: c.livenessProbe, readiness: c.readinessProbe, startup: c.startupProbe }
      : undefined,
  };
}

/** Loads a single-container YAML file. `text` is the file's content, `file` its path. */
export function loadContainer(
  text: string,
  file: string,
  options: { baseDir?: string } = {},
): LoadedContainer {
  const docs = parseYamlDocuments(text, file);
  if (docs.length > 1) throw specErrorAt(docs[1], [], "a container file holds one YAML document");
  const src = docs[0];
  if (src.value === null || typeof src.value !== "object" || Array.isArray(src.value)) {
    throw specErrorAt(src, [], "Cannot load container: the document must be a mapping");
  }
  const { data, warnings } = validate(src, singleContainer);
  const baseDir = options.baseDir ?? dirnameOf(file);
  const volumes = data.volumes ?? [];
  checkUniqueVolumes(src, volumes, ["volumes"]);
  checkContainer(src, data, []);
  checkVolumeSources(src, ["volumes"]);
  const fromIdx = (data.env ?? []).findIndex((e) => e.valueFrom !== undefined);
  if (fromIdx >= 0 || data.envFrom) {
    throw specErrorAt(
      src,
      data.envFrom ? ["envFrom"] : ["env", fromIdx, "valueFrom"],
      "envFrom and valueFrom need a pod (rkl pod run) with its ConfigMaps and Secrets",
    );
  }
  const mounts = resolveMounts(src, data.volumeMounts ?? [], volumes, {
    baseDir,
    pathPrefix: [],
    volumesPath: ["volumes"],
  });
  const emptyDir = mounts.findIndex((m) => m.kind === "emptyDir");
  if (emptyDir >= 0) {
    // A lone container has nowhere to keep an emptyDir apart from its own rootfs.
    throw specErrorAt(
      src,
      ["volumeMounts", emptyDir],
      "emptyDir volumes need a pod; use hostPath here",
    );
  }
  // restartPolicy is served by `rkl daemon`, which restarts labelled containers
  // (the label compose's `restart` uses too).
  const labels = {
    ...data.labels,
    ...(data.restartPolicy ? { [RESTART_LABEL]: data.restartPolicy } : {}),
  };
  const spec = toContainerSpec(data, { baseDir, mounts, labels });
  return { spec, source: sourceOf(src), warnings };
}

export { SpecError };
