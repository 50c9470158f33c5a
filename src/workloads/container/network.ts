/**
 * Releasing a network a container leaves: portmap's shared chains once no
 * mapping is left, and the network's bridge only in the cases
 * {@linkcode bridgeGoesWith} names (the bridge is the network's, not a
 * workload's).
 */
import { DNS1123_LABEL } from "../../base/names.ts";
import { bridgeName, conflistPath } from "../../net/network.ts";
import { removeIdlePortmapChains } from "../../net/portmap.ts";
import { deleteIdleBridge } from "../../net/hostnet.ts";
import { pathExists } from "../../sys/fsutil.ts";
import type { NetConfList } from "../../net/cni.ts";
import type { StoredRecord } from "../../store/store.ts";
import type { Host } from "../host.ts";
import type { NetworkUser } from "./types.ts";

/**
 * After `user` has left its network: portmap's shared chains once no mapping
 * is left, and the bridge when {@linkcode bridgeGoesWith} says it goes and
 * no other record is on the network. `rollback`: this is the undo of the
 * create that attached `user`.
 */
export async function releaseNetworkIfUnused(
  host: Host,
  user: NetworkUser,
  keepBridges?: ReadonlySet<string>,
  rollback = false,
): Promise<void> {
  if (user.network.portMappings.length > 0) await removeIdlePortmapChains(host.cmd, host.lock);
  if (!bridgeGoesWith(host, user, rollback)) return;
  const bridge = unusedBridge(host, user);
  if (bridge && !keepBridges?.has(bridge)) await deleteBridge(host, bridge);
}

/**
 * Whether the last user's leaving takes the network's bridge with it. The
 * bridge plugin makes it on the first ADD and never deletes it; rkl keeps it
 * too, as podman (podman0), docker (docker0) and the kubelet's CNI bridge
 * (cni0) do: it is part of the network, not of a workload, and deleting it at
 * every last `rm` cost that `rm` 35-50 ms of the kernel's rtnl lock and the
 * next create as much again to make it. `rkl gc` deletes idle bridges. Two
 * leavings still take it:
 * - the network is gone (its conflist removed, as compose down removes a
 *   project's): nothing else would ever delete the bridge;
 * - `rollback` of the create whose ADD made it (`newBridge`: no such link
 *   before that ADD): a failed command leaves the host as it found it.
 */
export function bridgeGoesWith(host: Host, user: NetworkUser, rollback = false): boolean {
  if (rollback && user.network.newBridge === true) return true;
  return networkRemoved(host, user.network.name);
}

/** True when this root's conf dir no longer holds network `name` (a record's name, checked). */
export function networkRemoved(host: Host, name: string): boolean {
  if (typeof name !== "string" || !DNS1123_LABEL.test(name) || name.length > 15) return false;
  return !pathExists(conflistPath(host.paths.cniConfDir, name), host.fs);
}

/**
 * Whether the bridge of `conflist` is absent now (asked just before an ADD:
 * that ADD makes it, and the ADD's rollback may delete it).
 */
export function bridgeAbsent(host: Host, conflist: NetConfList | undefined): boolean {
  const bridge = conflist ? bridgeName(conflist) : undefined;
  if (!bridge || !/^[A-Za-z0-9_.-]{1,15}$/.test(bridge) || /^\.\.?$/.test(bridge)) return false;
  return !pathExists(`/sys/class/net/${bridge}`, host.fs);
}

/**
 * The bridge of `user`'s network when no other record is on that network
 * (asked under the store lock, so no create can join it meanwhile). A
 * damaged record may still be on it and keeps it (gc removes it later),
 * unless `going` names it: records being removed with `user` (a pod's members;
 * `goingPods`, other pods removed with it).
 */
export function unusedBridge(
  host: Host,
  user: NetworkUser,
  going: ReadonlySet<string> = new Set(),
  /** Pods being removed with `user` (several pods torn down together, kube down). */
  goingPods: ReadonlySet<string> = new Set(),
): string | undefined {
  const bridge = bridgeName(user.network.conflist);
  if (!bridge) return undefined;
  for (const kind of ["containers", "pods"] as const) {
    if (host.store.damaged(kind).some((d) => !(kind === "containers" && going.has(d.name)))) {
      return undefined;
    }
    const others = host.store.list<
      StoredRecord & { network?: { name: string }; extraNetworks?: { name: string }[] }
    >(kind)
      .filter((r) =>
        !(kind === user.kind && r.name === user.name) &&
        !(kind === "containers" && going.has(r.name)) &&
        !(kind === "pods" && goingPods.has(r.name)) &&
        (r.network?.name === user.network.name ||
          (r.extraNetworks ?? []).some((x) => x.name === user.network.name))
      );
    if (others.length > 0) return undefined;
  }
  return bridge;
}

/**
 * Deletes a bridge this root no longer uses, unless an interface of anyone
 * (another root sharing it through its own conflist, another CNI user) is
 * still attached: checked under the host-wide lock (see net/hostnet.ts).
 */
export async function deleteBridge(host: Host, bridge: string): Promise<void> {
  await deleteIdleBridge(host.cmd, bridge, { fs: host.fs, lock: host.lock });
}
