/**
 * A sandbox's CNI attachment: `eth0` through the network's conflist when
 * there is one. `lo` needs no plugin: it is set up when the namespace is
 * made (sys/netns.ts). Shared by single containers and pods.
 */
import type { CniClient, CniResult, NetConfList, PluginConf, PortMapping } from "./cni.ts";
import { PORTMAP_ADD_LOCK, withPortmapLock } from "./portmap.ts";

export interface SandboxNet {
  cniId: string;
  netns: string;
  conflist?: NetConfList;
  portMappings: PortMapping[];
}

/** ADD of eth0; its result, if any. */
export async function cniUp(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  if (n.conflist && n.portMappings.length > 0) {
    return await withPortmapLock(false, () => cniUpNow(cni, n));
  }
  return await cniUpNow(cni, n);
}

async function cniUpNow(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  if (!n.conflist) return undefined;
  return await cni.add(n.conflist, {
    containerId: n.cniId,
    netns: n.netns,
    ifName: "eth0",
    capabilityArgs: { portMappings: n.portMappings },
  }, oneAtATime);
}

/**
 * portmap makes its shared chains with a check then a create, so two ADDs
 * side by side can both see a chain missing and the second fails with
 * "File exists". rkl runs one portmap ADD at a time on the host; the other
 * plugins of the chain still run side by side.
 */
function oneAtATime<T>(plugin: PluginConf, run: () => Promise<T>): Promise<T> {
  return plugin.type === "portmap" ? withPortmapLock(true, run, PORTMAP_ADD_LOCK) : run();
}

/** DEL of eth0 (with its ADD result); an error goes to `onError`. */
export async function cniDown(
  cni: CniClient,
  n: SandboxNet & { result?: CniResult },
  onError: (e: unknown) => void,
): Promise<void> {
  if (!n.conflist) return;
  await cni.del(n.conflist, {
    containerId: n.cniId,
    netns: n.netns,
    ifName: "eth0",
    capabilityArgs: { portMappings: n.portMappings },
  }, n.result).catch(onError);
}
