/** What the workload kinds share: the loaded shapes, metadata, selectors, templates. */
import { Document, isMap, Pair, Scalar, YAMLMap } from "../yaml.ts";
import * as z from "../zod.ts";
import { locate, type PathSegment, type SourceDoc, specErrorAt, type Warning } from "../source.ts";
import { SERVER_SET } from "../objects.ts";
import { annotationMap, dnsLabel, labelMap } from "../schema.ts";
import type { LoadedPod } from "../pod.ts";
import type { SourceLocation } from "../../errors.ts";

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

export const metadata = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.optional(),
  labels: labelMap.optional(),
  annotations: annotationMap.optional(),
});

export const labelSelector = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z.array(z.strictObject({
    key: z.string(),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })).optional(),
});

export const template = z.strictObject({
  metadata: z.strictObject({
    name: z.string().optional(),
    labels: labelMap.optional(),
    annotations: annotationMap.optional(),
  }).optional(),
  spec: z.record(z.string(), z.unknown()),
});

/** Fields the API server writes into any object; `kubectl get -o yaml` and podman keep them. */
export function serverSet(key: string, path: readonly PathSegment[]): boolean {
  return (path.length === 0 && key === "status") ||
    (path.length === 1 && path[0] === "metadata" && SERVER_SET.has(key)) ||
    // A template's creationTimestamp: null, as kubectl and kompose write it.
    (path.length === 3 && path[1] === "template" && path[2] === "metadata" &&
      key === "creationTimestamp");
}

export function warnAt(src: SourceDoc, path: PathSegment[], message: string): Warning {
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
export function podFromTemplate(src: SourceDoc, podName: string): SourceDoc {
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
export function checkTemplate(
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

export function withNamespace(p: LoadedPod, ns: string | undefined): LoadedPod {
  if (ns) p.spec.namespace = ns;
  return p;
}
