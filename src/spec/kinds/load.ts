/** loadKube: a Kubernetes file's documents, each to its kind's loader. */
import { parseYamlDocuments, type SourceDoc, specErrorAt, type Warning } from "../source.ts";
import { addObject, emptyObjects, type KubeObjects, OBJECT_KINDS } from "../objects.ts";
import { type LoadedPod, nodeCapacity, podFromDoc } from "../pod.ts";
import type { NodeCapacity } from "../downward.ts";
import { dirnameOf } from "../paths.ts";
import type { SourceLocation } from "../../errors.ts";
import { SpecError } from "../../errors.ts";
import type { KubeJob, KubeService, LoadedKube, PodOwner } from "./common.ts";
import { warnAt } from "./common.ts";
import { loadWorkload } from "./deployment.ts";
import { loadJob } from "./job.ts";
import { applyService } from "./service.ts";
import { REFUSED_KINDS, SKIPPED_KINDS } from "./skipped.ts";

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
