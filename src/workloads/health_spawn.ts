/**
 * Starting the health monitor (health.ts), kept apart so that container.ts
 * can start it when a container with a healthcheck starts, without loading
 * the monitor itself.
 */
import { pidLockOwner } from "../sys/pidlock.ts";
import type { Host } from "./host.ts";

export function healthDir(host: Pick<Host, "paths">): string {
  return `${host.paths.runRoot}/health`;
}

/** A container's health state file (removed with the container). */
export function healthFile(host: Pick<Host, "paths">, name: string): string {
  return `${healthDir(host)}/${name}.json`;
}

/** Starts the monitor for this run root unless one runs. */
export function ensureHealthMonitor(host: Pick<Host, "paths" | "fs" | "proc" | "selfArgv">): void {
  const argv = host.selfArgv;
  const spawn = host.proc.spawnDetached;
  if (!argv || !spawn) {
    throw new TypeError("this host cannot start helper processes (no selfArgv)");
  }
  host.fs.mkdir(healthDir(host), { recursive: true, mode: 0o700 });
  if (pidLockOwner(`${healthDir(host)}/monitor.pid`) !== undefined) return;
  spawn([...argv, "--root", host.paths.root, "--run-root", host.paths.runRoot, "__health-monitor"]);
}
