/**
 * Kubernetes Pod manifests (and rk8s's habit of naming the pause bundle in
 * `metadata.labels.bundle`). A file may hold several documents (`---`); each
 * must be `kind: Pod`. Every container is returned as a LoadedContainer whose
 * locations point into the pod file (`spec.containers[1].image`).
 */
export {
  CONTAINER_KEYS,
  MAX_NAMESERVERS,
  MAX_SEARCH_CHARS,
  MAX_SEARCHES,
  POD_SECURITY_KEYS,
  POD_SPEC_KEYS,
} from "./pod/schema.ts";
export type {
  HostPortMapping,
  ImageVolume,
  LoadedPod,
  PodDns,
  PodResolv,
  PodSpec,
  RestartPolicy,
  VolumeFile,
} from "./pod/types.ts";
export { loadObjects, loadPods, nodeCapacity, podFromDoc } from "./pod/load.ts";
