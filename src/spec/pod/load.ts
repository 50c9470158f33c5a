/** Loading Pod manifests: one document into a LoadedPod (podFromDoc), a file of them (loadPods). */
import { nodeCapacity } from "../pod_limits.ts";
export { nodeCapacity };
import type * as z from "../zod.ts";
import {
  checkContainer,
  checkUniqueVolumes,
  checkVolumeSources,
  type LoadedContainer,
  resolveMounts,
  sourceOf,
  toContainerSpec,
} from "../container.ts";
import type { NodeCapacity } from "../downward.ts";
import { addObject, emptyObjects, type KubeObjects, OBJECT_KINDS, SERVER_SET } from "../objects.ts";
import { dirnameOf, joinPath } from "../paths.ts";
import {
  parseYamlDocuments,
  type PathSegment,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "../source.ts";
import { SpecError } from "../../errors.ts";
import { podResolv } from "./dns.ts";
import { type LoadCtx, resolveEnv } from "./env.ts";
import { refuseAtCreate, refuseContainerFields, refusePodFields } from "./refuse.ts";
import { type podContainer, podSchema } from "./schema.ts";
import type { ImageVolume, LoadedPod, VolumeFile } from "./types.ts";
import { memoryDirs, volumeFiles } from "./volumes.ts";
import { type InitRestart, readRestartRules } from "./restart_rules.ts";

/** One Pod document (or a workload's template made into one, kinds.ts) → a loaded pod. */
export function podFromDoc(
  src: SourceDoc,
  baseDir: string,
  objects: KubeObjects,
  node: NodeCapacity,
): LoadedPod {
  if (src.value === null || typeof src.value !== "object" || Array.isArray(src.value)) {
    throw specErrorAt(src, [], "Cannot load pod: the document must be a mapping");
  }
  refuseAtCreate(src);
  // Fields the API server sets, which `kubectl get -o yaml` and `podman generate kube`
  // write out: read-only, so ignored without a word, as the kubelet does.
  const { data, warnings } = validate(src, podSchema, {
    silent: (key, path) =>
      (path.length === 0 && key === "status") ||
      (path.length === 1 && path[0] === "metadata" && SERVER_SET.has(key)),
  });
  const s = data.spec;
  refusePodFields(src, s, warnings);
  const ctx: LoadCtx = { src, objects, node };
  checkVolumeSources(src, ["spec", "volumes"]);
  const volumes = s.volumes ?? [];
  checkUniqueVolumes(src, volumes, ["spec", "volumes"]);
  const all = [...(s.initContainers ?? []), ...s.containers];
  const claims = new Set<string>();
  const fileVolumes: Record<string, VolumeFile[]> = {};
  const imageVolumes: Record<string, ImageVolume> = {};
  volumes.forEach((v, i) => {
    if (v.configMap || v.secret || v.downwardAPI || v.projected) {
      fileVolumes[v.name] = volumeFiles(ctx, v, i, all);
    }
    if (v.image) {
      imageVolumes[v.name] = { ...v.image, path: ["spec", "volumes", i, "image", "reference"] };
    }
  });
  const groups = [
    ...(s.securityContext?.supplementalGroups ?? []),
    ...(s.securityContext?.fsGroup !== undefined ? [s.securityContext.fsGroup] : []),
  ];
  const sysctls = s.securityContext?.sysctls
    ? Object.fromEntries(s.securityContext.sysctls.map((x) => [x.name, x.value]))
    : undefined;
  const names = new Map<string, string>();
  const initRestarts: Record<string, InitRestart> = {};
  const emptyDirs = new Set<string>();
  const load = (kind: "containers" | "initContainers", list: z.output<typeof podContainer>[]) =>
    list.map((c, i): LoadedContainer => {
      const at = ["spec", kind, i];
      const prev = names.get(c.name);
      if (prev) {
        throw specErrorAt(
          src,
          [...at, "name"],
          `container name ${JSON.stringify(c.name)} is already used in spec.${prev}`,
        );
      }
      names.set(c.name, `${kind}[${i}]`);
      const initRestart = containerRestart(src, c, at, kind);
      if (initRestart) initRestarts[c.name] = initRestart;
      refuseContainerFields(src, c, at);
      checkContainer(src, c, at);
      const mounts = resolveMounts(src, c.volumeMounts ?? [], volumes, {
        baseDir,
        pathPrefix: at,
        volumesPath: ["spec", "volumes"],
        pod: true,
      });
      for (const m of mounts) {
        if (m.kind === "emptyDir") emptyDirs.add(m.volume!);
        if (m.kind === "claim") claims.add(m.volume!);
      }
      const env = resolveEnv(ctx, c, at, all, warnings);
      const sc = { ...c.securityContext };
      sc.runAsUser ??= s.securityContext?.runAsUser;
      sc.runAsGroup ??= s.securityContext?.runAsGroup;
      sc.runAsNonRoot ??= s.securityContext?.runAsNonRoot;
      sc.seccompProfile ??= s.securityContext?.seccompProfile;
      const spec = toContainerSpec(c, { baseDir, mounts, securityContext: sc, env });
      if (c.restartPolicy === "Always") spec.sidecar = true;
      if (groups.length > 0) spec.supplementalGroups = [...new Set(groups)];
      if (sysctls) spec.sysctls = { ...sysctls, ...spec.sysctls };
      return { spec, source: sourceOf(src, at), warnings: [] };
    });
  const initContainers = load("initContainers", s.initContainers ?? []);
  const containers = load("containers", s.containers);
  if (s.hostNetwork) {
    const i = containers.findIndex((c) =>
      c.spec.ports.some((p) => p.hostPort && p.hostPort !== p.containerPort)
    );
    if (i >= 0) {
      throw specErrorAt(
        src,
        ["spec", "containers", i, "ports"],
        "with hostNetwork, hostPort must equal containerPort",
      );
    }
  }
  const bundleLabel = data.metadata.labels?.bundle;
  const hostPorts = new Map<string, string>();
  containers.forEach((c, i) =>
    c.spec.ports.forEach((p, j) => {
      if (!p.hostPort) return;
      const key = `${p.hostPort}/${(p.protocol || "TCP").toUpperCase()}`;
      if (hostPorts.has(key)) {
        throw specErrorAt(
          src,
          ["spec", "containers", i, "ports", j, "hostPort"],
          `hostPort ${key} is already published by ${hostPorts.get(key)}`,
        );
      }
      hostPorts.set(key, `spec.containers[${i}]`);
    })
  );
  return {
    spec: {
      name: data.metadata.name,
      namespace: data.metadata.namespace ?? "default",
      labels: data.metadata.labels ?? {},
      annotations: data.metadata.annotations ?? {},
      pauseBundle: bundleLabel ? joinPath(baseDir, bundleLabel) : undefined,
      containers,
      initContainers,
      restartPolicy: s.restartPolicy ?? "Always",
      hostNetwork: s.hostNetwork ?? false,
      ...(s.hostPID ? { hostPID: true } : {}),
      ...(s.hostIPC ? { hostIPC: true } : {}),
      shareProcessNamespace: s.shareProcessNamespace ?? false,
      hostname: s.hostnameOverride ?? s.hostname ?? data.metadata.name,
      subdomain: s.subdomain,
      terminationGracePeriodSeconds: s.terminationGracePeriodSeconds ?? 30,
      emptyDirs: [...emptyDirs],
      memoryDirs: memoryDirs(src, volumes, emptyDirs, warnings),
      fileVolumes,
      claims: [...claims],
      ...(Object.keys(imageVolumes).length > 0 ? { imageVolumes } : {}),
      ...(Object.keys(initRestarts).length > 0 ? { initRestarts } : {}),
      hostAliases: s.hostAliases ?? [],
      fsGroup: s.securityContext?.fsGroup,
      resources: s.resources,
      resolv: podResolv(src, s, warnings),
    },
    source: sourceOf(src),
    warnings,
  };
}

/**
 * A container's own restartPolicy and restartPolicyRules (Kubernetes 1.34). On
 * an init container: Always makes a sidecar; Never and OnFailure, with or
 * without rules, say whether a failed run is retried (returned). On an app
 * container they are refused: app containers follow spec.restartPolicy.
 */
function containerRestart(
  src: SourceDoc,
  c: z.output<typeof podContainer>,
  at: PathSegment[],
  kind: "containers" | "initContainers",
): InitRestart | undefined {
  if (kind === "containers") {
    if (c.restartPolicy !== undefined || c.restartPolicyRules !== undefined) {
      const field = c.restartPolicy !== undefined ? "restartPolicy" : "restartPolicyRules";
      throw specErrorAt(
        src,
        [...at, field],
        `a container's own ${field} (Kubernetes 1.34 alpha) is honoured on init containers only: ` +
          "app containers follow spec.restartPolicy; set the policy there",
        { key: true },
      );
    }
    return undefined;
  }
  if (c.restartPolicy !== "Always") {
    const probe = (["livenessProbe", "readinessProbe", "startupProbe"] as const).find((k) => c[k]);
    if (probe) {
      throw specErrorAt(
        src,
        [...at, probe],
        "probes are for app containers and sidecars (the API server's rule): " +
          "remove it, or make this init container a sidecar with restartPolicy: Always",
        { key: true },
      );
    }
  }
  if (c.restartPolicyRules === undefined) {
    return c.restartPolicy === "Never" || c.restartPolicy === "OnFailure"
      ? { policy: c.restartPolicy, rules: [] }
      : undefined;
  }
  if (c.restartPolicy === undefined) {
    throw specErrorAt(
      src,
      [...at, "restartPolicyRules"],
      "restartPolicyRules need the container's restartPolicy set (the API server's rule): " +
        "add restartPolicy: Never (or OnFailure)",
      { key: true },
    );
  }
  if (c.restartPolicy === "Always") {
    throw specErrorAt(
      src,
      [...at, "restartPolicyRules"],
      "a sidecar (restartPolicy: Always) is restarted whatever its exit code: remove the rules",
      { key: true },
    );
  }
  return { policy: c.restartPolicy, rules: readRestartRules(src, c.restartPolicyRules, at) };
}

/**
 * Loads every Pod in a (possibly multi-document) YAML file, with the
 * ConfigMaps, Secrets and PersistentVolumeClaims it carries next to them
 * and those of `objects` (files given with `--configmap`).
 */
export function loadPods(
  text: string,
  file: string,
  options: { baseDir?: string; objects?: KubeObjects; node?: NodeCapacity } = {},
): LoadedPod[] {
  const baseDir = options.baseDir ?? dirnameOf(file);
  const docs = parseYamlDocuments(text, file);
  const objects = options.objects ? cloneObjects(options.objects) : emptyObjects();
  const objectWarnings: Warning[] = [];
  const podDocs: SourceDoc[] = [];
  for (const d of docs) {
    const kind = isMapping(d.value) ? d.value.kind : undefined;
    if (typeof kind === "string" && OBJECT_KINDS.includes(kind)) {
      objectWarnings.push(...addObject(d, objects));
    } else if (kind === undefined || kind === "Pod") {
      podDocs.push(d);
    } else {
      throw specErrorAt(
        d,
        ["kind"],
        `kind ${JSON.stringify(kind)} is not run here: a pod file holds Pod, ${
          OBJECT_KINDS.join(", ")
        } documents`,
      );
    }
  }
  if (podDocs.length === 0) {
    throw new SpecError({ file }, "no Pod in this file (only ConfigMaps, Secrets or claims)");
  }
  const node = options.node ?? nodeCapacity();
  const pods = podDocs.map((d) => podFromDoc(d, baseDir, objects, node));
  if (objectWarnings.length > 0) pods[0].warnings.unshift(...objectWarnings);
  const seen = new Map<string, number>();
  for (const p of pods) {
    const at = p.source.at(["metadata", "name"]);
    const first = seen.get(p.spec.name);
    if (first !== undefined) {
      throw new SpecError(
        at,
        `pod ${JSON.stringify(p.spec.name)} is already defined on line ${first}`,
      );
    }
    seen.set(p.spec.name, at.line ?? 0);
  }

  return pods;
}

/** Reads a `--configmap` file: ConfigMaps, Secrets and claims only. */
export function loadObjects(text: string, file: string, into = emptyObjects()): KubeObjects {
  for (const d of parseYamlDocuments(text, file)) {
    const kind = isMapping(d.value) ? d.value.kind : undefined;
    if (typeof kind !== "string" || !OBJECT_KINDS.includes(kind)) {
      throw specErrorAt(
        d,
        ["kind"],
        `a --configmap file holds ${OBJECT_KINDS.join(", ")} documents`,
      );
    }
    addObject(d, into);
  }
  return into;
}

function cloneObjects(o: KubeObjects): KubeObjects {
  return {
    configMaps: new Map(o.configMaps),
    secrets: new Map(o.secrets),
    claims: new Set(o.claims),
  };
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
