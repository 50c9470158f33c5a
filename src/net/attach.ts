/**
 * A sandbox's CNI attachment: `eth0` through the network's conflist when
 * there is one. `lo` needs no plugin: it is set up when the namespace is
 * made (sys/netns.ts). Shared by single containers and pods.
 */
import type { CniClient, CniResult, NetConfList, PluginConf, PortMapping } from "./cni.ts";
import { PORTMAP_ADD_LOCK, withPortmapLock } from "./portmap.ts";
import { HOST_NET_LOCK, type HostLock, withHostLock } from "./hostnet.ts";

export interface SandboxNet {
  cniId: string;
  netns: string;
  conflist?: NetConfList;
  portMappings: PortMapping[];
  /** A fixed address and MAC for eth0 (plugins that declare `ips` / `mac`). */
  fixed?: { ips?: string[]; mac?: string };
  /**
   * Throws when a host port is taken by then: run right before portmap's
   * ADD, inside the host-wide lock that runs one such ADD at a time.
   */
  portsFree?: () => Promise<void>;
  /** The host-wide locks (default: flock on files under /run/lock). */
  lock?: HostLock;
}

/** ADD of eth0; its result, if any. */
export async function cniUp(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  if (n.conflist && n.portMappings.length > 0) {
    return await withPortmapLock(false, () => cniUpNow(cni, n), undefined, n.lock);
  }
  return await cniUpNow(cni, n);
}

async function cniUpNow(cni: CniClient, n: SandboxNet): Promise<CniResult | undefined> {
  if (!n.conflist) return undefined;
  return await cni.add(n.conflist, {
    containerId: n.cniId,
    netns: n.netns,
    ifName: "eth0",
    capabilityArgs: { portMappings: n.portMappings, ...n.fixed },
  }, hostLocks(n.portsFree, n.lock));
}

/**
 * The host-wide locks around a plugin's ADD:
 * - portmap makes its shared chains with a check then a create, so two ADDs
 *   side by side can both see a chain missing and the second fails with
 *   "File exists". rkl runs one portmap ADD at a time on the host, and checks
 *   in it that no one forwards the ports by now (`portsFree`);
 * - bridge attaches a veth to a bridge that another root's teardown may be
 *   deleting once it has no port: its ADD holds the host network lock shared,
 *   and that deletion holds it alone (hostnet.ts).
 * The other plugins of the chain, and ADDs of other containers, still run
 * side by side.
 */
export function hostLocks(
  portsFree?: () => Promise<void>,
  lock?: HostLock,
): <T>(plugin: PluginConf, run: () => Promise<T>) => Promise<T> {
  return <T>(plugin: PluginConf, run: () => Promise<T>): Promise<T> => {
    if (plugin.type === "portmap") {
      return withPortmapLock(
        true,
        async () => {
          await portsFree?.();
          return await run();
        },
        PORTMAP_ADD_LOCK,
        lock,
      );
    }
    if (plugin.type === "bridge") return withHostLock(HOST_NET_LOCK, false, run, lock);
    return run();
  };
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
