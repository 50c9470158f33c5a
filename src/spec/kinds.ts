/**
 * The kinds of a Kubernetes file that mean something on one host, read the
 * way `podman kube play` reads them:
 *
 * - Pod: one pod.
 * - Deployment: `replicas` pods from its template, named `<name>-pod-<i>`
 *   (podman 4.3 on a Deployment of 3 replicas makes web-pod-0, web-pod-1,
 *   web-pod-2), each with the template's labels.
 * - DaemonSet: one pod `<name>-pod` (this host is its one node; podman's name).
 * - Job: its template, run to completion by a job monitor (workloads/kube.ts);
 *   its pods are `<name>-pod-<n>`, n counting the pods it has made.
 * - Service: its ports are published on the host (see applyServices).
 * - ConfigMap, Secret, PersistentVolumeClaim: as objects.ts reads them.
 *
 * Kinds with no meaning on one host (Ingress, NetworkPolicy, RBAC, …) are
 * skipped with one warning each at their line; workload kinds rkl does not run
 * (StatefulSet, CronJob, …) are refused at their line, never dropped.
 */
import { Document, isMap, Pair, Scalar, YAMLMap } from "yaml";
import { z } from "zod";
import {
  locate,
  parseYamlDocuments,
  type PathSegment,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "./source.ts";
import { addObject, emptyObjects, type KubeObjects, OBJECT_KINDS, SERVER_SET } from "./objects.ts";
import { annotationMap, dnsLabel, labelMap } from "./schema.ts";
import { type LoadedPod, nodeCapacity, podFromDoc } from "./pod.ts";
import type { NodeCapacity } from "./downward.ts";
import { dirnameOf } from "./paths.ts";
import type { SourceLocation } from "../errors.ts";
import { SpecError } from "../errors.ts";

/** Kinds that have no meaning without a cluster: skipped with a warning. */
export const SKIPPED_KINDS = new Set([
  "Ingress",
  "IngressClass",
  "NetworkPolicy",
  "ServiceAccount",
  "Role",
  "RoleBinding",
  "ClusterRole",
  "ClusterRoleBinding",
  "HorizontalPodAutoscaler",
  "VerticalPodAutoscaler",
  "PodDisruptionBudget",
  "Namespace",
  "LimitRange",
  "ResourceQuota",
  "PriorityClass",
  "StorageClass",
  "PersistentVolume",
  "Endpoints",
  "EndpointSlice",
  "CustomResourceDefinition",
  "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration",
  "ValidatingAdmissionPolicy",
  "ValidatingAdmissionPolicyBinding",
  "Gateway",
  "GatewayClass",
  "HTTPRoute",
  "GRPCRoute",
  "RuntimeClass",
  "Lease",
  "CSIDriver",
  "VolumeAttributesClass",
  "DeviceClass",
  "ResourceClaimTemplate",
]);

/** Workload kinds that rkl does not run: refused, so no workload is dropped without a word. */
const REFUSED_KINDS: Record<string, string> = {
  StatefulSet: "run it as a Deployment (pods <name>-pod-<i>) with a PersistentVolumeClaim each",
  ReplicaSet: "write it as a Deployment with the same template and replicas",
  ReplicationController: "write it as a Deployment with the same template and replicas",
  CronJob: "run its jobTemplate as a Job from a timer (cron or a systemd timer)",
  PodTemplate: "write it as a Pod",
};

/** The kinds a file may hold and rkl acts on. */
export const RUN_KINDS = ["Pod", "Deployment", "DaemonSet", "Job", "Service", ...OBJECT_KINDS];

/** Who made a pod: a Pod document, or a workload's name and kind. */
export interface PodOwner {
  kind: "Pod" | "Deployment" | "DaemonSet" | "Job";
  name: string;
}

/** A Job: its pod template (named `<job>-pod-0`; the monitor renames each attempt) and its rules. */
export interface KubeJob {
  name: string;
  template: LoadedPod;
  completions: number;
  parallelism: number;
  backoffLimit: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  loc: SourceLocation;
}

/** A Service: what it publishes and on which pod. */
export interface KubeService {
  name: string;
  type: string;
  /** host ip:port/proto → pod and container port. */
  published: { hostIP: string; hostPort: number; protocol: string; pod: string; port: number }[];
  loc: SourceLocation;
}

export interface LoadedKube {
  /** Pods of Pod, Deployment and DaemonSet documents, in file order. */
  pods: (LoadedPod & { owner: PodOwner })[];
  jobs: KubeJob[];
  services: KubeService[];
  /** Warnings about the file as a whole (skipped kinds, services); each pod has its own. */
  warnings: Warning[];
}

const metadata = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.optional(),
  labels: labelMap.optional(),
  annotations: annotationMap.optional(),
});

