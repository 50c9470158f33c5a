/**
 * A sandbox's CNI attachments: `lo` through the loopback plugin, and `eth0`
 * through the network's conflist when there is one. The two are independent,
 * so ADD and DEL run them side by side. Shared by single containers and pods.
 */
import {
  type CniClient,
  type CniResult,
  LOOPBACK,
  type NetConfList,
  type PortMapping,
} from "./cni.ts";
import { withPortmapLock } from "./portmap.ts";

export interface SandboxNet {
  cniId: string;
  netns: string;
  conflist?: NetConfList;
  portMappings: PortMapping[];
}

/** ADD of lo and eth0; the eth0 result, if any. */
export async function cniUp(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  if (n.conflist && n.portMappings.length > 0) {
    return await withPortmapLock(false, () => cniUpNow(cni, n));
  }
  return await cniUpNow(cni, n);
}

async function cniUpNow(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  const [, result] = await Promise.all([
    cni.add(LOOPBACK, { containerId: n.cniId, netns: n.netns, ifName: "lo" }),
    n.conflist
      ? cni.add(n.conflist, {
        containerId: n.cniId,
        netns: n.netns,
        ifName: "eth0",
        capabilityArgs: { portMappings: n.portMappings },
      })
      : undefined,
  ]);
  return result;
}

/** DEL of eth0 (with its ADD result) and lo. Both are tried; errors go to `onError`. */
export async function cniDown(
  cni: CniClient,
  n: SandboxNet & { result?: CniResult },
  onError: (e: unknown) => void,
): Promise<void> {
  await Promise.all([
    n.conflist
      ? cni.del(n.conflist, {
        containerId: n.cniId,
        netns: n.netns,
        ifName: "eth0",
        capabilityArgs: { portMappings: n.portMappings },
      }, n.result).catch(onError)
      : undefined,
    cni.del(LOOPBACK, { containerId: n.cniId, netns: n.netns, ifName: "lo" }).catch(onError),
  ]);
}
