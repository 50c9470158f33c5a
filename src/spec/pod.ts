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
import {
  annotationMap,
  appArmorProfile,
  containerFields,
  dnsLabel,
  labelMap,
  podVolume,
  resources,
  seccompProfile,
  type VolumeSpec,
} from "./schema.ts";
import { dnsSubdomainError } from "./names.ts";
import { parseQuantity, quantityValue } from "./quantity.ts";
import {
  locate,
  parseYamlDocuments,
  type PathSegment,
  scalarSource,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "./source.ts";
import {
  addObject,
  emptyObjects,
  type KubeObjects,
  OBJECT_KINDS,
  SERVER_SET,
  whereToPut,
} from "./objects.ts";
import { fieldPathError, type NodeCapacity, resourceValue } from "./downward.ts";
import type { EnvEntry } from "./container.ts";
import { checkVolumeSources } from "./container.ts";
import { dirnameOf, joinPath } from "./paths.ts";
import { type SourceLocation, SpecError } from "../errors.ts";
import { MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES, nodeCapacity } from "./pod_limits.ts";
export { MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES, nodeCapacity };

const podContainer = z.strictObject({
  ...containerFields,
  /** On an init container, `Always` makes it a native sidecar (Kubernetes 1.29+). */
  restartPolicy: z.literal("Always").optional(),
});

/**
 * PodSpec fields that steer a cluster (its scheduler, its API server's service
 * accounts, its admission) and mean nothing on one host: accepted without a
 * word, as this host is the one node that everything is scheduled on.
 * docs/kube.md lists them.
 */
const ONE_HOST_FIELDS = {
  nodeSelector: z.record(z.string(), z.string()).optional(),
  nodeName: z.string().optional(),
  affinity: z.record(z.string(), z.unknown()).optional(),
  tolerations: z.array(z.unknown()).optional(),
  schedulingGates: z.array(z.unknown()).optional(),
  schedulerName: z.string().optional(),
  priorityClassName: z.string().optional(),
  priority: z.number().int().optional(),
  preemptionPolicy: z.string().optional(),
  topologySpreadConstraints: z.array(z.unknown()).optional(),
  overhead: z.record(z.string(), z.unknown()).optional(),
  readinessGates: z.array(z.unknown()).optional(),
  serviceAccountName: z.string().optional(),
  serviceAccount: z.string().optional(),
  automountServiceAccountToken: z.boolean().optional(),
  enableServiceLinks: z.boolean().optional(),
  /** Kubernetes 1.36 (alpha): gang scheduling's group. */
  schedulingGroup: z.unknown().optional(),
  /** Kubernetes 1.35 (alpha): gang scheduling's workload. */
  workloadRef: z.unknown().optional(),
};

const podSchema = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Pod"),
  metadata: z.strictObject({
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    labels: labelMap.optional(),
    annotations: annotationMap.optional(),
  }),
  spec: z.strictObject({
    containers: z.array(podContainer).min(1, "a pod needs at least one container"),
    initContainers: z.array(podContainer).optional(),
    /** Refused at its line before validation (refuseAtCreate). */
    ephemeralContainers: z.unknown().optional(),
    volumes: z.array(podVolume).optional(),
    hostAliases: z.array(z.strictObject({
      ip: z.union([z.ipv4(), z.ipv6()]),
      hostnames: z.array(
        z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, {
          message: "must be a host name",
        }),
      ).min(1),
    })).optional(),
    dnsPolicy: z.enum(["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]).optional(),
    dnsConfig: z.strictObject({
      nameservers: z.array(z.union([z.ipv4(), z.ipv6()], { message: "must be an IP address" }))
        .max(MAX_NAMESERVERS, `at most ${MAX_NAMESERVERS} nameservers (the API server's limit)`)
        .optional(),
      searches: z.array(
        z.string().superRefine((d, ctx) => {
          const bad = d === "." ? undefined : dnsSubdomainError(d.replace(/\.$/, ""));
          if (bad) ctx.addIssue({ code: "custom", message: bad });
        }),
      ).max(MAX_SEARCHES, `at most ${MAX_SEARCHES} search domains (the API server's limit)`)
        .refine((l) => l.join(" ").length <= MAX_SEARCH_CHARS, {
          message:
            `the search list is longer than ${MAX_SEARCH_CHARS} characters (the API server's limit)`,
        }).optional(),
      options: z.array(z.strictObject({
        // Written into resolv.conf as `name[:value]`: no blank, no ':' in the name.
        name: z.string().regex(/^[^\s:]+$/, { message: "must be a word with no ':' or blank" }),
        value: z.string().regex(/^\S*$/, { message: "must have no blank" }).optional(),
      })).optional(),
    }).optional(),
    /** Pod-level limits (Kubernetes 1.32+ PodLevelResources): the pod cgroup's own. */
    resources: resources.optional(),
    restartPolicy: z.enum(["Always", "OnFailure", "Never"]).optional(),
    hostNetwork: z.boolean().optional(),
    hostPID: z.boolean().optional(),
    hostIPC: z.boolean().optional(),
    shareProcessNamespace: z.boolean().optional(),
    hostname: dnsLabel.optional(),
    /** Kubernetes 1.34+: the pod's hostname instead of hostname/subdomain. */
    hostnameOverride: z.string().min(1).max(64).regex(
      /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
      "must be a DNS-1123 subdomain of at most 64 characters",
    ).optional(),
    subdomain: dnsLabel.optional(),
    setHostnameAsFQDN: z.boolean().optional(),
    terminationGracePeriodSeconds: z.number().int().min(0).optional(),
    activeDeadlineSeconds: z.number().int().min(1).optional(),
    os: z.strictObject({ name: z.string() }).optional(),
    hostUsers: z.boolean().optional(),
    runtimeClassName: z.string().optional(),
    imagePullSecrets: z.array(z.strictObject({ name: z.string().optional() })).optional(),
    resourceClaims: z.array(z.unknown()).optional(),
    securityContext: z.strictObject({
      runAsUser: z.number().int().min(0).optional(),
      runAsGroup: z.number().int().min(0).optional(),
      runAsNonRoot: z.boolean().optional(),
      seccompProfile: seccompProfile.optional(),
      fsGroup: z.number().int().min(0).max(2 ** 32 - 2).optional(),
      fsGroupChangePolicy: z.enum(["Always", "OnRootMismatch"]).optional(),
      supplementalGroups: z.array(z.number().int().min(0).max(2 ** 32 - 2)).optional(),
      supplementalGroupsPolicy: z.enum(["Merge", "Strict"]).optional(),
      sysctls: z.array(z.strictObject({
        name: z.string().regex(
          /^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$/,
          {
            message: "must be a sysctl name such as net.ipv4.ip_unprivileged_port_start",
          },
        ),
        value: z.string(),
      })).optional(),
      seLinuxOptions: z.record(z.string(), z.string()).optional(),
      seLinuxChangePolicy: z.enum(["MountOption", "Recursive"]).optional(),
      windowsOptions: z.record(z.string(), z.unknown()).optional(),
      appArmorProfile: appArmorProfile.optional(),
    }).optional(),
    ...ONE_HOST_FIELDS,
  }),
});

