/**
 * `rkl compose convert`: a compose project as Kubernetes objects that
 * `rkl pod run` (and a kubelet) accept. By default a Pod per service
 * replica, with the ConfigMaps and Secrets its configs and secrets become;
 * with `workloads`, a Deployment, a Service for its ports and a
 * PersistentVolumeClaim per named volume, for a cluster.
 *
 * Names keep resolving: every Pod carries the annotations
 * {@linkcode HOSTS_GROUP} (the project) and {@linkcode HOSTS_NAMES} (the
 * service, container_name and aliases), and rkl writes each pod of a group
 * into the others' /etc/hosts, as it does for compose containers. In a
 * cluster, the Services give the same names through DNS.
 *
 * What has no Kubernetes equivalent is a warning at its line; what cannot be
 * expressed at all (network_mode service:/none) is an error at its line.
 */
import { HOSTS_GROUP, HOSTS_NAMES } from "../spec/names.ts";

export { HOSTS_GROUP, HOSTS_NAMES };
export type { Converted, ConvertOptions } from "./convert/common.ts";
// mounts.ts, container.ts, objects.ts: the parts of one service
export { convertProject } from "./convert/project.ts";
