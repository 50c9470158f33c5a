/**
 * What the CRI keeps on the core's records: RunPodSandbox's and
 * CreateContainer's metadata, as the record's source (kind "cri", its meta
 * opaque to the core). Records written by an rkl from before sources kept
 * the same data in a `cri` field; recordSource() reads those as a CRI
 * source, so both shapes load, and a sandbox written again (StopPodSandbox)
 * is written in the new one.
 */
import type { PodRecord } from "../workloads/pod.ts";
import type { ContainerRecord } from "../workloads/container.ts";
import { type RecordSource, recordSource } from "../workloads/record_source.ts";

/** What the CRI asked for a sandbox, kept for its status and list calls. */
export interface CriSandboxInfo {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
  logDirectory: string;
  runtimeHandler: string;
  /** False once StopPodSandbox ran: containers stopped, network released. */
  ready: boolean;
  /** Namespaced sysctls the sandbox asked for, set in every container of it. */
  sysctls?: Record<string, string>;
}

/** What the CRI asked for a container, kept for its status and list calls. */
export interface CriContainerInfo {
  sandboxId: string;
  name: string;
  attempt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The image as the request named it (a reference or an image id). */
  image: string;
  /** The mounts as asked for, for ContainerStatus. */
  mounts?: CriMount[];
}

/** A Mount as CreateContainer gave it (ContainerStatus answers it back). */
export interface CriMount {
  container_path: string;
  host_path: string;
  readonly: boolean;
  propagation: string;
  recursive_read_only?: boolean;
}

/** The source a sandbox record is made with. */
export function sandboxSource(info: CriSandboxInfo): RecordSource {
  return {
    kind: "cri",
    name: `${info.namespace}/${info.name}`,
    meta: info as unknown as Record<string, unknown>,
  };
}

/** The source a container record is made with. */
export function containerSource(info: CriContainerInfo): RecordSource {
  return { kind: "cri", name: info.name, meta: info as unknown as Record<string, unknown> };
}

function criMeta(rec: { source?: RecordSource; cri?: unknown }): unknown {
  const s = recordSource(rec);
  return s?.kind === "cri" ? s.meta : undefined;
}

/** Whether the CRI made this record (a user's pods and containers are not its). */
export function isCri(rec: { source?: RecordSource; cri?: unknown }): boolean {
  return criMeta(rec) !== undefined;
}

/** The CRI's metadata on a sandbox record (either shape). */
export function sandboxInfo(p: PodRecord): CriSandboxInfo {
  return criMeta(p) as CriSandboxInfo;
}

/** The CRI's metadata on a container record (either shape). */
export function containerInfo(c: ContainerRecord): CriContainerInfo {
  return criMeta(c) as CriContainerInfo;
}

/** Marks a sandbox record not ready (StopPodSandbox), writing it in the current shape. */
export function markNotReady(p: PodRecord): void {
  p.source = sandboxSource({ ...sandboxInfo(p), ready: false });
  delete p.cri;
}
