/**
 * A pod's teardown: undoes whatever the record lists, members first. A
 * failed create, `pod rm` and the cleanup after a crash all come here.
 */
import { RklError } from "../../errors.ts";
import { hostVeth } from "../../net/cni.ts";
import { HOSTS_GROUP } from "../../spec/names.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { removeBelow } from "../../sys/fsutil.ts";
import { linkGone } from "../../sys/linkwatch.ts";
import { unmount } from "../../sys/mounts.ts";
import { removeNetns } from "../../sys/netns.ts";
import { trace } from "../../trace.ts";
import {
  type ContainerRecord,
  deleteBridge,
  removeCgroup,
  removeEmptyParent,
  removeUnmounted,
  teardown,
  unusedBridge,
} from "../container.ts";
import type { Host } from "../host.ts";
import { scavengeContainer } from "../scavenge.ts";
import { writeGroupHosts } from "./etc.ts";
import { delPodNetwork, finishPodNetwork } from "./network.ts";
import { nsDir, podDirs, type PodRecord } from "./types.ts";

/**
 * Undoes whatever the record lists, containers first. Idempotent. Runs under
 * the store lock (taken here if the caller has not), so whether the network
 * is left unused cannot change while it runs.
 */
export function teardownPod(host: Host, rec: PodRecord): Promise<void> {
  return host.store.withLock(() => teardownPodLocked(host, rec));
}

async function teardownPodLocked(host: Host, rec: PodRecord): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => unknown | Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  const members = [...rec.containers, ...rec.initContainers];
  const down = async (m: string) => {
    let c: ContainerRecord | undefined;
    try {
      c = host.store.get<ContainerRecord>("containers", m);
    } catch (e) {
      if (!(e instanceof DamagedRecordError)) throw e;
      await scavengeContainer(host, m);
      return;
    }
    if (c) await teardown(host, c);
  };
  // The members, CNI DEL and the idle bridge go side by side: the netns is a
  // pinned file, so DEL needs none of the members' processes, and neither
  // DEL nor the members need the bridge. Whether the bridge is idle is known
  // now: only this pod and its members (damaged records too) are going.
  const user = rec.resources.cni && rec.netns && rec.network
    ? { kind: "pods" as const, name: rec.name, network: rec.network }
    : undefined;
  const bridge = user
    ? unusedBridge(host, user, new Set([...members, ...(rec.pause ? [rec.pause] : [])]))
    : undefined;
  const cniErrors: unknown[] = [];
  // The bridge goes once DEL has deleted the pod's veth (the first thing the
  // bridge plugin does): both hold the kernel's rtnl lock, and a bridge
  // deleted first would hold up the rest of DEL for its whole 35-50 ms.
  const veth = bridge ? hostVeth(rec.network?.result, bridge) : undefined;
  let delDone!: () => void;
  const delEnded = new Promise<void>((r) => delDone = r);
  const vethGone = veth ? linkGone(veth, delEnded) : undefined;
  const [, cniDone] = await Promise.all([
    (async () => {
      await Promise.all(members.map((m) => step(() => down(m))));
      if (rec.pause) await step(() => down(rec.pause!));
    })(),
    delPodNetwork(host, rec, cniErrors).finally(delDone),
    bridge
      ? (async () => {
        // A veth not known by name: after the DEL, which deletes it (the
        // bridge is deleted only once no port of anyone is attached).
        await (vethGone ?? delEnded);
        await step(() => deleteBridge(host, bridge));
      })()
      : undefined,
  ]);
  errors.push(...cniErrors);
  trace("pod teardown: members, cni del, bridge");
  await finishPodNetwork(host, rec, cniDone && cniErrors.length === 0, errors, {
    bridgeDone: true,
  });
  if (rec.resources.nsPins) {
    const dir = nsDir(host, rec.name);
    for (const t of ["ipc", "uts", "pid"]) {
      await step(() => removeNetns(host.sys, `${dir}/${t}`, host.fs));
    }
    await step(() =>
      removeBelow(`${host.paths.runRoot}/ns`, dir, `pod ${rec.name} namespaces`, host.fs)
    );
  }
  if (rec.resources.cgroup) {
    await step(() => removeCgroup(host, rec.cgroupPath));
    // A parent the CRI gave is the kubelet's (its pod cgroup): not ours to remove.
    if (rec.cgroupPath === `${host.cgroupParent}/pod-${rec.name}`) {
      await step(() => removeEmptyParent(host, rec.cgroupPath));
    }
  }
  for (const dir of rec.memoryDirs ?? []) await step(() => unmount(host.sys, dir));
  if (rec.resources.imageVolumes) {
    for (const iv of Object.values(rec.imageVolumes ?? {})) {
      await step(() => unmount(host.sys, iv.dir));
    }
  }
  if (rec.resources.dir) {
    // Tolerates a dir already gone (a teardown that failed later), refuses a mounted one.
    await step(() => removeUnmounted(host, podDirs(host, rec.name).dir));
  }
  if (errors.length > 0) {
    host.store.put("pods", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot remove everything of pod ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  host.store.delete("pods", rec.name);
  trace("pod teardown: done");
  const group = rec.annotations?.[HOSTS_GROUP];
  if (group) writeGroupHosts(host, group);
}
