/**
 * A pod's teardown: undoes whatever the record lists, members first. A
 * failed create, `pod rm` and the cleanup after a crash all come here.
 */
import { noteEvent } from "../event_log.ts";
import { RklError } from "../../errors.ts";
import { hostVeth } from "../../net/cni.ts";
import { HOSTS_GROUP } from "../../spec/names.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { removeBelow } from "../../sys/fsutil.ts";
import { linkGone } from "../../sys/linkwatch.ts";
import { unmount } from "../../sys/mounts.ts";
import { removeNetns } from "../../sys/netns.ts";
import { trace } from "../../trace.ts";
// The containers' teardown by its own modules, not container.ts's (which loads the create path):
// `pod rm` loads this file (remove.ts).
import type { ContainerRecord } from "../container/types.ts";
import {
  removeCgroup,
  removeEmptyParent,
  removeUnmounted,
  teardown,
} from "../container/teardown.ts";
import { bridgeGoesWith, deleteBridge, unusedBridge } from "../container/network.ts";
import type { Host } from "../host.ts";
import { scavengeContainer } from "../scavenge.ts";
import { writeGroupHosts } from "./etc.ts";
import { delPodNetwork, finishPodNetwork } from "./network.ts";
import { nsDir, podDirs, type PodRecord } from "./types.ts";

/**
 * Undoes whatever the record lists, containers first. Idempotent. Runs under
 * the store lock (taken here if the caller has not), so whether the network
 * is left unused cannot change while it runs. The network's bridge stays
 * (bridgeGoesWith) unless the network is gone, or this undoes the create
 * whose ADD made it: `rollback` (a failed `pod run`), or a record whose
 * create never finished (its rollback cut short, finished here).
 */
export function teardownPod(
  host: Host,
  rec: PodRecord,
  options: { membersGone?: () => void; rollback?: boolean } = {},
): Promise<void> {
  return host.store.withLock(async () => {
    const [r] = await teardownPodsLocked(host, [rec], options.membersGone, options.rollback);
    if (r.status === "rejected") throw r.reason;
  });
}

/**
 * Several pods torn down side by side under one hold of the store lock
 * (`kube down`, the pods a second `kube play` replaces): as
 * {@linkcode teardownPod} each, but a bridge that goes (its network gone)
 * and that none but these pods uses is deleted once all their DELs have
 * deleted its veths, beside the rest of their DELs, not by the last pod
 * after them. One result per record, in order.
 */
export function teardownPods(
  host: Host,
  recs: PodRecord[],
): Promise<PromiseSettledResult<void>[]> {
  return host.store.withLock(() => teardownPodsLocked(host, recs));
}

/** A pod's attachment to a network, as unusedBridge asks about it. */
function networkUser(rec: PodRecord) {
  return rec.resources.cni && rec.netns && rec.network
    ? { kind: "pods" as const, name: rec.name, network: rec.network }
    : undefined;
}

