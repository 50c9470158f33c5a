/**
 * Sandbox operations the front ends share, beyond create and remove: stop a
 * sandbox (its containers stopped, its network released, the pod record kept
 * so that its status can still be read). The CRI's StopPodSandbox calls this;
 * the daemon and CLI can too.
 */
import type { Host } from "./host.ts";
import { type PodRecord, releasePodNetwork, stopPod } from "./pod.ts";

export interface StopSandboxOptions {
  /** Seconds each container gets between its stop signal and SIGKILL (default: the pod's grace). */
  timeoutS?: number;
  /**
   * Applied to the record under the lock once the network is released, before it is saved:
   * how a front end marks the sandbox stopped in its own metadata.
   */
  mark?: (rec: PodRecord) => void;
}

/**
 * Stops every container of pod `name` and releases its network (CNI DEL,
 * netns unpinned), keeping the record. Returns the record as saved, or
 * undefined when the pod was removed meanwhile (a pod missing at the start
 * is a NotFoundError).
 */
export async function stopSandbox(
  host: Host,
  name: string,
  options: StopSandboxOptions = {},
): Promise<PodRecord | undefined> {
  await stopPod(host, name, options.timeoutS);
  return await host.store.withLock(async () => {
    const now = host.store.get<PodRecord>("pods", name);
    if (!now) return undefined;
    await releasePodNetwork(host, now);
    options.mark?.(now);
    host.store.put("pods", now);
    return now;
  });
}