/** Every PodSpec key the schema knows (honoured, refused at its line, or accepted silently). */
export const POD_SPEC_KEYS: readonly string[] = Object.keys(
  (podSchema.shape.spec as unknown as { shape: Record<string, unknown> }).shape,
);
/** Every PodSecurityContext key the schema knows. */
export const POD_SECURITY_KEYS: readonly string[] = Object.keys(
  (podSchema.shape.spec.shape.securityContext.unwrap() as unknown as {
    shape: Record<string, unknown>;
  }).shape,
);
/** Every Container key the schema knows. */
export const CONTAINER_KEYS: readonly string[] = Object.keys(podContainer.shape);

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

interface LoadCtx {
  src: SourceDoc;
  objects: KubeObjects;
  node: NodeCapacity;
}

type RawContainer = z.output<typeof podContainer>;

function lookup(
  ctx: LoadCtx,
  kind: "ConfigMap" | "Secret",
  name: string,
  at: readonly PathSegment[],
  optional: boolean | undefined,
) {
  const o = (kind === "ConfigMap" ? ctx.objects.configMaps : ctx.objects.secrets).get(name);
  if (!o && !optional) {
    throw specErrorAt(
      ctx.src,
      at,
      `${kind} ${JSON.stringify(name)} is not defined (${whereToPut(kind)})`,
    );
  }
  return o;
}

