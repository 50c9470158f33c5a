/**
 * Container log rotation the kubelet's way (containerLogMaxSize,
 * containerLogMaxFiles): once a log reaches the limit it becomes `NAME.log.1`
 * (older ones shift to .2 … and the oldest beyond the count goes), and
 * conmon is asked to reopen its log through its `ctl` FIFO (message
 * "2 0 0": reopen), so it writes a fresh file without losing a line.
 *
 * `rkl daemon` rotates on each pass. conmon's own --log-size-max is set to
 * twice the limit, the backstop when no daemon runs: conmon then starts the
 * file afresh rather than fill the disk.
 */
import type { Syscalls } from "../sys/syscalls.ts";
import { openCtl, REOPEN_LOG, sendCtl, writeCtl } from "../oci/conmon_ctl.ts";
import { type HostFs, realFs } from "../sys/fs.ts";

export interface LogRotation {
  /** Rotate once the current file is this large. */
  maxBytes: number;
  /** Files kept per container, the current one included (at least 2). */
  maxFiles: number;
}

/** The kubelet's defaults: 10 MiB, 5 files. */
export const KUBELET_LOG_ROTATION: LogRotation = { maxBytes: 10 * 1024 * 1024, maxFiles: 5 };

/** Rotated files of a log that exist, `.1` first. */
export function rotatedLogs(log: string, fs: HostFs = realFs): string[] {
  const dir = log.slice(0, log.lastIndexOf("/"));
  const base = log.slice(dir.length + 1);
  const out: { n: number; path: string }[] = [];
  try {
    for (const e of fs.readDir(dir)) {
      const m = /^(.*)\.(\d+)$/.exec(e.name);
      if (m && m[1] === base) out.push({ n: Number(m[2]), path: `${dir}/${e.name}` });
    }
  } catch { /* no dir */ }
  return out.sort((a, b) => a.n - b.n).map((x) => x.path);
}

/**
 * Rotates `log` when it has grown to the limit; `ctl` is conmon's control
 * FIFO. Returns true when it rotated. A conmon that is gone (nobody reads
 * the FIFO) leaves the file as it is.
 */
export function rotateIfLarge(
  sys: Syscalls,
  o: { log: string; ctl: string; fs?: HostFs },
  rot: LogRotation,
): boolean {
  const fs = o.fs ?? realFs;
  let size: number;
  try {
    size = fs.stat(o.log).size;
  } catch {
    return false;
  }
  if (size < rot.maxBytes || rot.maxFiles < 2) return false;
  const fd = openCtl(sys, o.ctl);
  if (fd === undefined) return false;
  try {
    for (const old of rotatedLogs(o.log, fs)) {
      const n = Number(old.slice(old.lastIndexOf(".") + 1));
      if (n >= rot.maxFiles - 1) fs.remove(old);
    }
    for (let n = rot.maxFiles - 2; n >= 1; n--) {
      try {
        fs.rename(`${o.log}.${n}`, `${o.log}.${n + 1}`);
      } catch { /* no such generation */ }
    }
    fs.rename(o.log, `${o.log}.1`);
    writeCtl(sys, fd, REOPEN_LOG);
  } finally {
    sys.close(fd);
  }
  return true;
}

/**
 * Asks conmon to reopen its log file (the CRI's ReopenContainerLog, after the
 * kubelet renamed it). False when no conmon reads the FIFO.
 */
export function reopenLog(sys: Syscalls, ctl: string): boolean {
  return sendCtl(sys, ctl, REOPEN_LOG);
}
