/** Job: its template and its rules, for the job monitor (workloads/kube.ts). */
import { lazy } from "../../base/lazy.ts";
import * as z from "../zod.ts";
import { locate, type SourceDoc, specErrorAt, validate, type Warning } from "../source.ts";
import type { LoadedPod } from "../pod.ts";
import {
  type KubeJob,
  labelSelector,
  metadata,
  podFromTemplate,
  serverSet,
  template,
  withNamespace,
} from "./common.ts";

// Schemas are built on first use (lazy): a file without this kind never pays for building them.
const jobSchema = lazy(() =>
  z.strictObject({
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
  })
);

export function loadJob(
  src: SourceDoc,
  load: (d: SourceDoc) => LoadedPod,
  warnings: Warning[],
): KubeJob {
  const { data, warnings: w } = validate(src, jobSchema(), { silent: serverSet });
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
