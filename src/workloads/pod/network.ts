/** A pod's network: its netns and CNI attachment, made at create and released at teardown. */
import { RklError } from "../../errors.ts";
import { hostVeth, type NetConfList, type PortMapping, resultIPv4 } from "../../net/cni.ts";
import { removeIdlePortmapChains, removeNatRulesFor } from "../../net/portmap.ts";
import { cniDown, cniUp } from "../../net/attach.ts";
import { pathExists } from "../../sys/fsutil.ts";
import { createNetns, removeNetns } from "../../sys/netns.ts";
import { trace } from "../../trace.ts";
import {
  bridgeAbsent,
  bridgeGoesWith,
  deleteBridge,
  releaseNetworkIfUnused,
  unusedBridge,
} from "../container/network.ts";
import { linkGone } from "../../sys/linkwatch.ts";
import { cniIdFor, type Host } from "../host.ts";
import { assertPortsFree } from "../ports.ts";
import type { PodRecord } from "./types.ts";

/**
 * Makes the netns (recorded first) and starts CNI ADD in it. ADD runs while
 * the first containers are created, which need the netns file, not the
 * address: the promise it returns records the result, and is awaited before
 * the first start (or before a rollback).
 */
export function startPodNetwork(
  host: Host,
  rec: PodRecord,
  net: {
    netns: string;
    conflist?: NetConfList;
    mappings: PortMapping[];
    save: (durable?: boolean) => void;
  },
): Promise<void> {
  host.fs.mkdir(`${host.paths.runRoot}/netns`, { recursive: true, mode: 0o755 });
  rec.resources.netns = true;
  net.save(false); // the netns file is under the run root: a reboot clears it
  if (host.rootless) host.rootless.createNetns(net.netns);
  else createNetns(host.sys, net.netns, host.fs);
  rec.resources.cni = true;
  // Listed before the ADD that may make the bridge: only that ADD's rollback deletes it.
  if (rec.network && bridgeAbsent(host, net.conflist)) rec.network.newBridge = true;
  net.save();
  const cniId = rec.network?.cniId ?? cniIdFor(host.paths, "p", rec.name);
  const netUp = cniUp(host.cni, {
    cniId,
    netns: net.netns,
    conflist: net.conflist,
    portMappings: net.mappings,
    portsFree: () => assertPortsFree(host, net.mappings, cniId),
    lock: host.lock,
  }).then((result) => {
    if (result && rec.network) {
      rec.network.result = result;
      rec.network.ip = resultIPv4(result);
      net.save(false); // the lease is the plugin's, keyed by the CNI id already recorded
    }
    trace("pod: netns + cni");
  });
  netUp.catch(() => {}); // awaited later, or before the rollback
  return netUp;
}

/**
 * CNI DEL (the IP lease and port rules go with it) and the netns, as far as
 * the record lists them; errors are collected, not thrown. A failed DEL
 * keeps the netns: the retry needs it (see teardown in container.ts).
 */
async function downPodNetwork(host: Host, rec: PodRecord, errors: unknown[]): Promise<void> {
  const before = errors.length;
  const ran = await delPodNetwork(host, rec, errors);
  await finishPodNetwork(host, rec, ran && errors.length === before, errors);
}

/** CNI DEL of the pod's attachment; true when there was one to delete. */
export async function delPodNetwork(
  host: Host,
  rec: PodRecord,
  errors: unknown[],
): Promise<boolean> {
  if (!rec.resources.cni || !rec.netns) return false;
  const cniId = rec.network?.cniId ?? `p_${rec.name}`;
  if (!pathExists(rec.netns, host.fs)) {
    try {
      await removeNatRulesFor(host.cmd, cniId); // see teardown()
    } catch (e) {
      errors.push(e);
    }
  }
  await cniDown(host.cni, {
    cniId,
    netns: rec.netns,
    conflist: rec.network?.conflist,
    portMappings: rec.network?.portMappings ?? [],
    result: rec.network?.result,
  }, (e) => errors.push(e));
  return true;
}

/**
 * After a DEL: portmap's idle chains and, when it goes (bridgeGoesWith), the
 * bridge when no one else uses them (`released` says the DEL ran and
 * succeeded; `bridgeDone`, that the bridge was dealt with already), then the
 * netns, unless an error so far says a retry still needs it.
 */
export async function finishPodNetwork(
  host: Host,
  rec: PodRecord,
  released: boolean,
  errors: unknown[],
  options: { bridgeDone?: boolean } = {},
): Promise<void> {
  const before = errors.length;
  if (released && rec.network) {
    try {
      const user = { kind: "pods" as const, name: rec.name, network: rec.network };
      if (options.bridgeDone) {
        if (rec.network.portMappings.length > 0) await removeIdlePortmapChains(host.cmd, host.lock);
      } else await releaseNetworkIfUnused(host, user);
    } catch (e) {
      errors.push(e);
    }
  }
  const cniFailed = rec.resources.cni && !released && !!rec.netns;
  if (rec.resources.netns && rec.netns && !cniFailed && errors.length === before) {
    try {
      removeNetns(host.sys, rec.netns, host.fs);
    } catch (e) {
      errors.push(e);
    }
  }
}

/**
 * Releases the pod's network and keeps the rest (the CRI's StopPodSandbox):
 * afterwards the record lists no CNI attachment and no netns.
 */
export async function releasePodNetwork(host: Host, rec: PodRecord): Promise<void> {
  const errors: unknown[] = [];
  // The caller holds the store lock: whether the bridge is left unused is
  // known now. The bridge stays with its network (bridgeGoesWith) unless the
  // network is gone; then it goes beside the DEL, once the pod's veth is
  // gone (the first thing the bridge plugin's DEL does), as in the pod's
  // teardown: both hold the kernel's rtnl lock, and DEL's iptables work needs neither.
  const user = rec.resources.cni && rec.netns && rec.network
    ? { kind: "pods" as const, name: rec.name, network: rec.network }
    : undefined;
  const bridge = user && bridgeGoesWith(host, user) ? unusedBridge(host, user) : undefined;
  if (!bridge) await downPodNetwork(host, rec, errors);
  else {
    let delDone!: () => void;
    const delEnded = new Promise<void>((r) => delDone = r);
    let delFailed = false;
    const veth = hostVeth(rec.network?.result, bridge);
    const vethGone = veth ? linkGone(veth, delEnded) : undefined;
    const [ran] = await Promise.all([
      delPodNetwork(host, rec, errors).then((ran) => {
        delFailed = errors.length > 0;
        return ran;
      }).finally(delDone),
      (async () => {
        await (vethGone ?? delEnded);
        if (delFailed) return; // kept for the retry, as a failed DEL keeps the netns
        try {
          await deleteBridge(host, bridge);
        } catch (e) {
          errors.push(e);
        }
      })(),
    ]);
    trace("pod stop: cni del, bridge");
    await finishPodNetwork(host, rec, ran && errors.length === 0, errors, { bridgeDone: true });
  }
  if (errors.length > 0) {
    host.store.put("pods", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot release the network of pod ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  rec.resources.cni = false;
  rec.resources.netns = false;
  host.store.put("pods", rec);
}
