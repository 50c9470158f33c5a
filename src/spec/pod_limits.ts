/**
 * A pod's limits that the workloads read at run time: resolv.conf's and the
 * node's capacity. Kept apart from pod.ts, whose schemas (zod) and parser
 * (yaml) a command that only removes or lists pods never needs to load.
 */
import type { NodeCapacity } from "./downward.ts";

/** Limits of a pod's resolv.conf (the API server's and kubelet's, ExpandedDNSConfig). */
export const MAX_NAMESERVERS = 3;
export const MAX_SEARCHES = 32;
export const MAX_SEARCH_CHARS = 2048;

/** The node's capacity, for resourceFieldRef without a limit. */
export function nodeCapacity(): NodeCapacity {
  let memoryBytes = 0;
  try {
    memoryBytes = Deno.systemMemoryInfo().total;
  } catch { /* not on Linux */ }
  return { cpus: navigator.hardwareConcurrency || 1, memoryBytes };
}