function envText(ctx: LoadCtx, bytes: Uint8Array, at: readonly PathSegment[]): string {
  const text = new TextDecoder().decode(bytes);
  if (text.includes("\0")) {
    throw specErrorAt(ctx.src, at, "the value holds a NUL byte, which no environment can carry");
  }
  return text;
}

function findContainer(
  ctx: LoadCtx,
  all: RawContainer[],
  name: string,
  at: readonly PathSegment[],
): RawContainer {
  const c = all.find((x) => x.name === name);
  if (!c) {
    throw specErrorAt(ctx.src, at, `no container ${JSON.stringify(name)} in this pod`);
  }
  return c;
}

/** envFrom then env, as the kubelet builds a container's environment. */
function resolveEnv(
  ctx: LoadCtx,
  c: RawContainer,
  at: readonly PathSegment[],
  all: RawContainer[],
  warnings: Warning[],
): EnvEntry[] {
  const out: EnvEntry[] = [];
  (c.envFrom ?? []).forEach((f, i) => {
    const field = f.configMapRef ? "configMapRef" : "secretRef";
    const ref = f.configMapRef ?? f.secretRef!;
    const kind = f.configMapRef ? "ConfigMap" : "Secret";
    const o = lookup(ctx, kind, ref.name, [...at, "envFrom", i, field, "name"], ref.optional);
    if (!o) return;
    const prefix = f.prefix ?? "";
    if (prefix.includes("=") || prefix.includes("\0")) {
      throw specErrorAt(ctx.src, [...at, "envFrom", i, "prefix"], "must not contain '=' or NUL");
    }
    for (const [k, v] of o.data) {
      const value = new TextDecoder().decode(v);
      if (value.includes("\0")) {
        const loc = specErrorAt(ctx.src, [...at, "envFrom", i], "");
        warnings.push({
          file: loc.file,
          line: loc.line,
          column: loc.column,
          path: loc.path,
          message: `key ${JSON.stringify(k)} of ${kind} ${o.name} holds a NUL byte; skipped`,
        });
        continue;
      }
      out.push({ name: prefix + k, value });
    }
  });
  (c.env ?? []).forEach((e, i) => {
    const vf = e.valueFrom;
    if (!vf) {
      out.push({ name: e.name, value: e.value ?? "", expand: true });
      return;
    }
    const vat = [...at, "env", i, "valueFrom"];
    if (vf.configMapKeyRef || vf.secretKeyRef) {
      const field = vf.configMapKeyRef ? "configMapKeyRef" : "secretKeyRef";
      const kind = vf.configMapKeyRef ? "ConfigMap" : "Secret";
      const ref = vf.configMapKeyRef ?? vf.secretKeyRef!;
      const o = lookup(ctx, kind, ref.name, [...vat, field, "name"], ref.optional);
      if (!o) return;
      const v = o.data.get(ref.key);
      if (v === undefined) {
        if (ref.optional) return;
        throw specErrorAt(
          ctx.src,
          [...vat, field, "key"],
          `${kind} ${JSON.stringify(o.name)} (line ${o.loc.line}) has no key ${
            JSON.stringify(ref.key)
          }`,
        );
      }
      out.push({ name: e.name, value: envText(ctx, v, [...vat, field, "key"]) });
    } else if (vf.fieldRef) {
      const err = fieldPathError(vf.fieldRef.fieldPath, "env");
      if (err) throw specErrorAt(ctx.src, [...vat, "fieldRef", "fieldPath"], err);
      out.push({ name: e.name, fieldRef: vf.fieldRef.fieldPath });
    } else {
      const r = vf.resourceFieldRef!;
      const target = r.containerName
        ? findContainer(ctx, all, r.containerName, [...vat, "resourceFieldRef", "containerName"])
        : c;
      out.push({ name: e.name, value: resourceValue(r, target.resources ?? {}, ctx.node) });
    }
  });
  return out;
}

