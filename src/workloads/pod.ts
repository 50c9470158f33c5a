/**
 * Kubernetes pods: the pod's network, IPC and UTS namespaces are pinned as
 * files under the run root with no process holding them; only a pod with
 * shareProcessNamespace gets a pause container (catatonit -P) to be PID 1 of
 * the shared PID namespace. The work containers join them all by path. The pod owns the netns, the CNI attachment,
 * the /etc files, the emptyDir volumes and a pod-level cgroup whose limits
 * rkl writes itself; each container keeps its own limits below it.
 *
 * Rollback works as for containers: the pod record lists what has been made
 * (`resources`, `members`) before it is made, and {@linkcode teardownPod}
 * undoes exactly that, so a failed create, `pod rm` and the cleanup after a
 * crash are one code path.
 *
 * The code lives in pod/, one file per job: types, plan, prepare, create,
 * volumes, etc, network, sandbox, pause, teardown, status, lifecycle.
 */
export type {
  CreatePodOptions,
  PodContainerView,
  PodPhase,
  PodRecord,
  PodView,
} from "./pod/types.ts";
export { getPod, memberName, nsDir, podDirs } from "./pod/types.ts";
export { buildPauseBundle, pauseBundle } from "./pod/pause.ts";
export { podLimits } from "./pod/plan.ts";
export { addPodContainer, createPod, forgetPodContainer } from "./pod/create.ts";
export { podInfoOf, podJoin, sandboxFor } from "./pod/sandbox.ts";
export { dnsResolvConf, writeGroupHosts } from "./pod/etc.ts";
export { releasePodNetwork } from "./pod/network.ts";
export { teardownPod, teardownPods } from "./pod/teardown.ts";
export { listPods, podMember, podMembersOnHost, podPhase, podView } from "./pod/status.ts";
export { removePod, removePods, runPod, startPod, stopPod } from "./pod/lifecycle.ts";
