/** The kinds a Kubernetes file may hold: run, refused, or skipped. */
import { OBJECT_KINDS } from "../objects.ts";

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
export const REFUSED_KINDS: Record<string, string> = {
  StatefulSet: "run it as a Deployment (pods <name>-pod-<i>) with a PersistentVolumeClaim each",
  ReplicaSet: "write it as a Deployment with the same template and replicas",
  ReplicationController: "write it as a Deployment with the same template and replicas",
  CronJob: "run its jobTemplate as a Job from a timer (cron or a systemd timer)",
  PodTemplate: "write it as a Pod",
};

/** The kinds a file may hold and rkl acts on. */
export const RUN_KINDS = ["Pod", "Deployment", "DaemonSet", "Job", "Service", ...OBJECT_KINDS];
