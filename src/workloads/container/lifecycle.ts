/** A container's life after create: start, run (create + start), stop, restart in place. */
import { ConflictError, RklError } from "../../errors.ts";
import { readExitCode } from "../../oci/conmon.ts";
import type { LoadedContainer } from "../../spec/container.ts";
import type { StoredRecord } from "../../store/store.ts";
import { trace } from "../../trace.ts";
import { cancellable } from "../../cancel.ts";
import { runExecHooks, runHook } from "../hooks.ts";
import { ensureHealthMonitor } from "../health_spawn.ts";
import type { Host } from "../host.ts";
import { about, noteEvent } from "../event_log.ts";
import { signalNumber } from "../signals.ts";
import { removeAll } from "./_fs.ts";
import { launch, waitConmonGone } from "./conmon.ts";
import { createContainer, launchDeferred, stageSubPaths } from "./create.ts";
import { getContainer, updateContainer } from "./record.ts";
import { markExited, quickRefresh, refresh, signaledAt } from "./status.ts";
import { deleteWithRetry, rollback } from "./teardown.ts";
import type { ContainerRecord } from "./types.ts";

/**
 * Restarts an exited container in place, as the kubelet does: same bundle,
 * rootfs view, namespaces and cgroup path; a new process, log appended,
 * `restarts` + 1.
 */
export async function restartContainer(
  host: Host,
  name: string,
  options: { byUser?: boolean } = {},
): Promise<ContainerRecord> {
  return await host.store.withLock(async () => {
    const rec = getContainer(host, name);
    if (rec.deferred) {
      // Stopped before it ever started: nothing of a launch to undo.
      await launchDeferred(host, rec);
    } else {
      await deleteWithRetry(host, rec);
      await waitConmonGone(host, rec.dirs.conmonDir);
      removeAll(host.fs, `${rec.dirs.exitDir}/${rec.id}`);
      // Resolved again: the volume may have changed under the subPath since.
      stageSubPaths(host, rec);
      await launch(host, rec);
    }
    // A user's start or restart sets the count back to 0, as docker's does.
    rec.restarts = options.byUser ? 0 : (rec.restarts ?? 0) + 1;
    rec.exitCode = undefined;
    rec.finishedAt = undefined;
    rec.stoppedByUser = false;
    host.store.put("containers", rec);
    return await startCreated(host, rec);
  });
}

/** Starts a created container (its status asked of the runtime first). */
export async function startContainer(host: Host, name: string): Promise<ContainerRecord> {
  return await host.store.withLock(async () => {
    const rec = await refresh(host, getContainer(host, name));
    return await startCreated(host, rec);
  });
}

/** Starts a container known to be "created" (checked again here, without asking the runtime). */
export async function startCreated(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  if (rec.status !== "created") {
    throw new ConflictError(
      `Cannot start container ${JSON.stringify(rec.name)}: it is ${rec.status}, not created`,
      { hint: rec.status === "exited" ? "remove it and run it again" : undefined },
    );
  }
  if (rec.deferred) {
    try {
      await launchDeferred(host, rec);
    } catch (e) {
      // Saved as it now is (its parts listed for the teardown, no owner):
      // its status asks the runtime from here on.
      host.store.put("containers", rec);
      throw e;
    }
  }
  // Taken before the start: a process that exits at once (`true`) must not have died
  // (conmon's exit file's time) before it started.
  const startedAt = host.now().toISOString();
  await host.runtimeFor(rec.runtime).start(rec.id);
  rec.status = "running";
  rec.startedAt = startedAt;
  // Not synced: a process does not outlive a reboot, and a status is asked of the runtime.
  host.store.put("containers", rec, { durable: false });
  if (rec.healthcheck && host.selfArgv) ensureHealthMonitor(host);
  const hook = rec.hooks?.postStart;
  if (hook || rec.hooks?.postStartExec) {
    const why = hook
      ? await runHook(host, hookTarget(host, rec), hook, HOOK_TIMEOUT_MS)
      : await runExecHooks(host, rec, rec.hooks?.postStartExec, HOOK_TIMEOUT_MS);
    if (why !== undefined) {
      // As the kubelet: a failed postStart kills the container; the start failed.
      await signal(host, rec, "SIGKILL");
      throw new RklError(
        "EHOOK",
        `Cannot start container ${JSON.stringify(rec.name)}: its postStart hook failed: ${why}`,
      );
    }
  }
  return rec;
}

/** postStart has no timeout in Kubernetes; here it may not hold a command forever. */
const HOOK_TIMEOUT_MS = 120_000;

function hookTarget(host: Host, rec: ContainerRecord) {
  let ip = rec.network?.ip;
  if (!ip && rec.pod && !rec.hostNetwork) {
    try {
      ip = host.store.get<{ network?: { ip?: string } } & StoredRecord>("pods", rec.pod)?.network
        ?.ip;
    } catch { /* a damaged pod record: exec hooks still work */ }
  }
  return { ...rec, ip };
}

/** create + start; a failed start removes what create made. */
export function runContainer(
  host: Host,
  loaded: LoadedContainer,
  options: { network: string | null; strictLimits?: boolean },
): Promise<ContainerRecord> {
  return cancellable(() => runContainerNow(host, loaded, options));
}

async function runContainerNow(
  host: Host,
  loaded: LoadedContainer,
  options: { network: string | null; strictLimits?: boolean },
): Promise<ContainerRecord> {
  const rec = await createContainer(host, loaded, { ...options, thenStart: true });
  try {
    // Just created by us: no need to ask the runtime for its state first.
    const started = await host.store.withLock(() => startCreated(host, rec));
    trace("run: started");
    return started;
  } catch (e) {
    await rollback(host, rec, e);
    throw e;
  }
}

