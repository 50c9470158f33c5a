/**
 * Starting the health monitor (health.ts), kept apart so that container.ts
 * can start it when a container with a healthcheck starts, without loading
 * the monitor itself.
 */
import { pidLockOwner } from "../sys/pidlock.ts";
import { cloexecInheritedFds } from "../sys/cloexec.ts";
import type { Host } from "./host.ts";

export function healthDir(host: Pick<Host, "paths">): string {
  return `${host.paths.runRoot}/health`;
}

/** A container's health state file (removed with the container). */
export function healthFile(host: Pick<Host, "paths">, name: string): string {
  return `${healthDir(host)}/${name}.json`;
}

/** Starts the monitor for this run root unless one runs. */
export function ensureHealthMonitor(host: Host): void {
  const argv = host.selfArgv;
  if (!argv) throw new TypeError("this host cannot start helper processes (no selfArgv)");
  Deno.mkdirSync(healthDir(host), { recursive: true, mode: 0o700 });
  if (pidLockOwner(`${healthDir(host)}/monitor.pid`) !== undefined) return;
  // It outlives this command: no fd of this process's caller goes along.
  cloexecInheritedFds();
  // Its own session (setsid), so the terminal's ^C for `up` does not reach it.
  const child = new Deno.Command("setsid", {
    args: [
      ...argv,
      "--root",
      host.paths.root,
      "--run-root",
      host.paths.runRoot,
      "__health-monitor",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  child.unref();
  child.status.catch(() => {});
}
