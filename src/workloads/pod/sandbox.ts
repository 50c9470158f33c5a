/** What a member of a pod is given: the namespaces it joins, its sandbox and the downward API's pod fields. */
import type { PodInfo } from "../../spec/downward.ts";
import type { Sandbox } from "../container.ts";
import type { Host } from "../host.ts";
import type { PodRecord } from "./types.ts";

/** The namespaces a member of the pod joins: pinned files, or the host's. */
export function podJoin(rec: PodRecord): Sandbox["join"] {
  const pins = rec.nsPins ?? {};
  return {
    network: rec.netns ?? "host",
    ipc: rec.hostIPC ? "host" : pins.ipc,
    uts: rec.hostNetwork ? "host" : pins.uts,
    ...(rec.hostPID ? { pid: "host" } : rec.shareProcessNamespace ? { pid: pins.pid } : {}),
  };
}

export function sandboxFor(
  host: Pick<Host, "node">,
  rec: PodRecord,
  recordName: string,
  join: Sandbox["join"],
  cgroupPath: string,
): Sandbox {
  return {
    pod: rec.name,
    recordName,
    hostname: rec.hostname,
    etcDir: rec.dirs.etc,
    join,
    cgroupPath,
    emptyDirs: rec.emptyDirs,
    labels: { "org.rkl.pod": rec.name },
    podInfo: podInfoOf(host, rec),
  };
}

/** The pod's own fields for the downward API. */
export function podInfoOf(host: Pick<Host, "node">, rec: PodRecord): PodInfo {
  const hostIP = hostIPv4(host);
  return {
    name: rec.name,
    namespace: rec.namespace,
    uid: rec.uid ?? "",
    labels: rec.labels,
    annotations: rec.annotations,
    nodeName: nodeName(host),
    serviceAccountName: "default",
    hostIP,
    podIP: rec.hostNetwork ? hostIP : rec.network?.ip ?? "",
  };
}

/** The node name a kubelet would register: the host name, lower case. */
function nodeName(host: Pick<Host, "node">): string {
  try {
    return (host.node?.hostname() ?? "localhost").toLowerCase();
  } catch {
    return "localhost";
  }
}

/** The host's first non-loopback IPv4 address, or 127.0.0.1. */
function hostIPv4(host: Pick<Host, "node">): string {
  try {
    for (const i of host.node?.networkInterfaces() ?? []) {
      if (i.family === "IPv4" && !i.address.startsWith("127.") && !/^(veth|cni|rkl)/.test(i.name)) {
        return i.address;
      }
    }
  } catch { /* no interfaces visible */ }
  return "127.0.0.1";
}