/** A mode as kubectl reads it: `0644` is octal (YAML 1.1), `420` decimal. */
function readMode(ctx: LoadCtx, path: readonly PathSegment[], value: number): number {
  const text = scalarSource(ctx.src, path);
  const mode = text && /^0[0-7]+$/.test(text) ? parseInt(text, 8) : value;
  if (mode > 0o777) {
    throw specErrorAt(
      ctx.src,
      path,
      `mode ${
        text ?? value
      } is not a file mode: write it in octal with a leading 0 (0644) or in decimal (420)`,
    );
  }
  return mode;
}

/** The files of a configMap, secret, downwardAPI or projected volume. */
function volumeFiles(
  ctx: LoadCtx,
  vol: VolumeSpec,
  vi: number,
  all: RawContainer[],
): VolumeFile[] {
  const at: PathSegment[] = ["spec", "volumes", vi];
  const files: VolumeFile[] = [];
  const seen = new Map<string, string>();
  const add = (f: VolumeFile, where: readonly PathSegment[]) => {
    const parts = f.path.split("/");
    if (f.path.startsWith("/") || parts.includes("..") || f.path.includes("\0")) {
      throw specErrorAt(ctx.src, where, "must be a relative path without '..'");
    }
    const clean = parts.filter((p) => p !== "" && p !== ".").join("/");
    if (!clean || clean.startsWith("..")) {
      throw specErrorAt(ctx.src, where, `${JSON.stringify(f.path)} is not a file name`);
    }
    if (seen.has(clean)) {
      throw specErrorAt(ctx.src, where, `${clean} is also written by ${seen.get(clean)}`);
    }
    seen.set(clean, where.map(String).join("."));
    files.push({ ...f, path: clean });
  };
  const b64 = (v: Uint8Array) => btoa(String.fromCharCode(...v));
  const fromObject = (
    kind: "ConfigMap" | "Secret",
    ref: {
      name: string;
      items?: { key: string; path: string; mode?: number }[];
      optional?: boolean;
    },
    defaultMode: number,
    where: PathSegment[],
    nameField: string,
  ) => {
    const o = lookup(ctx, kind, ref.name, [...where, nameField], ref.optional);
    if (!o) return;
    if (!ref.items) {
      for (const [k, v] of o.data) add({ path: k, data: b64(v), mode: defaultMode }, where);
      return;
    }
    ref.items.forEach((it, j) => {
      const iat = [...where, "items", j];
      const v = o.data.get(it.key);
      if (v === undefined) {
        if (ref.optional) return;
        throw specErrorAt(
          ctx.src,
          [...iat, "key"],
          `${kind} ${JSON.stringify(o.name)} (line ${o.loc.line}) has no key ${
            JSON.stringify(it.key)
          }`,
        );
      }
      const mode = it.mode === undefined ? defaultMode : readMode(ctx, [...iat, "mode"], it.mode);
      add({ path: it.path, data: b64(v), mode }, [...iat, "path"]);
    });
  };
  const fromDownward = (
    items: NonNullable<NonNullable<VolumeSpec["downwardAPI"]>["items"]>,
    defaultMode: number,
    where: PathSegment[],
  ) =>
    items.forEach((it, j) => {
      const iat = [...where, "items", j];
      const mode = it.mode === undefined ? defaultMode : readMode(ctx, [...iat, "mode"], it.mode);
      if (it.fieldRef) {
        const err = fieldPathError(it.fieldRef.fieldPath, "volume");
        if (err) throw specErrorAt(ctx.src, [...iat, "fieldRef", "fieldPath"], err);
        add({ path: it.path, fieldRef: it.fieldRef.fieldPath, mode }, [...iat, "path"]);
        return;
      }
      const r = it.resourceFieldRef!;
      if (!r.containerName) {
        throw specErrorAt(
          ctx.src,
          [...iat, "resourceFieldRef"],
          "resourceFieldRef in a volume needs containerName",
        );
      }
      const c = findContainer(ctx, all, r.containerName, [
        ...iat,
        "resourceFieldRef",
        "containerName",
      ]);
      const value = resourceValue(r, c.resources ?? {}, ctx.node);
      add({ path: it.path, data: btoa(value), mode }, [...iat, "path"]);
    });
  const dm = (v: { defaultMode?: number }, field: string) =>
    v.defaultMode === undefined
      ? 0o644
      : readMode(ctx, [...at, field, "defaultMode"], v.defaultMode);
  if (vol.configMap) {
    fromObject(
      "ConfigMap",
      vol.configMap,
      dm(vol.configMap, "configMap"),
      [...at, "configMap"],
      "name",
    );
  } else if (vol.secret) {
    fromObject(
      "Secret",
      { ...vol.secret, name: vol.secret.secretName },
      dm(vol.secret, "secret"),
      [...at, "secret"],
      "secretName",
    );
  } else if (vol.downwardAPI) {
    fromDownward(vol.downwardAPI.items ?? [], dm(vol.downwardAPI, "downwardAPI"), [
      ...at,
      "downwardAPI",
    ]);
  } else if (vol.projected) {
    const mode = dm(vol.projected, "projected");
    vol.projected.sources.forEach((p, j) => {
      const pat: PathSegment[] = [...at, "projected", "sources", j];
      if (p.configMap) fromObject("ConfigMap", p.configMap, mode, [...pat, "configMap"], "name");
      else if (p.secret) fromObject("Secret", p.secret, mode, [...pat, "secret"], "name");
      else if (p.downwardAPI) {
        fromDownward(p.downwardAPI.items ?? [], mode, [...pat, "downwardAPI"]);
      } else if (p.serviceAccountToken || p.clusterTrustBundle) {
        throw specErrorAt(
          ctx.src,
          [...pat, p.serviceAccountToken ? "serviceAccountToken" : "clusterTrustBundle"],
          "needs a Kubernetes API server, which a standalone pod has none of: drop this source (or mount the data from a Secret)",
        );
      } else {
        throw specErrorAt(
          ctx.src,
          pat,
          "a projected source needs configMap, secret or downwardAPI",
        );
      }
    });
  }
  return files;
}

