/** A made pod's life: start, run (create and start), stop and remove. */
import { ConflictError } from "../../errors.ts";
import type { LoadedPod } from "../../spec/pod.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { trace } from "../../trace.ts";
import { cancellable } from "../../cancel.ts";
import {
  type ContainerRecord,
  getContainer,
  ownerGone,
  refresh,
  refuseWhileBeingMade,
  selfOwner,
  startCreated,
  stopContainer,
} from "../container.ts";
import type { Host } from "../host.ts";
import { scavengePod } from "../scavenge.ts";
import { createPod } from "./create.ts";
import { ensureProbeMonitor } from "./probe_monitor.ts";
import { podMembersOnHost, podView } from "./status.ts";
import { teardownPod, teardownPods } from "./teardown.ts";
import { getPod, type PodRecord } from "./types.ts";

/** Starts the app containers of a created pod. */
export async function startPod(
  host: Host,
  name: string,
  options: { justCreated?: boolean } = {},
): Promise<PodRecord> {
  return await host.store.withLock(async () => {
    const rec = getPod(host, name);
    if (!rec.created) {
      throw new ConflictError(
        `Cannot start pod ${JSON.stringify(name)}: it is still being created`,
      );
    }
    // Members this command has just created need no runtime state call: the
    // records say "created" (or "running" if someone started them meanwhile).
    const members = await Promise.all(
      rec.containers.map((m) =>
        options.justCreated ? getContainer(host, m) : refresh(host, getContainer(host, m))
      ),
    );
    const bad = members.find((c) => c.status !== "created" && c.status !== "running");
    if (bad) {
      throw new ConflictError(
        `Cannot start pod ${JSON.stringify(name)}: container ${
          JSON.stringify(bad.name)
        } is ${bad.status}`,
        {
          hint: "remove the pod and run it again",
        },
      );
    }
    const toStart = members.filter((c) => c.status === "created");
    if (toStart.some((c) => c.hooks?.postStart)) {
      // As the kubelet: in order, each postStart done before the next starts.
      for (const c of toStart) await startCreated(host, c);
    } else await Promise.all(toStart.map((c) => startCreated(host, c)));
    rec.startedAt ??= host.now().toISOString();
    // Not synced: after a reboot nothing of the pod runs, whatever this said.
    host.store.put("pods", rec, { durable: false });
    trace("pod: started");
    // Its probes run for as long as it lives (a static pod's by the daemon).
    ensureProbeMonitor(host, rec);
    return rec;
  });
}

export function runPod(
  host: Host,
  loaded: LoadedPod,
  options: { network: string | null; static?: { file: string; hash: string } },
): Promise<PodRecord> {
  return cancellable(() => runPodNow(host, loaded, options));
}

async function runPodNow(
  host: Host,
  loaded: LoadedPod,
  options: { network: string | null; static?: { file: string; hash: string } },
): Promise<PodRecord> {
  const rec = await createPod(host, loaded, options);
  try {
    return await startPod(host, rec.name, { justCreated: true });
  } catch (e) {
    await host.store.withLock(() => teardownPod(host, rec)).catch((e2) =>
      host.warn(`Cannot roll back pod ${JSON.stringify(rec.name)}: ${(e2 as Error).message}`)
    );
    throw e;
  }
}

/** Stops the app containers (in parallel, each with the grace period), then the pause container. */
export async function stopPod(host: Host, name: string, timeoutSec?: number): Promise<PodRecord> {
  const rec = getPod(host, name);
  const grace = timeoutSec ?? rec.terminationGracePeriodSeconds;
  await Promise.all(
    // One the CRI is removing has stopped, and its record may go any moment.
    rec.containers.filter((m) => {
      const c = host.store.get<ContainerRecord>("containers", m);
      return c && !c.removing;
    }).map((m) => stopContainer(host, m, grace, { byUser: true })),
  );
  // Sidecars outlive the app containers they serve, and stop after them (the kubelet's order).
  for (const m of [...(rec.sidecars ?? [])].reverse()) {
    if (host.store.get("containers", m)) await stopContainer(host, m, grace, { byUser: true });
  }
  if (rec.pause && host.store.get("containers", rec.pause)) await stopContainer(host, rec.pause, 0);
  return rec;
}

