/**
 * Kubernetes Pod manifests (and rk8s's habit of naming the pause bundle in
 * `metadata.labels.bundle`). A file may hold several documents (`---`); each
 * must be `kind: Pod`. Every container is returned as a LoadedContainer whose
 * locations point into the pod file (`spec.containers[1].image`).
 */
import { z } from "zod";
import {
  checkContainer,
  checkUniqueVolumes,
  type LoadedContainer,
  resolveMounts,
  sourceOf,
  type SpecSource,
  toContainerSpec,
} from "./container.ts";
import { containerFields, dnsLabel, hostPathVolume, seccompProfile } from "./schema.ts";
import {
  parseYamlDocuments,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "./source.ts";
import { dirnameOf, joinPath } from "./paths.ts";
import { SpecError } from "../errors.ts";

const podContainer = z.strictObject({
  ...containerFields,
  imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional(),
  /** On an init container, `Always` makes it a native sidecar (Kubernetes 1.29+). */
  restartPolicy: z.literal("Always").optional(),
});

const labelMap = z.record(z.string(), z.string());

const podSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Pod"),
  metadata: z.strictObject({
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    labels: labelMap.optional(),
    annotations: labelMap.optional(),
  }),
  spec: z.strictObject({
    containers: z.array(podContainer).min(1, "a pod needs at least one container"),
    initContainers: z.array(podContainer).optional(),
    volumes: z.array(hostPathVolume).optional(),
    restartPolicy: z.enum(["Always", "OnFailure", "Never"]).optional(),
    hostNetwork: z.boolean().optional(),
    shareProcessNamespace: z.boolean().optional(),
    hostname: dnsLabel.optional(),
    subdomain: dnsLabel.optional(),
    terminationGracePeriodSeconds: z.number().int().min(0).optional(),
    securityContext: z.strictObject({
      runAsUser: z.number().int().min(0).optional(),
      runAsGroup: z.number().int().min(0).optional(),
      runAsNonRoot: z.boolean().optional(),
      seccompProfile: seccompProfile.optional(),
    }).optional(),
  }),
});

export type RestartPolicy = "Always" | "OnFailure" | "Never";

/** metadata fields only the API server writes. */
const SERVER_SET = new Set([
  "creationTimestamp",
  "uid",
  "resourceVersion",
  "generation",
  "managedFields",
  "selfLink",
]);

export interface PodSpec {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Absolute path of the pause bundle when the manifest names one (label `bundle`). */
  pauseBundle?: string;
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
}

export interface LoadedPod {
  spec: PodSpec;
  source: SpecSource;
  warnings: Warning[];
}

function podFromDoc(src: SourceDoc, baseDir: string): LoadedPod {
  if (src.value === null || typeof src.value !== "object" || Array.isArray(src.value)) {
    throw specErrorAt(src, [], "Cannot load pod: the document must be a mapping");
  }
  // Fields the API server sets, which `kubectl get -o yaml` and `podman generate kube`
  // write out: read-only, so ignored without a word, as the kubelet does.
  const { data, warnings } = validate(src, podSchema, {
    silent: (key, path) =>
      (path.length === 0 && key === "status") ||
      (path.length === 1 && path[0] === "metadata" && SERVER_SET.has(key)),
  });
  const s = data.spec;
  const volumes = s.volumes ?? [];
  checkUniqueVolumes(src, volumes, ["spec", "volumes"]);
  const names = new Map<string, string>();
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
      if (kind === "containers" && c.restartPolicy !== undefined) {
        throw specErrorAt(
          src,
          [...at, "restartPolicy"],
          "restartPolicy on a container is for init containers (sidecars); use spec.restartPolicy",
        );
      }
      checkContainer(src, c, at);
      const mounts = resolveMounts(src, c.volumeMounts ?? [], volumes, {
        baseDir,
        pathPrefix: at,
        volumesPath: ["spec", "volumes"],
      });
      for (const m of mounts) if (m.kind === "emptyDir") emptyDirs.add(m.volume!);
      const sc = { ...c.securityContext };
      sc.runAsUser ??= s.securityContext?.runAsUser;
      sc.runAsGroup ??= s.securityContext?.runAsGroup;
      sc.runAsNonRoot ??= s.securityContext?.runAsNonRoot;
      sc.seccompProfile ??= s.securityContext?.seccompProfile;
      const spec = toContainerSpec(c, { baseDir, mounts, securityContext: sc });
      if (c.restartPolicy === "Always") spec.sidecar = true;
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
      shareProcessNamespace: s.shareProcessNamespace ?? false,
      hostname: s.hostname ?? data.metadata.name,
      subdomain: s.subdomain,
      terminationGracePeriodSeconds: s.terminationGracePeriodSeconds ?? 30,
      emptyDirs: [...emptyDirs],
    },
    source: sourceOf(src),
    warnings,
  };
}

/** Loads every Pod in a (possibly multi-document) YAML file. */
export function loadPods(
  text: string,
  file: string,
  options: { baseDir?: string } = {},
): LoadedPod[] {
  const baseDir = options.baseDir ?? dirnameOf(file);
  const pods = parseYamlDocuments(text, file).map((d) => podFromDoc(d, baseDir));
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