/** SIGTERM, up to `timeoutSec` for the container to exit, then SIGKILL. */
export async function stopContainer(
  host: Host,
  name: string,
  timeoutSec = 10,
  options: {
    byUser?: boolean;
    /**
     * The stop signal goes to the container's init alone, as containerd and
     * CRI-O send it for the kubelet (a shell that traps SIGTERM keeps its
     * children until the SIGKILL); the SIGKILL still reaches every process.
     */
    stopSignalToInitOnly?: boolean;
  } = {},
): Promise<ContainerRecord> {
  let rec = await quickRefresh(host, getContainer(host, name));
  if (rec.deferred && rec.status === "created") {
    // Never launched: nothing to signal. It ends as a stopped created one does.
    const finishedAt = host.now().toISOString();
    return await updateContainer(host, name, (r) => {
      if (r.status !== "created" || !r.deferred) return;
      r.status = "exited";
      r.finishedAt ??= finishedAt;
      if (options.byUser) r.stoppedByUser = true;
    }) ?? rec;
  }
  if (rec.status !== "running" && rec.status !== "created") {
    if (options.byUser && !rec.stoppedByUser) {
      // An exited container waiting for a restart stays stopped.
      return await updateContainer(host, name, (r) => r.stoppedByUser = true) ?? rec;
    }
    return rec;
  }
  // conmon writes the exit file the moment the container ends: watching it
  // costs a stat, where asking the runtime costs a process.
  const exited = () => readExitCode(rec.dirs.exitDir, rec.id, host.fs) !== undefined;
  const waitExit = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (!exited() && Date.now() < deadline) await host.sleep(10);
    return exited();
  };
  let graceMs = timeoutSec * 1000;
  const preStop = rec.hooks?.preStop;
  if ((preStop || rec.hooks?.preStopExec) && rec.status === "running") {
    // Within the grace period; what is left of it (at least 2 s, as the
    // kubelet gives) is the signal's.
    const t0 = Date.now();
    const why = preStop
      ? await runHook(host, hookTarget(host, rec), preStop, graceMs)
      : await runExecHooks(host, rec, rec.hooks?.preStopExec, graceMs);
    if (why !== undefined) {
      host.warn(`container ${JSON.stringify(rec.name)}: preStop hook failed: ${why}`);
    }
    graceMs = Math.max(2_000, graceMs - (Date.now() - t0));
  }
  await signal(host, rec, rec.stopSignal ?? "SIGTERM", !options.stopSignalToInitOnly);
  if (!(await waitExit(graceMs))) {
    await signal(host, rec, "SIGKILL");
    await waitExit(5_000);
  }
  // docker's order: kill (above), die (the record's exit), stop.
  noteEvent(host, { action: "stop", ...about(rec) });
  // conmon wrote the exit file after it reaped the container: it is stopped,
  // no runtime call needed to say so. Without the file, ask the runtime.
  const code = readExitCode(rec.dirs.exitDir, rec.id, host.fs);
  if (code !== undefined) markExited(host, rec, code);
  else rec = await refresh(host, rec);
  const finishedAt = rec.finishedAt ?? host.now().toISOString();
  return await updateContainer(host, name, (r) => {
    r.status = rec.status;
    r.pid = rec.pid;
    r.exitCode = rec.exitCode;
    r.finishedAt ??= finishedAt;
    // Another look may have timed the exit first, from the file alone: not before the kill.
    if (rec.signaledAt) signaledAt(r, rec.signaledAt);
    if (options.byUser) r.stoppedByUser = true;
  }) ?? rec;
}

/**
 * Sends `sig` to every process of the container (`all`), or to its init; one
 * that exited meanwhile is no error.
 */
async function signal(
  host: Host,
  rec: ContainerRecord,
  sig: string,
  all = true,
): Promise<void> {
  const at = host.now();
  try {
    // Rootless, the runtime has no cgroup to find every process by; the
    // container's init is its PID namespace's, whose end ends the rest.
    await host.runtimeFor(rec.runtime).kill(rec.id, sig, { all: all && !host.rootless });
  } catch (e) {
    // Exited between our look and the signal: not an error.
    const now = await refresh(host, rec);
    if (now.status === "running" || now.status === "created") throw e;
    return;
  }
  noteKill(host, rec, sig, at);
}

/** docker's `kill` event, with the signal's number as its `signal` attribute, sent at `at`. */
export function noteKill(host: Host, rec: ContainerRecord, sig: string, at: Date): void {
  // Alive when the signal came: its exit, timed from a coarse file clock, is not put before it.
  rec.signaledAt = at.toISOString();
  const n = signalNumber(sig);
  noteEvent(host, {
    action: "kill",
    ...about(rec),
    signal: n === undefined ? sig : String(n),
  }, at);
}

/**
 * `rkl kill`, `compose kill`: sends `sig` (as parseSignal gives it) to the
 * container's main process. Refused when it is not running.
 */
export async function killContainer(
  host: Host,
  name: string,
  sig: string,
): Promise<ContainerRecord> {
  const rec = await quickRefresh(host, getContainer(host, name));
  if (rec.status !== "running") {
    throw new ConflictError(`Cannot kill container ${JSON.stringify(name)}: it is not running`);
  }
  const at = host.now();
  await host.runtimeFor(rec.runtime).kill(rec.id, sig);
  noteKill(host, rec, sig, at);
  // Kept, so that whoever sees the exit later does not time it before this kill.
  await updateContainer(host, name, (r) => {
    if (r.id === rec.id && r.createdAt === rec.createdAt) signaledAt(r, at.toISOString());
  });
  return rec;
}
