/**
 * Whether a set of processes are all still alive, asked in one system call:
 * a pidfd (pidfd_open(2)) per process, opened once, and poll(2) over them
 * all. A pidfd names one process, not a pid number, and turns readable once
 * that process has exited (a zombie too), so a reused pid is never taken for
 * it. Each pidfd is checked after it is opened against the start time the
 * caller knew, as the pid could have been reused before the open.
 *
 * Reading /proc/PID/stat per process, as the records' checks do, costs
 * about 19 µs each here (200 containers: 4 ms a list); the poll costs one
 * call. Without FFI (unit tests) or pidfd_open (Linux < 5.3), `watchPids`
 * answers undefined and the caller checks each process its own way.
 */
import { procStat } from "../../sys/procstat.ts";

const SYS_PIDFD_OPEN = 434; // the same number on every architecture (the unified table)
const POLLIN = 1;

const symbols = {
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof symbols>["symbols"] | null | undefined;

function libc() {
  if (lib === undefined) {
    try {
      lib = Deno.dlopen("libc.so.6", symbols).symbols;
    } catch {
      lib = null; // no FFI permission, or no libc.so.6
    }
  }
  return lib;
}

export interface PidWatch {
  /** True while every watched process is alive. */
  allAlive(): boolean;
  close(): void;
}

/**
 * A watch over `procs` ([pid, start time in clock ticks]), or undefined when
 * pidfds cannot be had, or one of them is no longer the process it was.
 */
export function watchPids(procs: [number, number][]): PidWatch | undefined {
  const c = libc();
  if (!c) return undefined;
  const fds: number[] = [];
  const closeAll = () => {
    for (const fd of fds) c.close(fd);
    fds.length = 0;
  };
  for (const [pid, start] of procs) {
    const fd = Number(c.syscall(BigInt(SYS_PIDFD_OPEN), BigInt(pid), 0n));
    if (fd < 0) {
      closeAll();
      return undefined;
    }
    fds.push(fd);
    const s = procStat(pid);
    if (!s || s.state === "Z" || s.startTime !== start) {
      closeAll();
      return undefined;
    }
  }
  const table = new Uint8Array(fds.length * 8);
  const view = new DataView(table.buffer);
  for (const [i, fd] of fds.entries()) {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, POLLIN, true);
  }
  let open = true;
  return {
    allAlive: () => {
      if (!open) return false;
      if (fds.length === 0) return true;
      // revents are written back; a readable pidfd is an ended process.
      return c.poll(table, BigInt(fds.length), 0) === 0;
    },
    close: () => {
      open = false;
      closeAll();
    },
  };
}

const F_OK = 0;
const PATH_ENCODER = new TextEncoder();

/**
 * Whether every one of `procs` ([pid, start time]) is still the process it
 * was, for a cached answer that holds while they live (status_cache.ts,
 * list_cache.ts): a PidWatch opened at the first check and kept on `holder`
 * (null where pidfds cannot be had), else each pid's /proc stat through
 * `probe` (not a zombie, same start time).
 */
export function stillAlive(
  holder: { watch?: PidWatch | null },
  procs: [number, number][],
  open: (procs: [number, number][]) => PidWatch | undefined,
  probe: (pid: number) => { state: string; startTime: number } | undefined,
): boolean {
  if (holder.watch === undefined && procs.length > 0) {
    // Opening checks each process's start time, as the probes below do.
    holder.watch = open(procs) ?? null;
    if (holder.watch) return true;
  }
  if (holder.watch) return holder.watch.allAlive();
  return procs.every(([pid, start]) => {
    const s = probe(pid);
    return s !== undefined && s.state !== "Z" && s.startTime === start;
  });
}

/**
 * Whether `path` exists, by access(2), or undefined when that cannot be
 * asked (no FFI, or a NUL in the path). Any failure of access(2) is "no":
 * the exit files it is for are read by readExitCode (src/oci/conmon.ts),
 * which takes any failure to read as no exit code. Deno's file calls answer
 * a missing file with an exception, whose making (a stack trace) cost a
 * ContainerStatus 25-40 µs of its first calls here, for the exit file that
 * a running container does not have.
 */
export function pathExists(path: string): boolean | undefined {
  const c = libc();
  if (!c) return undefined;
  const buf = new Uint8Array(path.length * 3 + 1);
  const n = PATH_ENCODER.encodeInto(path, buf).written;
  if (buf.subarray(0, n).includes(0)) return undefined;
  return c.access(buf, F_OK) === 0;
}
