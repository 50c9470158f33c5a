/**
 * The CRI's mapping of the core's field paths to proto field paths, so that
 * an error the core raises while it makes a sandbox or container names the
 * request field it came from (`CreateContainer: config.image.image: ...`).
 */
import type { SpecSource } from "../spec/container.ts";

/**
 * How the CRI locates an error the core raises. The core takes a workload
 * and a source (SpecSource) and names a bad field by its path in the
 * workload (`["image"]`, `["securityContext", "seccompProfile",
 * "localhostProfile"]`); for YAML that is a file:line:col, for the CRI it is
 * the request field the value came from. Each entry maps a workload path
 * (`#` for any index) to that proto field path, with the indices carried
 * over. A path below an entry is located at the entry's field (the deepest
 * one known); a path with no entry (a default of rkl's, a field the CRI
 * cannot set) at the request's root. No field is made up.
 */
export type FieldMap = readonly (readonly [readonly (string | number)[], string])[];

/** CreateContainer: ContainerSpec paths → ContainerConfig fields (see containerRequest). */
export const CONTAINER_FIELDS: FieldMap = [
  [["name"], "config.metadata.name"],
  [["image"], "config.image.image"],
  [["command"], "config.command"],
  [["args"], "config.args"],
  [["env", "#"], "config.envs[#]"],
  [["env", "#", "name"], "config.envs[#].key"],
  [["env", "#", "value"], "config.envs[#].value"],
  [["workingDir"], "config.working_dir"],
  [["mounts", "#"], "config.mounts[#]"],
  [["mounts", "#", "source"], "config.mounts[#].host_path"],
  [["mounts", "#", "destination"], "config.mounts[#].container_path"],
  [["devices", "#"], "config.devices[#]"],
  [["resources"], "config.linux.resources"],
  [["tty"], "config.tty"],
  [["stdin"], "config.stdin"],
  [["stdinOnce"], "config.stdin_once"],
  [["securityContext"], "config.linux.security_context"],
  [["securityContext", "privileged"], "config.linux.security_context.privileged"],
  [["securityContext", "capabilities"], "config.linux.security_context.capabilities"],
  [["securityContext", "runAsUser"], "config.linux.security_context.run_as_user"],
  [["securityContext", "runAsGroup"], "config.linux.security_context.run_as_group"],
  [["securityContext", "readOnlyRootFilesystem"], "config.linux.security_context.readonly_rootfs"],
  [["securityContext", "allowPrivilegeEscalation"], "config.linux.security_context.no_new_privs"],
  [["securityContext", "seccompProfile"], "config.linux.security_context.seccomp"],
  [
    ["securityContext", "seccompProfile", "localhostProfile"],
    "config.linux.security_context.seccomp.localhost_ref",
  ],
  [["userNames"], "config.linux.security_context.run_as_username"],
  [["supplementalGroups"], "config.linux.security_context.supplemental_groups"],
  [["maskedPaths"], "config.linux.security_context.masked_paths"],
  [["readonlyPaths"], "config.linux.security_context.readonly_paths"],
];

/**
 * RunPodSandbox: pod manifest paths → PodSandboxConfig fields (see
 * sandboxPod). The pod's name is rkl's id for it, which no field gives:
 * it is located at the root.
 */
export const SANDBOX_FIELDS: FieldMap = [
  [["metadata", "namespace"], "config.metadata.namespace"],
  [["metadata", "uid"], "config.metadata.uid"],
  [["metadata", "labels"], "config.labels"],
  [["metadata", "annotations"], "config.annotations"],
  [["spec", "hostname"], "config.hostname"],
  [["spec", "dnsConfig"], "config.dns_config"],
  [["spec", "hostNetwork"], "config.linux.security_context.namespace_options.network"],
  [["spec", "hostPID"], "config.linux.security_context.namespace_options.pid"],
  [["spec", "shareProcessNamespace"], "config.linux.security_context.namespace_options.pid"],
  [["spec", "hostIPC"], "config.linux.security_context.namespace_options.ipc"],
];

/** The proto field path `fields` gives workload path `path`, or `root`. */
export function fieldPath(
  fields: FieldMap,
  root: string,
  path: readonly (string | number)[],
): string {
  let best: { len: number; proto: string } | undefined;
  for (const [pattern, proto] of fields) {
    if (pattern.length > path.length || (best && best.len >= pattern.length)) continue;
    const indices: number[] = [];
    let fits = true;
    for (const [i, seg] of pattern.entries()) {
      const at = path[i];
      if (seg === "#" && typeof at === "number") indices.push(at);
      else if (seg !== at) fits = false;
    }
    if (!fits) continue;
    let k = 0;
    best = { len: pattern.length, proto: proto.replaceAll("#", () => String(indices[k++])) };
  }
  return best?.proto ?? root;
}

/** A source for the core whose locations are the request's proto field paths. */
export function requestSource(rpc: string, root: string, fields: FieldMap): SpecSource {
  return {
    file: rpc,
    at: (path) => ({ file: rpc, path: fieldPath(fields, root, path) }),
  };
}