/**
 * dnsPolicy and dnsConfig as a kubelet with no cluster DNS applies them:
 * ClusterFirst (the default) and ClusterFirstWithHostNet fall back to Default,
 * the host's resolv.conf (the kubelet's MissingClusterDNS event is a warning
 * here when the policy is written out); None starts from nothing and needs
 * dnsConfig with a nameserver (the API server's rule).
 */
function podResolv(
  src: SourceDoc,
  s: {
    dnsPolicy?: string;
    dnsConfig?: {
      nameservers?: string[];
      searches?: string[];
      options?: { name: string; value?: string }[];
    };
  },
  warnings: Warning[],
): PodResolv | undefined {
  const policy = s.dnsPolicy ?? "ClusterFirst";
  if (policy === "None" && !s.dnsConfig) {
    throw specErrorAt(
      src,
      ["spec", "dnsPolicy"],
      "dnsPolicy None needs a dnsConfig with nameservers",
    );
  }
  if (policy === "None" && (s.dnsConfig?.nameservers ?? []).length === 0) {
    throw specErrorAt(
      src,
      ["spec", "dnsConfig"],
      "dnsPolicy None needs at least one dnsConfig.nameservers entry",
    );
  }
  // ClusterFirst (kubectl writes it out) and ClusterFirstWithHostNet fall back to
  // Default without a word: no cluster DNS exists on one host (docs/kube.md).
  void warnings;
  if (!s.dnsConfig && policy !== "None") return undefined;
  return {
    base: policy === "None" ? "none" : "host",
    nameservers: s.dnsConfig?.nameservers ?? [],
    searches: s.dnsConfig?.searches ?? [],
    options: s.dnsConfig?.options ?? [],
  };
}

/**
 * `emptyDir.medium: Memory` volumes in use, with their sizeLimit in bytes. A
 * sizeLimit on a disk emptyDir is not enforced here (the kubelet evicts the pod
 * past it): a warning at its line says so.
 */
