/** A made pod's life: start, run (create and start), stop and remove. */
import { ConflictError } from "../../errors.ts";
import type { LoadedPod } from "../../spec/pod.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { trace } from "../../trace.ts";
import { cancellable } from "../../cancel.ts";
import {
  type ContainerRecord,
  getContainer,
  refresh,
  refuseWhileBeingMade,
  startCreated,
  stopContainer,
} from "../container.ts";
import type { Host } from "../host.ts";
import { createPod } from "./create.ts";
import { ensureProbeMonitor } from "./probe_monitor.ts";
import { teardownPod, teardownPods } from "./teardown.ts";
import { removePod } from "./remove.ts";
import { getPod, type PodRecord } from "./types.ts";

// `pod rm` lives in remove.ts (its modules are the teardown's alone); importable from here as before.
export { removalsSettled, removePod } from "./remove.ts";

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
    await host.store.withLock(() => teardownPod(host, rec, { rollback: true })).catch((e2) =>
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
