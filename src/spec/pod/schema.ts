/** The Pod manifest's schema: which PodSpec, PodSecurityContext and Container keys are read. */
import * as z from "../zod.ts";
import {
  annotationMap,
  appArmorProfile,
  containerFields,
  dnsLabel,
  labelMap,
  podVolume,
  resources,
  seccompProfile,
} from "../schema.ts";
import { dnsSubdomainError } from "../names.ts";

import { MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES } from "../pod_limits.ts";
export { MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES };

export const podContainer = z.strictObject({
  ...containerFields,
  /**
   * On an init container, `Always` makes it a native sidecar (Kubernetes 1.29+); `Never` and
   * `OnFailure` (1.34+) say whether a failed run is retried. Refused on app containers (load.ts).
   */
  restartPolicy: z.enum(["Always", "OnFailure", "Never"]).optional(),
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

export const podSchema = z.strictObject({
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
      ip: z.string().ip(),
      hostnames: z.array(
        z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, {
          message: "must be a host name",
        }),
      ).min(1),
    })).optional(),
    dnsPolicy: z.enum(["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]).optional(),
    dnsConfig: z.strictObject({
      nameservers: z.array(z.string().ip({ message: "must be an IP address" }))
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

export type RawContainer = z.output<typeof podContainer>;