/**
 * `pod rm`. With `early` (the daemon serving a thin client) it answers once
 * the pod's containers are gone and the pod is marked removing, and the rest
 * of the teardown (CNI DEL, the idle bridge, the namespaces, cgroup and dirs:
 * 30-50 ms) goes on in this process after the answer, under the same hold of
 * the store lock: a later command that takes the lock (a `pod run` of the
 * name) waits for it to end, and the readers skip a pod marked removing
 * (getPod, listPods). A removal cut short (the daemon killed) is finished by
 * the next `pod rm -f`, `pod run` of the name or `gc`.
 */
export async function removePod(
  host: Host,
  name: string,
  options: { force?: boolean; early?: boolean } = {},
): Promise<void> {
  let rec: PodRecord;
  try {
    // A pod marked removing is gone to everyone but rm, which finishes a removal cut short.
    const left = host.store.get<PodRecord>("pods", name);
    rec = left?.removing && ownerGone(host, left.remover) ? left : getPod(host, name);
  } catch (e) {
    if (!(e instanceof DamagedRecordError) || !options.force) throw e;
    host.warn(`${e.message}; removing what the host holds for pod ${JSON.stringify(name)}`);
    await scavengePod(host, name, podMembersOnHost(host, name));
    return;
  }
  trace("pod rm: begin");
  refuseWhileBeingMade(host, name, "pod", rec.created ? undefined : rec.owner);
  if (!options.force) {
    const view = await podView(host, rec);
    const interrupted = !rec.created && ownerGone(host, rec.owner);
    if (view.phase === "Running" || (view.phase === "Creating" && !interrupted)) {
      throw new ConflictError(
        `Cannot remove pod ${JSON.stringify(name)}: it is ${view.phase.toLowerCase()}`,
        {
          hint: "stop it first, or use rm -f",
        },
      );
    }
  }
  if (options.early && rec.created) await removeEarly(host, name);
  else await host.store.withLock(() => teardownPod(host, rec));
}

/** Teardowns still going on after their `pod rm` answered (removeEarly). */
const going = new Set<Promise<void>>();

/** Resolves once every teardown that went on after its answer has ended (a daemon stopping). */
export async function removalsSettled(): Promise<void> {
  while (going.size > 0) await Promise.all(going);
}

async function removeEarly(host: Host, name: string): Promise<void> {
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => answer = resolve);
  let early = false;
  const work = host.store.withLock(async () => {
    const rec = host.store.get<PodRecord>("pods", name);
    if (!rec) return; // removed meanwhile, by whoever held the lock before
    // Synced: a pod that answered as removed must not come back after a power cut.
    rec.removing = true;
    rec.remover = selfOwner(host);
    host.store.put("pods", rec);
    await teardownPod(host, rec, {
      membersGone: () => {
        early = true;
        answer();
      },
    });
  });
  work.catch(() => {}); // its error goes to the caller, or to the log below
  await Promise.race([answered, work]);
  if (!early) return;
  const rest = work.catch((e) => {
    // The answer has gone: the record is seen again, for the next rm -f.
    console.error(`rkl: pod rm ${name}, after the answer: ${(e as Error).message}`);
  }).finally(() => going.delete(rest));
  going.add(rest);
}

/**
 * `rm -f` of several pods side by side (`kube down`, the pods a second
 * `kube play` replaces): their records read and torn down under one hold of
 * the store lock (see teardownPods), a damaged record cleaned by name after.
 * A pod that another live process is still creating is refused, the others
 * go. Returns the names removed (a name with no record is skipped); throws
 * the first error once every removal has ended.
 */
export async function removePods(host: Host, names: string[]): Promise<string[]> {
  const damaged: string[] = [];
  const removed: string[] = [];
  const failures: unknown[] = [];
  await host.store.withLock(async () => {
    const recs: PodRecord[] = [];
    for (const name of names) {
      try {
        const rec = host.store.get<PodRecord>("pods", name);
        if (!rec) continue;
        trace("pod rm: begin");
        refuseWhileBeingMade(host, name, "pod", rec.created ? undefined : rec.owner);
        recs.push(rec);
      } catch (e) {
        if (e instanceof DamagedRecordError) damaged.push(name);
        else failures.push(e);
      }
    }
    const results = await teardownPods(host, recs);
    results.forEach((r, i) => {
      if (r.status === "fulfilled") removed.push(recs[i].name);
      else failures.push(r.reason);
    });
  });
  for (const name of damaged) {
    try {
      await removePod(host, name, { force: true });
      removed.push(name);
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length > 0) throw failures[0];
  return removed;
}