function memoryDirs(
  src: SourceDoc,
  volumes: VolumeSpec[],
  used: Set<string>,
  warnings: Warning[],
): Record<string, number | undefined> | undefined {
  const out: Record<string, number | undefined> = {};
  volumes.forEach((v, i) => {
    if (!v.emptyDir || !used.has(v.name)) return;
    const limit = v.emptyDir.sizeLimit;
    const bytes = limit === undefined ? undefined : Number(quantityValue(parseQuantity(limit)));
    if (v.emptyDir.medium === "Memory") {
      out[v.name] = bytes && bytes > 0 ? bytes : undefined;
    } else if (bytes) {
      const path = ["spec", "volumes", i, "emptyDir", "sizeLimit"];
      warnings.push({
        file: src.file,
        ...locate(src, path),
        path: `spec.volumes[${i}].emptyDir.sizeLimit`,
        message:
          "not enforced on a disk emptyDir (the kubelet evicts the pod past it); medium: Memory makes it a tmpfs of that size",
      });
    }
  });
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Pod-level resources the API server accepts (PodLevelResources): cpu, memory, hugepages-<size>. */
const POD_LEVEL_RESOURCE = /^(cpu|memory|hugepages-.+)$/;

/**
 * What the API server refuses when a pod is created, refused here at its line
 * rather than warned about and dropped: `spec.ephemeralContainers` (added to a
 * running pod only through its ephemeralcontainers subresource, `kubectl debug`)
 * and pod-level resources other than cpu, memory and hugepages.
 */
function refuseAtCreate(src: SourceDoc): void {
  const spec = (src.value as Record<string, unknown>).spec;
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) return;
  const s = spec as Record<string, unknown>;
  if ("ephemeralContainers" in s) {
    throw specErrorAt(
      src,
      ["spec", "ephemeralContainers"],
      "ephemeral containers cannot be set when a pod is created (the API server refuses them too); " +
        "remove them; use `rkl pod exec` or add a container to the pod instead",
      { key: true },
    );
  }
  const res = s.resources;
  if (res === null || typeof res !== "object" || Array.isArray(res)) return;
  for (const kind of ["limits", "requests"]) {
    const list = (res as Record<string, unknown>)[kind];
    if (list === null || typeof list !== "object" || Array.isArray(list)) continue;
    for (const name of Object.keys(list)) {
      if (POD_LEVEL_RESOURCE.test(name)) continue;
      throw specErrorAt(
        src,
        ["spec", "resources", kind, name],
        `pod-level resources may only be cpu, memory and hugepages-<size> (the API server refuses ${
          JSON.stringify(name)
        }); set it on a container instead`,
        { key: true },
      );
    }
  }
}

/** A refusal at `path` (a key), with what to do instead. */
function refuse(src: SourceDoc, path: PathSegment[], message: string): never {
  throw specErrorAt(src, path, message, { key: true });
}

/**
 * PodSpec fields rkl reads but cannot do on one host: refused at their line
 * with what to do instead (or, for two that change nothing here but a
 * cluster's plumbing, a warning naming what rkl uses).
 */
