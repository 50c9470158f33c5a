/**
 * Releasing a network a container leaves: the bridge plugin makes its bridge
 * on the first ADD and never deletes it, so rkl deletes it (and portmap's
 * shared chains) once no record is on that network any more.
 */
import { bridgeName } from "../../net/network.ts";
import { removeIdlePortmapChains } from "../../net/portmap.ts";
import { deleteIdleBridge } from "../../net/hostnet.ts";
import type { StoredRecord } from "../../store/store.ts";
import type { Host } from "../host.ts";
import type { NetworkUser } from "./types.ts";

/**
 * The bridge plugin creates its bridge on first ADD and never deletes it;
 * like podman, rkl removes it when the last container on the network goes,
 * together with portmap's shared chains once no mapping is left.
 */
export async function releaseNetworkIfUnused(
  host: Host,
  user: NetworkUser,
  keepBridges?: ReadonlySet<string>,
): Promise<void> {
  if (user.network.portMappings.length > 0) await removeIdlePortmapChains(host.cmd, host.lock);
  const bridge = unusedBridge(host, user);
  if (bridge && !keepBridges?.has(bridge)) await deleteBridge(host, bridge);
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
