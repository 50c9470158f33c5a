/** Deployment and DaemonSet: pods from a template, named by podman's rule. */
import { lazy } from "../../base/lazy.ts";
import * as z from "../zod.ts";
import { type SourceDoc, specErrorAt, validate, type Warning } from "../source.ts";
import type { LoadedPod } from "../pod.ts";
import {
  checkTemplate,
  labelSelector,
  metadata,
  podFromTemplate,
  type PodOwner,
  serverSet,
  template,
  withNamespace,
} from "./common.ts";

/** Rollout fields: they steer how a cluster replaces pods, which `kube play` does at once. */
const rollout = {
  minReadySeconds: z.number().int().min(0).optional(),
  revisionHistoryLimit: z.number().int().min(0).optional(),
};

// Schemas are built on first use (lazy): a file without this kind never pays for building them.
const deploymentSchema = lazy(() =>
  z.strictObject({
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
  })
);

const daemonSetSchema = lazy(() =>
  z.strictObject({
    apiVersion: z.literal("apps/v1"),
    kind: z.literal("DaemonSet"),
    metadata,
    spec: z.strictObject({
      selector: labelSelector,
      template,
      updateStrategy: z.record(z.string(), z.unknown()).optional(),
      ...rollout,
    }),
  })
);

export function loadWorkload(
  src: SourceDoc,
  kind: "Deployment" | "DaemonSet",
  load: (d: SourceDoc) => LoadedPod,
  warnings: Warning[],
): (LoadedPod & { owner: PodOwner })[] {
  const res = kind === "Deployment"
    ? validate(src, deploymentSchema(), { silent: serverSet })
    : validate(src, daemonSetSchema(), { silent: serverSet });
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
