/**
 * `pod rm` of one pod. Its modules are the teardown's (teardown.ts, the
 * containers' teardown and the network's release), not the create path's:
 * an in-process `pod rm -f` loads about 30 fewer modules than through
 * lifecycle.ts (8-10 ms on a 2-core host). The pod's view (status.ts, for a
 * removal without -f) and the damaged-record scan are loaded when needed.
 */
import { ConflictError } from "../../errors.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { trace } from "../../trace.ts";
import { ownerGone, refuseWhileBeingMade, selfOwner } from "../container/record.ts";
import type { Host } from "../host.ts";
import { scavengePod } from "../scavenge.ts";
import { teardownPod } from "./teardown.ts";
import { getPod, type PodRecord } from "./types.ts";

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
    const { podMembersOnHost } = await import("./status.ts");
    await scavengePod(host, name, podMembersOnHost(host, name));
    return;
  }
  trace("pod rm: begin");
  refuseWhileBeingMade(host, name, "pod", rec.created ? undefined : rec.owner);
  if (!options.force) {
    const { podView } = await import("./status.ts");
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
