/** The container's conmon: started with the runtime's create, waited for, killed when it hangs. */
import { type CgroupManager, primeAttach, readOptional } from "../../sys/cgroups/mod.ts";
import type { HostFs } from "../../sys/fs.ts";
import { callTimeoutMs } from "../../timeouts.ts";
import type { Host } from "../host.ts";
import { dirExists } from "./_fs.ts";
import { processAlive } from "./record.ts";
import type { ContainerRecord } from "./types.ts";

/** conmon + `runtime create` of the container's bundle; sets pid and status "created". */
export async function launch(host: Host, rec: ContainerRecord): Promise<void> {
  const d = rec.dirs;
  // Again, in case the wait primed at "create: begin" is over by now, and
  // until the runtime's create has answered.
  const primed = keepAttachPrimed(host.cgroups);
  try {
    rec.pid = await host.proc.createWithConmon({
      conmon: host.conmon,
      runtime: host.runtimeFor(rec.runtime),
      id: rec.id,
      name: rec.name,
      bundle: d.bundle,
      workDir: d.conmonDir,
      logPath: d.log,
      exitDir: d.exitDir,
      socketDir: d.socketDir,
      logSizeMax: host.logSizeMax,
      terminal: rec.terminal,
      stdin: rec.stdin,
    });
  } finally {
    primed.stop();
  }
  rec.pidStart = host.proc.stat(rec.pid)?.startTime;
  rec.status = "created";
}

/** How often the runtime's attach is primed again while conmon and the runtime create. */
export const PRIME_EVERY_MS = 2;

/**
 * primeAttach() now and then every PRIME_EVERY_MS until stop(). One prime
 * spares a writer to `cgroup.procs` the RCU grace period only until about
 * one grace period after it (primeAttach); the runtime's first attach comes
 * some 5-15 ms after conmon's spawn (conmon's start, the runtime's start, its
 * config), often after that, and then waited 10-13 ms (strace of `youki
 * create` here). Primed again and again, the window stays open until the
 * create has answered: some 15 writes of this process's pid to the cgroup it
 * is in, each moving nothing (what the kernel's `favordynmods` mount option
 * does for good). Nothing when this host has no such file (rootless, fakes).
 */
export function keepAttachPrimed(
  cgroups: CgroupManager,
  procSelfCgroup: string | undefined = readOptional("/proc/self/cgroup"),
): { stop(): void; done: Promise<void> } {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const file = procSelfCgroup === undefined ? undefined : cgroups.ownProcsFile(procSelfCgroup);
  const done = file === undefined ? Promise.resolve() : (async () => {
    while (!stopped) {
      await primeAttach(cgroups, procSelfCgroup);
      if (stopped) break;
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, PRIME_EVERY_MS);
      });
    }
  })();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
    done,
  };
}

/** conmon's pid from its pid file, if it wrote one. */
function conmonPid(fs: HostFs, conmonDir: string): number | undefined {
  try {
    const pid = Number(fs.readTextFile(`${conmonDir}/conmon.pid`).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * conmon exits right after its container; wait for it so its files can go.
 * With `kill`, a conmon still there after the wait (its runtime call hung)
 * is killed with its process group, which holds that runtime call.
 */
export async function waitConmonGone(
  host: Host,
  conmonDir: string,
  options: { kill?: boolean } = {},
): Promise<void> {
  const pid = conmonPid(host.fs, conmonDir);
  if (pid === undefined) return;
  const start = host.proc.stat(pid)?.startTime;
  for (let i = 0; i < 100 && processAlive(host, pid); i++) await host.sleep(20);
  if (!options.kill || !processAlive(host, pid) || host.proc.stat(pid)?.startTime !== start) {
    return;
  }
  killConmonGroup(host, conmonDir);
  for (let i = 0; i < 100 && processAlive(host, pid); i++) await host.sleep(20);
}

/**
 * For a create that was interrupted: waits until the conmon it started has
 * either made the container (its pid file) or exited, so that a teardown
 * does not race with a runtime create still under way.
 */
export async function settleConmon(host: Host, conmonDir: string): Promise<void> {
  const deadline = Date.now() + callTimeoutMs(60_000);
  // conmon writes its pid file at once; give a just-spawned one a moment.
  for (let i = 0; i < 50 && conmonPid(host.fs, conmonDir) === undefined; i++) {
    if (!dirExists(host.fs, conmonDir)) return;
    await host.sleep(20);
  }
  const pid = conmonPid(host.fs, conmonDir);
  if (pid === undefined) return;
  while (Date.now() < deadline && processAlive(host, pid)) {
    try {
      host.fs.stat(`${conmonDir}/pid`);
      return; // the runtime created the container: delete can take it from here
    } catch { /* not yet */ }
    await host.sleep(20);
  }
}

/** SIGKILL to the process group of the conmon in `conmonDir` (it leads its own; see oci/conmon.ts). */
function killConmonGroup(host: Pick<Host, "fs" | "proc">, conmonDir: string): void {
  const pid = conmonPid(host.fs, conmonDir);
  if (pid === undefined) return;
  try {
    host.proc.kill(-pid, "SIGKILL");
  } catch { /* gone */ }
}
