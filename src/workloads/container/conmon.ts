/** The container's conmon: started with the runtime's create, waited for, killed when it hangs. */
import { joinUnified } from "../../sys/cgroups/hybrid.ts";
import { primeAttach } from "../../sys/cgroups/mod.ts";
import { sealedReady } from "../../oci/sealed.ts";
import type { HostFs } from "../../sys/fs.ts";
import { callTimeoutMs } from "../../timeouts.ts";
import type { Host } from "../host.ts";
import { dirExists } from "./_fs.ts";
import { processAlive } from "./record.ts";
import type { ContainerRecord } from "./types.ts";

/** conmon + `runtime create` of the container's bundle; sets pid and status "created". */
export async function launch(host: Host, rec: ContainerRecord): Promise<void> {
  const d = rec.dirs;
  // Again, in case the wait primed at "create: begin" is over by now.
  void primeAttach(host.cgroups);
  // A copy of the runtime still being made (prewarmSealed, cli/direct.ts) is waited for.
  await sealedReady();
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
  rec.pidStart = host.proc.stat(rec.pid)?.startTime;
  rec.status = "created";
  joinUnifiedTwin(host, rec);
}

/**
 * On a hybrid host, the container's init (stopped in its create state) into
 * its cgroup's twin in the unified hierarchy, as runc does and youki 0.7 does
 * not (see sys/cgroups/hybrid.ts): its PSI is read there. Teardown's
 * removeCgroup removes the twin with the v1 directories. A failure only costs
 * the container its PSI: a warning, and the container is kept.
 */
export function joinUnifiedTwin(
  host: Pick<Host, "cgroups" | "rootless" | "warn">,
  rec: Pick<ContainerRecord, "name" | "cgroupPath" | "pid">,
): void {
  if (host.rootless || rec.pid === undefined) return;
  try {
    joinUnified(host.cgroups, rec.cgroupPath, rec.pid);
  } catch (e) {
    host.warn(
      `Cannot put container ${JSON.stringify(rec.name)} into its cgroup v2 twin ` +
        `${rec.cgroupPath} (its PSI is not read): ${(e as Error).message}`,
    );
  }
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
