/**
 * What every RPC group of the CRI server shares: its options, how a CRI id
 * (or a prefix of one) finds its record, and the messages several groups
 * answer with. Sandboxes are pod records and containers are container
 * records, both named by a 64-hex id and marked with `cri`, so `rkl pod list`
 * shows them while the CRI lists only its own (a kubelet never sees, or
 * garbage-collects, a user's pods).
 */
import type { Host } from "../../workloads/host.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import { type ContainerRecord, listExitFiles, quickRefresh } from "../../workloads/container.ts";
import { containerInfo, isCri, sandboxInfo } from "../metadata.ts";
import type { RecordSource } from "../../workloads/record_source.ts";

export { containerInfo, sandboxInfo };
import { CriError, invalid, type Message, notFound, Status } from "../grpc.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { randomHexId } from "../../base/hex.ts";

export interface CriOptions {
  /** The CNI network sandboxes join (rkl's default network). */
  network: string | null;
  /** The streaming server's port on 127.0.0.1 (default: one the kernel picks). */
  streamingPort?: number;
  /**
   * The pause image for sandboxes that share a PID namespace (default
   * registry.k8s.io/pause:3.10; "" for rkl's built-in pause bundle).
   */
  pauseImage?: string;
  /**
   * Runtime handler names RunPodSandbox takes besides "rkl" (a RuntimeClass's
   * handler; the node e2e suite's is "test-handler"), run as rkl's own.
   */
  runtimeHandlers?: string[];
  /** rkl's version, for Version. */
  version: string;
  /** Where notes go (the daemon's log). */
  log?: (line: string) => void;
}

export const DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10";

/** A fresh object id: 64 hex digits from 32 random bytes. */
export function newId(): string {
  return randomHexId();
}

/** Nanoseconds since the epoch, as the int64 string the proto codec takes. */
export function nanos(iso: string | undefined): string {
  if (!iso) return "0";
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? (BigInt(ms) * 1_000_000n).toString() : "0";
}

/** The pod records that are CRI sandboxes (not a user's pods). */
export function criPods(host: Host): PodRecord[] {
  return host.store.list<PodRecord>("pods").filter(isCri);
}

/** The container records the CRI made, but those being removed (server/removals.ts). */
export function criContainers(host: Host): ContainerRecord[] {
  return host.store.list<ContainerRecord>("containers").filter((c) => isCri(c) && !c.removing);
}

/** The one CRI object whose id is `id` or starts with it (crictl's prefixes). */
function byId<T extends { name: string }>(all: T[], id: string, what: string): T | undefined {
  if (!id) throw invalid(`${what} id must be set`);
  const exact = all.find((r) => r.name === id);
  if (exact) return exact;
  const hits = all.filter((r) => r.name.startsWith(id));
  if (hits.length > 1) throw invalid(`${what} id prefix ${id} is ambiguous`);
  return hits[0];
}

const FULL_ID = /^[0-9a-f]{64}$/;

/**
 * The record a whole id names, read alone (a kubelet always sends whole
 * ids: no list of every record for it); undefined when there is none, or it
 * is damaged, or not the CRI's (as a list would leave it out).
 */
function byFullId<T extends { source?: RecordSource; cri?: unknown; removing?: boolean }>(
  host: Host,
  kind: "pods" | "containers",
  id: string,
): T | undefined {
  let r: T | undefined;
  try {
    r = host.store.get<T & { name: string; schemaVersion: number }>(kind, id);
  } catch (e) {
    if (e instanceof DamagedRecordError) return undefined;
    throw e;
  }
  return r && isCri(r) && !r.removing ? r : undefined;
}

/** The CRI sandbox `id` names; NOT_FOUND when there is none. */
export function findSandbox(host: Host, id: string): PodRecord {
  const p = FULL_ID.test(id)
    ? byFullId<PodRecord>(host, "pods", id)
    : byId(criPods(host), id, "sandbox");
  if (!p) throw notFound(`sandbox ${id} is not found`);
  return p;
}

/** The CRI container `id` names; NOT_FOUND when there is none. */
export function findContainer(host: Host, id: string): ContainerRecord {
  const c = FULL_ID.test(id)
    ? byFullId<ContainerRecord>(host, "containers", id)
    : byId(criContainers(host), id, "container");
  if (!c) throw notFound(`container ${id} is not found`);
  return c;
}

/** `find()`'s object, or undefined when it answers NOT_FOUND. */
export function ifExists<T>(find: () => T): T | undefined {
  try {
    return find();
  } catch (e) {
    if (e instanceof CriError && e.code === Status.NOT_FOUND) return undefined;
    throw e;
  }
}

/** The CRI containers a ContainerFilter / ContainerStatsFilter selects (state aside), refreshed. */
export function filteredContainers(host: Host, f: Message): Promise<ContainerRecord[]> {
  const hits = criContainers(host).filter((c) => {
    const m = containerInfo(c);
    return (!f.id || c.name.startsWith(f.id)) &&
      (!f.pod_sandbox_id || m.sandboxId.startsWith(f.pod_sandbox_id)) &&
      labelsMatch(m.labels, f.label_selector);
  });
  const exits = listExitFiles(host, hits.map((c) => c.dirs.exitDir));
  return Promise.all(hits.map((c) => quickRefresh(host, c, exits)));
}

/** A sandbox is ready from its creation until StopPodSandbox. */
export function ready(p: PodRecord): boolean {
  return p.created && sandboxInfo(p).ready;
}

export function labelsMatch(
  labels: Record<string, string>,
  selector: Record<string, string> | null | undefined,
): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

export function sandboxMetadata(p: PodRecord) {
  const c = sandboxInfo(p);
  return { name: c.name, uid: c.uid, namespace: c.namespace, attempt: c.attempt };
}

const STATE: Record<string, string> = {
  creating: "CONTAINER_UNKNOWN",
  created: "CONTAINER_CREATED",
  running: "CONTAINER_RUNNING",
  exited: "CONTAINER_EXITED",
  unknown: "CONTAINER_UNKNOWN",
};

/** A container as ListContainers shows it (ContainerStatus adds to it). */
export function containerBrief(c: ContainerRecord) {
  const m = containerInfo(c);
  return {
    id: c.name,
    pod_sandbox_id: m.sandboxId,
    metadata: { name: m.name, attempt: m.attempt },
    image: { image: m.image },
    image_ref: c.imageId ?? c.image,
    state: STATE[c.status] ?? "CONTAINER_UNKNOWN",
    created_at: nanos(c.createdAt),
    labels: m.labels,
    annotations: m.annotations,
  };
}

/**
 * Disk use of the tree at `dir` as du(1) and containerd's snapshotters count
 * it: the blocks allocated (st_blocks × 512) and the inodes, `dir` itself
 * included, each hard-linked inode once, links not followed (a writable
 * layer's use; the kubelet's ephemeral-storage accounting sums it).
 */
export function diskUse(dir: string): { bytes: number; inodes: number } {
  let bytes = 0;
  const seen = new Set<string>();
  const count = (p: string): boolean => {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(p);
    } catch {
      return false; // gone
    }
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      bytes += st.blocks !== null ? st.blocks * 512 : st.size;
    }
    return st.isDirectory;
  };
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (count(p) && e.isDirectory) walk(p);
    }
  };
  if (count(dir)) walk(dir);
  return { bytes, inodes: seen.size };
}