function refusePodFields(
  src: SourceDoc,
  s: z.output<typeof podSchema>["spec"],
  warnings: Warning[],
): void {
  const at = (k: string) => ["spec", k];
  if (s.activeDeadlineSeconds !== undefined) {
    refuse(
      src,
      at("activeDeadlineSeconds"),
      "not enforced on a pod: run it as a Job (kind: Job) with spec.activeDeadlineSeconds, which rkl enforces",
    );
  }
  if (s.os && s.os.name !== "linux") {
    throw specErrorAt(
      src,
      ["spec", "os", "name"],
      `this host runs linux pods, not ${JSON.stringify(s.os.name)}`,
    );
  }
  if (s.hostUsers === false) {
    refuse(src, at("hostUsers"), "user namespaces are not supported: remove hostUsers: false");
  }
  if (s.setHostnameAsFQDN) {
    refuse(
      src,
      at("setHostnameAsFQDN"),
      "not supported (no cluster domain here): write the name you want in hostnameOverride",
    );
  }
  if ((s.resourceClaims ?? []).length > 0) {
    refuse(
      src,
      at("resourceClaims"),
      "dynamic resource claims need a DRA driver, which one host has none of: remove them",
    );
  }
  if (s.hostNetwork && s.hostnameOverride) {
    refuse(
      src,
      at("hostnameOverride"),
      "cannot be set with hostNetwork (the API server's rule): the pod has the host's name",
    );
  }
  const sc = s.securityContext;
  // supplementalGroupsPolicy: rkl gives the process fsGroup and supplementalGroups and never
  // adds the image's /etc/group memberships, which is what Strict asks; Merge is read the same
  // (docs/kube.md).
  if (sc?.appArmorProfile?.type === "Localhost") {
    throw specErrorAt(
      src,
      ["spec", "securityContext", "appArmorProfile", "type"],
      "rkl loads no AppArmor profile: use RuntimeDefault or Unconfined",
    );
  }
  const note = (k: string, message: string) =>
    warnings.push({ file: src.file, ...locate(src, at(k)), path: `spec.${k}`, message });
  if (s.imagePullSecrets) {
    note("imagePullSecrets", "ignored: rkl pulls with the credentials `rkl login` stored");
  }
  if (s.runtimeClassName) {
    note("runtimeClassName", "ignored: every pod runs with rkl's --runtime (RKL_RUNTIME)");
  }
}

/** Container fields rkl reads but cannot do: refused at their line with what to do instead. */
function refuseContainerFields(
  src: SourceDoc,
  c: RawContainer,
  at: readonly PathSegment[],
): void {
  if (c.restartPolicyRules) {
    refuse(src, [...at, "restartPolicyRules"], "not supported: use the pod's restartPolicy");
  }
  if (c.volumeDevices) {
    refuse(
      src,
      [...at, "volumeDevices"],
      "raw block devices are not supported: mount the claim with volumeMounts",
    );
  }
  if ((c.resources?.claims ?? []).length > 0) {
    refuse(
      src,
      [...at, "resources", "claims"],
      "dynamic resource claims need a DRA driver: remove them",
    );
  }
  const sc = c.securityContext;
  if (sc?.procMount === "Unmasked") {
    refuse(
      src,
      [...at, "securityContext", "procMount"],
      "Unmasked needs a user namespace, which rkl does not make: remove it",
    );
  }
  if (sc?.appArmorProfile?.type === "Localhost") {
    throw specErrorAt(
      src,
      [...at, "securityContext", "appArmorProfile", "type"],
      "rkl loads no AppArmor profile: use RuntimeDefault or Unconfined",
    );
  }
  (c.env ?? []).forEach((e, i) => {
    if (e.valueFrom?.fileKeyRef) {
      refuse(
        src,
        [...at, "env", i, "valueFrom", "fileKeyRef"],
        "not supported: read the file from the process, or use a ConfigMap key",
      );
    }
  });
  (c.volumeMounts ?? []).forEach((m, i) => {
    const mat = [...at, "volumeMounts", i];
    if (m.subPathExpr !== undefined) {
      refuse(src, [...mat, "subPathExpr"], "not supported: use subPath with the path written out");
    }
    if (m.mountPropagation && m.mountPropagation !== "None") {
      refuse(src, [...mat, "mountPropagation"], "mounts are private here (None): remove it");
    }
    if (m.recursiveReadOnly === "Enabled") {
      refuse(
        src,
        [...mat, "recursiveReadOnly"],
        "not supported: use IfPossible or readOnly (submounts stay writable)",
      );
    }
  });
}

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
      const e = specErrorAt(src, ["spec", "volumes", i, "image", "reference"], "");
      imageVolumes[v.name] = {
        ...v.image,
        loc: { file: e.file, line: e.line, column: e.column, path: e.path },
      };
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

/** A `volumes[].image`: the reference, its pull policy, and where it is in the file. */
export interface ImageVolume {
  reference: string;
  pullPolicy?: "Always" | "IfNotPresent" | "Never";
  loc: SourceLocation & { path: string };
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