async function teardownPodsLocked(
  host: Host,
  recs: PodRecord[],
  membersGone?: () => void,
  rollback = false,
): Promise<PromiseSettledResult<void>[]> {
  // Whether a bridge is idle is known now: only these pods and their members
  // (damaged records too) are going, and no create joins while the lock is held.
  const goingPods = new Set(recs.map((r) => r.name));
  const going = new Set(
    recs.flatMap((r) => [...r.containers, ...r.initContainers, ...(r.pause ? [r.pause] : [])]),
  );
  const idle = new Map<string, { pod: string; veths: string[]; sure: boolean }>();
  for (const rec of recs) {
    const user = networkUser(rec);
    const goes = user && bridgeGoesWith(host, user, rollback || !rec.created);
    const bridge = goes ? unusedBridge(host, user, going, goingPods) : undefined;
    if (!bridge) continue;
    const e = idle.get(bridge) ?? { pod: rec.name, veths: [], sure: true };
    idle.set(bridge, e);
    const veth = hostVeth(rec.network?.result, bridge);
    if (veth) e.veths.push(veth);
    else e.sure = false;
  }
  // Every pod says when its DEL has ended (or it ended before one).
  const delEnded = new Map<string, () => void>();
  const dels = Promise.all(
    recs.map((r) => new Promise<void>((resolve) => delEnded.set(r.name, resolve))),
  );
  // A bridge goes once the DELs have deleted its veths (the first thing the
  // bridge plugin does): both hold the kernel's rtnl lock, and a bridge
  // deleted first would hold up the rest of the DELs for its whole 35-50 ms.
  // Its error counts against the pod it is listed with, whose record then
  // stays for the next rm -f. Subscribed before any DEL starts.
  const bridgeWork = new Map<string, Promise<unknown[]>>();
  for (const [bridge, e] of idle) {
    const gone = Promise.all([
      ...e.veths.map((v) => linkGone(v, dels)),
      ...(e.sure ? [] : [dels]), // a veth not known by name: after the DELs
    ]);
    const prev = bridgeWork.get(e.pod) ?? Promise.resolve([]);
    bridgeWork.set(
      e.pod,
      prev.then(async (errs) => {
        await gone;
        try {
          await deleteBridge(host, bridge);
          return errs;
        } catch (err) {
          return [...errs, err];
        }
      }),
    );
  }
  return await Promise.allSettled(recs.map((rec) =>
    teardownOne(host, rec, {
      delEnded: delEnded.get(rec.name)!,
      bridges: bridgeWork.get(rec.name),
      membersGone,
    })
  ));
}

interface TeardownOptions {
  delEnded: () => void;
  bridges?: Promise<unknown[]>;
  /** Told once every member is torn down without error (the pod's own parts may remain). */
  membersGone?: () => void;
}

async function teardownOne(host: Host, rec: PodRecord, o: TeardownOptions): Promise<void> {
  try {
    await teardownPodBody(host, rec, o);
  } finally {
    o.delEnded(); // never leave another pod's bridge waiting
  }
}

async function teardownPodBody(host: Host, rec: PodRecord, o: TeardownOptions): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => unknown | Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  // The probe monitor first, so that it restarts nothing that is being removed.
  // probe_monitor.ts (and the restart path it loads) only for a pod that has probes.
  const monitor = rec.probes ? await import("./probe_monitor.ts") : undefined;
  if (monitor) await step(() => monitor.stopProbeMonitor(host, rec.name));
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
    // A pod never fully made was never reported made: no destroy for its members either.
    if (c) await teardown(host, c, { quiet: !rec.created });
  };
  // The members, CNI DEL and the idle bridge go side by side: the netns is a
  // pinned file, so DEL needs none of the members' processes, and neither
  // DEL nor the members need the bridge. DEL is started first: its plugin is
  // spawned in this turn, before the members' synchronous steps (the
  // runtime's sealed copy, cgroup reads: 15-25 ms here) instead of after
  // them, and it is the longest of the three (bridge's DEL, 60-95 ms). A
  // removal that answers once its members are gone (`membersGone`, the
  // daemon's early answer) starts the members first: its answer waits on them.
  const cniErrors: unknown[] = [];
  const membersDown = async () => {
    await Promise.all(members.map((m) => step(() => down(m))));
    if (rec.pause) await step(() => down(rec.pause!));
    trace("pod teardown: members gone");
    if (errors.length === 0) o.membersGone?.();
  };
  const delNow = () => delPodNetwork(host, rec, cniErrors).finally(o.delEnded);
  let del: Promise<boolean>;
  let gone: Promise<void>;
  if (o.membersGone) {
    gone = membersDown();
    del = delNow();
  } else {
    del = delNow();
    gone = membersDown();
  }
  const [, cniDone, bridgeErrors] = await Promise.all([gone, del, o.bridges]);
  errors.push(...bridgeErrors ?? []);
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
    // Kept for the next rm -f, and seen again: a removal that ended in errors is no longer under way.
    rec.removing = rec.remover = undefined;
    host.store.put("pods", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot remove everything of pod ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  host.store.delete("pods", rec.name);
  monitor?.dropProbeStop(host, rec.name);
  // docker's `destroy`, as a container's (container/teardown.ts).
  if (rec.created) noteEvent(host, { action: "destroy", pod: rec.name });
  trace("pod teardown: done");
  const group = rec.annotations?.[HOSTS_GROUP];
  if (group) writeGroupHosts(host, group);
}