const labelSelector = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z.array(z.strictObject({
    key: z.string(),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })).optional(),
});

const template = z.strictObject({
  metadata: z.strictObject({
    name: z.string().optional(),
    labels: labelMap.optional(),
    annotations: annotationMap.optional(),
  }).optional(),
  spec: z.record(z.string(), z.unknown()),
});

/** Rollout fields: they steer how a cluster replaces pods, which `kube play` does at once. */
const rollout = {
  minReadySeconds: z.number().int().min(0).optional(),
  revisionHistoryLimit: z.number().int().min(0).optional(),
};

const deployment = z.strictObject({
  apiVersion: z.literal("apps/v1"),
  kind: z.literal("Deployment"),
  metadata,
  spec: z.strictObject({
    replicas: z.number().int().min(0).optional(),
    selector: labelSelector,
    template,
    strategy: z.record(z.string(), z.unknown()).optional(),
    progressDeadlineSeconds: z.number().int().min(1).optional(),
    paused: z.boolean().optional(),
    ...rollout,
  }),
});

const daemonSet = z.strictObject({
  apiVersion: z.literal("apps/v1"),
  kind: z.literal("DaemonSet"),
  metadata,
  spec: z.strictObject({
    selector: labelSelector,
    template,
    updateStrategy: z.record(z.string(), z.unknown()).optional(),
    ...rollout,
  }),
});

const job = z.strictObject({
  apiVersion: z.literal("batch/v1"),
  kind: z.literal("Job"),
  metadata,
  spec: z.strictObject({
    template,
    completions: z.number().int().min(0).optional(),
    parallelism: z.number().int().min(0).optional(),
    backoffLimit: z.number().int().min(0).optional(),
    activeDeadlineSeconds: z.number().int().min(1).optional(),
    ttlSecondsAfterFinished: z.number().int().min(0).optional(),
    completionMode: z.enum(["NonIndexed", "Indexed"]).optional(),
    suspend: z.boolean().optional(),
    selector: labelSelector.optional(),
    manualSelector: z.boolean().optional(),
    podReplacementPolicy: z.enum(["TerminatingOrFailed", "Failed"]).optional(),
    podFailurePolicy: z.unknown().optional(),
    successPolicy: z.unknown().optional(),
    backoffLimitPerIndex: z.number().int().min(0).optional(),
    maxFailedIndexes: z.number().int().min(0).optional(),
    managedBy: z.string().optional(),
  }),
});

const servicePort = z.strictObject({
  name: z.string().optional(),
  protocol: z.enum(["TCP", "UDP", "SCTP"]).optional(),
  appProtocol: z.string().optional(),
  port: z.number().int().min(1).max(65535),
  targetPort: z.union([z.number().int().min(1).max(65535), z.string().min(1)]).optional(),
  nodePort: z.number().int().min(1).max(65535).optional(),
});

const service = z.strictObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Service"),
  metadata,
  spec: z.object({
    type: z.enum(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]).optional(),
    selector: z.record(z.string(), z.string()).optional(),
    ports: z.array(servicePort).optional(),
  }).passthrough(),
});

/** Fields the API server writes into any object; `kubectl get -o yaml` and podman keep them. */
function serverSet(key: string, path: readonly PathSegment[]): boolean {
  return (path.length === 0 && key === "status") ||
    (path.length === 1 && path[0] === "metadata" && SERVER_SET.has(key)) ||
    // A template's creationTimestamp: null, as kubectl and kompose write it.
    (path.length === 3 && path[1] === "template" && path[2] === "metadata" &&
      key === "creationTimestamp");
}

function warnAt(src: SourceDoc, path: PathSegment[], message: string): Warning {
  return { file: src.file, ...locate(src, path), path: path.join("."), message };
}

