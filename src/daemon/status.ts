/**
 * What the daemon tells: its status file (the run root; read by `rkl daemon
 * status`) and its event log (the state root, one JSON line per event).
 */
import type { Action } from "./reconcile.ts";
import type { ProbeKind } from "../workloads/probes.ts";
import type { Host } from "../workloads/host.ts";

export interface DaemonEvent {
  time: string;
  action: Action["kind"] | "error" | "start" | "stop" | "restart" | "probe" | "rename";
  probe?: ProbeKind;
  container?: string;
  /** A rename's old name (`rkl rename` appends it; docker's `oldName` attribute). */
  oldName?: string;
  image?: string;
  exitCode?: number;
  pod?: string;
  file?: string;
  hash?: string;
  error?: string;
}

export interface DaemonStatus {
  pid: number;
  /** Start time of `pid` (/proc/PID/stat), to tell a live daemon from a reused pid. */
  pidStart?: number;
  startedAt: string;
  manifests: string;
  lastSync: string;
  errors: Record<string, string>;
  pods: Record<
    string,
    { file: string; hash: string; lastError?: string; ready?: boolean; working?: string }
  >;
}

export function daemonPaths(host: Host) {
  return {
    status: `${host.paths.runRoot}/daemon/status.json`,
    events: `${host.paths.root}/daemon/events.jsonl`,
  };
}

export function appendEvent(host: Host, e: Omit<DaemonEvent, "time">): void {
  const p = daemonPaths(host).events;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(p, JSON.stringify({ time: host.now().toISOString(), ...e }) + "\n", {
    append: true,
    mode: 0o600,
  });
}

export function writeStatus(host: Host, st: DaemonStatus): void {
  const p = daemonPaths(host).status;
  Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  const tmp = `${p}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, p);
}

export function readStatus(host: Host): DaemonStatus | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(daemonPaths(host).status));
  } catch {
    return undefined;
  }
}
