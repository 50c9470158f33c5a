/**
 * What the daemon tells: its status file (the run root; read by `rkl daemon
 * status`) and, through the event log (src/workloads/event_log.ts), what it did.
 */
import type { Host } from "../workloads/host.ts";

export { appendEvent, type DaemonEvent } from "../workloads/event_log.ts";

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
  };
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