/** Does `labels` satisfy `sel` (matchLabels and matchExpressions, as the API server reads them)? */
export function selects(
  sel: z.output<typeof labelSelector> | Record<string, string>,
  labels: Record<string, string>,
): boolean {
  const s = "matchLabels" in sel || "matchExpressions" in sel
    ? sel as z.output<typeof labelSelector>
    : { matchLabels: sel as Record<string, string> };
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of s.matchExpressions ?? []) {
    const has = e.key in labels;
    const inVals = has && (e.values ?? []).includes(labels[e.key]);
    if (e.operator === "In" && !inVals) return false;
    if (e.operator === "NotIn" && inVals) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

/**
 * A Pod document made of a workload's template: its nodes are the file's own
 * (so every error and warning points at the template's lines), its value a
 * Pod named `podName`.
 */
function podFromTemplate(src: SourceDoc, podName: string): SourceDoc {
  const tmpl = src.doc.getIn(["spec", "template"], true);
  const meta = isMap(tmpl) ? (tmpl as YAMLMap).get("metadata", true) : undefined;
  const spec = isMap(tmpl) ? (tmpl as YAMLMap).get("spec", true) : undefined;
  const map = new YAMLMap();
  map.items.push(new Pair(new Scalar("apiVersion"), new Scalar("v1")));
  map.items.push(new Pair(new Scalar("kind"), new Scalar("Pod")));
  if (meta) map.items.push(new Pair(new Scalar("metadata"), meta));
  if (spec) map.items.push(new Pair(new Scalar("spec"), spec));
  const doc = new Document();
  doc.contents = map;
  const t = (src.value as { spec: { template: Record<string, unknown> } }).spec.template;
  const m = { ...(t.metadata as Record<string, unknown> | undefined ?? {}) };
  delete m.creationTimestamp;
  return {
    file: src.file,
    doc,
    lines: src.lines,
    value: { apiVersion: "v1", kind: "Pod", metadata: { ...m, name: podName }, spec: t.spec },
  };
}

/** A template's name, if given, is the API server's to ignore; rkl names the pods. */
function checkTemplate(
  src: SourceDoc,
  kind: string,
  sel: z.output<typeof labelSelector> | undefined,
  labels: Record<string, string>,
): void {
  if (sel && !selects(sel, labels)) {
    throw specErrorAt(
      src,
      ["spec", "selector"],
      `the selector does not match the template's labels (the API server refuses such a ${kind}): give spec.template.metadata.labels the selector's labels`,
    );
  }
  if (sel && !sel.matchLabels && !sel.matchExpressions) {
    throw specErrorAt(
      src,
      ["spec", "selector"],
      "an empty selector selects every pod; name labels",
    );
  }
}

function loadWorkload(
  src: SourceDoc,
  kind: "Deployment" | "DaemonSet",
  load: (d: SourceDoc) => LoadedPod,
  warnings: Warning[],
): (LoadedPod & { owner: PodOwner })[] {
  const res = kind === "Deployment"
    ? validate(src, deployment, { silent: serverSet })
    : validate(src, daemonSet, { silent: serverSet });
  warnings.push(...res.warnings);
  const d = res.data;
  checkTemplate(src, kind, d.spec.selector, d.spec.template.metadata?.labels ?? {});
  const names = kind === "Deployment"
    ? Array.from(
      { length: (d.spec as { replicas?: number }).replicas ?? 1 },
      (_, i) => `${d.metadata.name}-pod-${i}`,
    )
    : [`${d.metadata.name}-pod`];
  for (const n of names) {
    if (n.length > 63) {
      throw specErrorAt(
        src,
        ["metadata", "name"],
        `its pods' names (${n}) are longer than 63 characters: shorten the name`,
      );
    }
  }
  return names.map((n) => ({
    ...withNamespace(load(podFromTemplate(src, n)), d.metadata.namespace),
    owner: { kind, name: d.metadata.name },
  }));
}

function withNamespace(p: LoadedPod, ns: string | undefined): LoadedPod {
  if (ns) p.spec.namespace = ns;
  return p;
}

function loadJob(src: SourceDoc, load: (d: SourceDoc) => LoadedPod, warnings: Warning[]): KubeJob {
  const { data, warnings: w } = validate(src, job, { silent: serverSet });
  warnings.push(...w);
  const s = data.spec;
  const refuse = (field: string, why: string) => {
    throw specErrorAt(src, ["spec", field], why, { key: true });
  };
  if (s.podFailurePolicy !== undefined) {
    refuse("podFailurePolicy", "not supported: failures count against backoffLimit; remove it");
  }
  if (s.successPolicy !== undefined) {
    refuse("successPolicy", "not supported (it needs completionMode Indexed); remove it");
  }
  if (s.completionMode === "Indexed") {
    refuse("completionMode", "Indexed jobs are not supported; use NonIndexed (the default)");
  }
  if (s.backoffLimitPerIndex !== undefined || s.maxFailedIndexes !== undefined) {
    refuse(
      s.backoffLimitPerIndex !== undefined ? "backoffLimitPerIndex" : "maxFailedIndexes",
      "goes with Indexed jobs, which are not supported; use backoffLimit",
    );
  }
  if (s.suspend) refuse("suspend", "a suspended job never runs here; remove suspend: true");
  if (s.manualSelector) {
    refuse("manualSelector", "rkl labels a job's pods itself; remove manualSelector and selector");
  }
  const policy = (s.template.spec as { restartPolicy?: unknown }).restartPolicy;
  if (policy !== "Never" && policy !== "OnFailure") {
    throw specErrorAt(
      src,
      ["spec", "template", "spec", policy === undefined ? "containers" : "restartPolicy"],
      "a Job's pod needs restartPolicy Never or OnFailure (the API server's rule)",
    );
  }
  const template = withNamespace(
    load(podFromTemplate(src, `${data.metadata.name}-pod-0`)),
    data.metadata.namespace,
  );
  const at = locate(src, ["metadata", "name"]);
  const completions = s.completions ?? 1;
  return {
    name: data.metadata.name,
    template,
    completions,
    parallelism: Math.min(s.parallelism ?? 1, Math.max(completions, 1)),
    backoffLimit: s.backoffLimit ?? 6,
    activeDeadlineSeconds: s.activeDeadlineSeconds,
    ttlSecondsAfterFinished: s.ttlSecondsAfterFinished,
    loc: { file: src.file, ...at },
  };
}

/**
 * A Service's ports, published on the host: `nodePort` when one is given
 * (type NodePort or LoadBalancer), on every address, as a node port is;
 * otherwise `port`, on 127.0.0.1 only, as a cluster IP is reached from inside
 * the cluster only. The traffic goes to the first pod of this file the
 * selector picks (rkl has no kube-proxy to spread it), at `targetPort` (a
 * number, or a container port's name; default `port`).
 */
function applyService(
  src: SourceDoc,
  pods: (LoadedPod & { owner: PodOwner })[],
  warnings: Warning[],
): KubeService | undefined {
  const { data, warnings: w } = validate(src, service, { silent: serverSet });
  warnings.push(...w);
  const name = data.metadata.name;
  const type = data.spec.type ?? "ClusterIP";
  const loc = { file: src.file, ...locate(src, ["metadata", "name"]) };
  if (type === "ExternalName") {
    warnings.push(
      warnAt(
        src,
        ["spec", "type"],
        `Service ${name}: ExternalName is a DNS alias, which rkl does not serve; skipped`,
      ),
    );
    return undefined;
  }
  const sel = data.spec.selector;
  const ports = data.spec.ports ?? [];
  if (!sel || Object.keys(sel).length === 0 || ports.length === 0) {
    warnings.push(
      warnAt(
        src,
        ["spec"],
        `Service ${name} has no selector or no ports: nothing to publish; skipped`,
      ),
    );
    return undefined;
  }
  const chosen = pods.filter((p) => selects(sel, p.spec.labels));
  if (chosen.length === 0) {
    warnings.push(
      warnAt(src, ["spec", "selector"], `Service ${name} selects no pod of this file; skipped`),
    );
    return undefined;
  }
  const target = chosen[0];
  if (chosen.length > 1) {
    warnings.push(warnAt(
      src,
      ["spec", "selector"],
      `Service ${name} selects ${chosen.length} pods; its ports reach ${target.spec.name} only (rkl has no kube-proxy to spread connections); the others are reached at their pod IPs`,
    ));
  }
  const out: KubeService = { name, type, published: [], loc };
  ports.forEach((p, i) => {
    const at: PathSegment[] = ["spec", "ports", i];
    const protocol = p.protocol ?? "TCP";
    if (protocol === "SCTP") {
      throw specErrorAt(src, [...at, "protocol"], "SCTP ports cannot be published; use TCP or UDP");
    }
    const external = p.nodePort !== undefined && type !== "ClusterIP";
    if (p.nodePort !== undefined && type === "ClusterIP") {
      throw specErrorAt(
        src,
        [...at, "nodePort"],
        "a ClusterIP service has no nodePort (the API server refuses it): set type: NodePort",
      );
    }
    const hostPort = external ? p.nodePort! : p.port;
    const hostIP = external ? "0.0.0.0" : "127.0.0.1";
    const tp = p.targetPort ?? p.port;
    let container = target.spec.containers[0];
    let port: number | undefined = typeof tp === "number" ? tp : undefined;
    for (const c of target.spec.containers) {
      const hit = c.spec.ports.find((cp) =>
        typeof tp === "number"
          ? cp.containerPort === tp && (cp.protocol || "TCP").toUpperCase() === protocol
          : cp.name === tp
      );
      if (hit) {
        container = c;
        port = hit.containerPort;
        break;
      }
    }
    if (port === undefined) {
      throw specErrorAt(
        src,
        [...at, "targetPort"],
        `no container of pod ${target.spec.name} has a port named ${JSON.stringify(tp)}`,
      );
    }
    for (const c of target.spec.containers) {
      for (const cp of c.spec.ports) {
        if (cp.hostPort === hostPort && (cp.protocol || "TCP").toUpperCase() === protocol) {
          throw specErrorAt(
            src,
            [...at, external ? "nodePort" : "port"],
            `host port ${hostPort}/${protocol} is already published by pod ${target.spec.name}'s container ${c.spec.name}`,
          );
        }
      }
    }
    const existing = container.spec.ports.find((cp) =>
      cp.containerPort === port && !cp.hostPort &&
      (cp.protocol || "TCP").toUpperCase() === protocol
    );
    if (existing) {
      existing.hostPort = hostPort;
      existing.hostIP = hostIP === "0.0.0.0" ? undefined : hostIP;
    } else {
      container.spec.ports.push({
        containerPort: port,
        hostPort,
        protocol: protocol as "TCP" | "UDP",
        ...(hostIP === "0.0.0.0" ? {} : { hostIP }),
      });
    }
    out.published.push({ hostIP, hostPort, protocol, pod: target.spec.name, port });
  });
  return out;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Loads a Kubernetes file: every kind it holds, as `podman kube play` runs them.
 * `objects` are ConfigMaps, Secrets and claims from `--configmap` files.
 */
export function loadKube(
  text: string,
  file: string,
  options: { baseDir?: string; objects?: KubeObjects; node?: NodeCapacity } = {},
): LoadedKube {
  const baseDir = options.baseDir ?? dirnameOf(file);
  const docs = parseYamlDocuments(text, file);
  const objects = options.objects
    ? {
      configMaps: new Map(options.objects.configMaps),
      secrets: new Map(options.objects.secrets),
      claims: new Set(options.objects.claims),
    }
    : emptyObjects();
  const warnings: Warning[] = [];
  const workloads: SourceDoc[] = [];
  const services: SourceDoc[] = [];
  for (const d of docs) {
    const kind = isMapping(d.value) ? d.value.kind : undefined;
    if (typeof kind === "string" && OBJECT_KINDS.includes(kind)) {
      warnings.push(...addObject(d, objects));
    } else if (kind === "Service") {
      services.push(d);
    } else if (
      kind === undefined || kind === "Pod" || kind === "Deployment" || kind === "DaemonSet" ||
      kind === "Job"
    ) {
      workloads.push(d);
    } else if (typeof kind === "string" && REFUSED_KINDS[kind]) {
      throw specErrorAt(d, ["kind"], `${kind} is not run by rkl: ${REFUSED_KINDS[kind]}`);
    } else {
      const why = typeof kind === "string" && SKIPPED_KINDS.has(kind)
        ? "means nothing on one host"
        : "is not a kind rkl knows";
      warnings.push(warnAt(d, ["kind"], `${JSON.stringify(kind)} ${why}; skipped`));
    }
  }
  const node = options.node ?? nodeCapacity();
  const load = (d: SourceDoc) => podFromDoc(d, baseDir, objects, node);
  const pods: (LoadedPod & { owner: PodOwner })[] = [];
  const jobs: KubeJob[] = [];
  for (const d of workloads) {
    const kind = (d.value as { kind?: string }).kind;
    if (kind === "Deployment" || kind === "DaemonSet") {
      pods.push(...loadWorkload(d, kind, load, warnings));
    } else if (kind === "Job") {
      jobs.push(loadJob(d, load, warnings));
    } else {
      const p = load(d);
      pods.push({ ...p, owner: { kind: "Pod", name: p.spec.name } });
    }
  }
  if (pods.length === 0 && jobs.length === 0) {
    throw new SpecError(
      { file },
      "no Pod, Deployment, DaemonSet or Job in this file (only ConfigMaps, Secrets, claims or skipped kinds)",
    );
  }
  const seen = new Map<string, string>();
  const names: [string, SourceLocation][] = [
    ...pods.map((p): [string, SourceLocation] => [p.spec.name, p.source.at(["metadata", "name"])]),
    ...jobs.map((j): [string, SourceLocation] => [`job ${j.name}`, j.loc]),
  ];
  for (const [n, at] of names) {
    const first = seen.get(n);
    if (first !== undefined) {
      throw new SpecError(
        at,
        `${n.startsWith("job ") ? n : `pod ${JSON.stringify(n)}`} is already made by line ${first}`,
      );
    }
    seen.set(n, String(at.line ?? 0));
  }
  const made: KubeService[] = [];
  for (const d of services) {
    const s = applyService(d, pods, warnings);
    if (s) made.push(s);
  }
  warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { pods, jobs, services: made, warnings };
}
