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
export { RUN_KINDS, SKIPPED_KINDS } from "./kinds/skipped.ts";
export {
  type KubeJob,
  type KubeService,
  type LoadedKube,
  type PodOwner,
  selects,
} from "./kinds/common.ts";
export { loadKube } from "./kinds/load.ts";
