/**
 * The single-container file (`rkl container run FILE`), rk8s's format: a
 * Kubernetes Container at the top level, plus optional `volumes` and
 * `restartPolicy`.
 */
import { lazy } from "../base/lazy.ts";
import * as z from "./zod.ts";
import { SpecError } from "../errors.ts";
import {
  parseYamlDocuments,
  type PathSegment,
  type SourceDoc,
  specErrorAt,
  validate,
} from "./source.ts";
import {
  containerFields,
  type ContainerPortSpec,
  hostPathVolume,
  labelMap,
  type LifecycleSpec,
  type ProbeSpec,
  type ResourcesSpec,
} from "./schema.ts";
import { dirnameOf, isBundlePath, joinPath } from "./paths.ts";
import { RESTART_LABEL } from "./names.ts";
import {
  type ContainerSpec,
  type EnvEntry,
  type LoadedContainer,
  type ResolvedMount,
  sourceOf,
} from "./container_spec.ts";
import { checkUniqueVolumes, checkVolumeSources, resolveMounts } from "./volume_mounts.ts";

export {
  type ContainerSpec,
  type DeviceSpec,
  type EnvEntry,
  HOST_PATH_TYPES,
  type HostPathType,
  type LoadedContainer,
  type ResolvedMount,
  sourceOf,
  type SpecSource,
} from "./container_spec.ts";
export { checkUniqueVolumes, checkVolumeSources, resolveMounts } from "./volume_mounts.ts";

// Schemas are built on first use (lazy): a file without this kind never pays for building them.
const singleContainerSchema = lazy(() =>
  z.strictObject({
    ...containerFields,
    volumes: z.array(hostPathVolume).optional(),
    restartPolicy: z.enum(["Always", "OnFailure", "Never"]).optional(),
    labels: labelMap.optional(),
  })
);

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
  const { data, warnings } = validate(src, singleContainerSchema());
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
