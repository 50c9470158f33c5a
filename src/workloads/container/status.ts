/**
 * A container's status: from conmon's exit file and the recorded pid when
 * they settle it, else from the runtime; a record made before the last
 * reboot is exited without asking anyone.
 */
import { readExitCode } from "../../oci/conmon.ts";
import type { Host } from "../host.ts";
import type { ContainerRecord, ExitFiles } from "./types.ts";

/**
 * Status without asking the runtime: conmon's exit file, or the recorded pid
 * still being the same process (same start time, so a reused pid is not
 * mistaken for it). Anything unclear falls back to {@linkcode refresh}.
 */
export async function quickRefresh(
  host: Host,
  rec: ContainerRecord,
  exits?: ExitFiles,
): Promise<ContainerRecord> {
  if (rec.status === "creating" || rec.status === "exited") return rec;
  if (fromEarlierBoot(host, rec)) return markBootLost(host, rec);
  if (rec.deferred) return rec; // not launched: nothing runs, the record is all there is
  const known = exits?.get(rec.dirs.exitDir);
  if (known === undefined || known.has(rec.id)) {
    const exit = readExitCode(rec.dirs.exitDir, rec.id, host.fs);
    if (exit !== undefined) return await refresh(host, rec);
  }
  if (rec.pid !== undefined && rec.pidStart !== undefined) {
    const s = host.proc.stat(rec.pid);
    if (s && s.state !== "Z" && s.startTime === rec.pidStart) return rec;
  }
  return await refresh(host, rec);
}

export function listExitFiles(host: Pick<Host, "fs">, dirs: Iterable<string>): ExitFiles {
  const out: ExitFiles = new Map();
  for (const dir of new Set(dirs)) {
    try {
      out.set(dir, new Set(host.fs.readDir(dir).map((e) => e.name)));
    } catch { /* unreadable: each record reads its own file */ }
  }
  return out;
}

/** Made under another run-root epoch: its processes died with the reboot that came between. */
export function fromEarlierBoot(host: Host, rec: { epoch?: string }): boolean {
  return host.epoch !== undefined && rec.epoch !== undefined && rec.epoch !== host.epoch;
}

/** A container a reboot ended: exited (no exit code is known), as podman shows it. */
function markBootLost(host: Host, rec: ContainerRecord): ContainerRecord {
  if (rec.status !== "exited") {
    rec.status = "exited";
    rec.pid = undefined;
    rec.finishedAt ??= host.now().toISOString();
  }
  return rec;
}

/** A stopped container: its exit code (if conmon wrote one) and when its exit file was written. */
export function markExited(
  host: Pick<Host, "fs">,
  rec: ContainerRecord,
  exitCode: number | undefined,
): void {
  rec.status = "exited";
  rec.pid = undefined;
  if (exitCode !== undefined) rec.exitCode = exitCode;
  if (!rec.finishedAt) {
    try {
      rec.finishedAt = exitTime(
        host.fs.stat(`${rec.dirs.exitDir}/${rec.id}`).mtime,
        rec.startedAt,
        rec.signaledAt,
      )?.toISOString();
    } catch { /* no exit file yet */ }
  }
}

/**
 * When a container exited: its exit file's mtime, but never before it
 * started nor before a signal it was still alive to receive (`floors`, ISO
 * times; one that is not a time is ignored). File times come from the
 * kernel's coarse clock, up to a tick (1-10 ms) behind the time rkl reads,
 * so a process that exits at once (`true`), or at a SIGKILL, has an exit
 * file seemingly older than its start or its kill.
 */
export function exitTime(
  mtime: Date | null | undefined,
  ...floors: (string | undefined)[]
): Date | undefined {
  if (!mtime || Number.isNaN(mtime.getTime())) return undefined;
  let t = mtime.getTime();
  for (const f of floors) {
    const at = f === undefined ? NaN : Date.parse(f);
    if (at > t) t = at;
  }
  return t === mtime.getTime() ? mtime : new Date(t);
}

/**
 * A signal the runtime delivered at `at` (ISO): the record keeps it, and an
 * exit already timed before it (from the file alone) is moved to it.
 */
export function signaledAt(rec: ContainerRecord, at: string): void {
  rec.signaledAt = at;
  if (rec.finishedAt) rec.finishedAt = exitTime(new Date(rec.finishedAt), at)?.toISOString();
}

/** The record with its status, pid and exit code brought up to date from the runtime. */
export async function refresh(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  if (rec.status === "creating") return rec;
  if (fromEarlierBoot(host, rec)) return markBootLost(host, rec);
  if (rec.deferred) return rec;
  const st = await host.runtimeFor(rec.runtime).state(rec.id);
  const exit = readExitCode(rec.dirs.exitDir, rec.id, host.fs);
  if (!st) {
    rec.status = exit !== undefined ? "exited" : "unknown";
    rec.exitCode = exit ?? rec.exitCode;
    rec.pid = undefined;
    return rec;
  }
  // conmon writes the exit file once it has reaped the process: read after
  // the state, the file wins over a "running" the runtime saw just before
  // (a zombie it had not reaped yet; a container exiting as it starts).
  if (st.status === "stopped" || exit !== undefined) {
    markExited(host, rec, exit);
  } else if (st.status === "running" || st.status === "paused" || st.status === "created") {
    rec.status = st.status === "created" ? "created" : "running";
    if (rec.pid !== st.pid) {
      rec.pid = st.pid;
      rec.pidStart = st.pid ? host.proc.stat(st.pid)?.startTime : undefined;
    }
  }
  return rec;
}

/**
 * Why an exited container ended, in the CRI's words: `Completed` (code 0),
 * `OOMKilled` (code 137 and its memory cgroup counted an OOM kill, read
 * while the cgroup is still there: until the container is removed or
 * restarted) or `Error`; undefined unless it has exited.
 */
export function exitReason(
  host: Pick<Host, "cgroups">,
  c: Pick<ContainerRecord, "status" | "exitCode" | "cgroupPath">,
): "Completed" | "OOMKilled" | "Error" | undefined {
  if (c.status !== "exited") return undefined;
  if (c.exitCode === 0) return "Completed";
  if (c.exitCode === 137 && (host.cgroups.usage(c.cgroupPath)?.oomKills ?? 0) > 0) {
    return "OOMKilled";
  }
  return "Error";
}

/** Every container record, each with its status brought up to date. */
export async function listContainers(host: Host): Promise<ContainerRecord[]> {
  const recs = host.store.list<ContainerRecord>("containers");
  // One listing of the exit dir instead of a failed open per running container.
  const exits = listExitFiles(host, recs.map((r) => r.dirs.exitDir));
  return await Promise.all(recs.map((r) => quickRefresh(host, r, exits)));
}
