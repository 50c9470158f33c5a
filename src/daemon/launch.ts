/**
 * How the daemon is started: its V8 flags, environment and `deno run` flags,
 * and how to tell a deno binary (rkl from source) from rkl compiled. Apart
 * from install.ts (the unit, tmpfiles, preflight checks through doctor.ts)
 * so that cli/self.ts, which every command's Host loads, does not load those.
 */

/**
 * V8 flags for the daemon: smaller young generation, size over speed, no
 * optimising compilers (TurboFan and Maglev: their code and the memory they
 * work in are what a full V8 adds with 50 pods), and `gc()` for collecting
 * when quiet (src/daemon/memory.ts). The interpreter keeps its inline
 * caches and the baseline compiler (Sparkplug): --lite-mode drops both and
 * saved no more memory (50 static pods: 78.1 MB with these flags, 77.8-78.2
 * with --lite-mode, 80.6 with Maglev too), but unpacking busybox's layer
 * took 34 ms in it against 25 here.
 */
export const DAEMON_V8_FLAGS =
  "--optimize-for-size,--max-semi-space-size=1,--expose-gc,--no-opt,--no-maglev";

/**
 * The daemon's environment beyond RKL_RUN_ROOT. glibc's malloc: two arenas
 * and free memory at the top of the heap trimmed back from 128 KiB, so what
 * the Rust side churns through (process spawns, file reads on worker
 * threads) is returned: 119 → 111 MB with 50 CRI pods (bench), the V8 heap
 * being some 25 MB of it (RKL_MEMORY_LOG). Mmapping every block of 128 KiB
 * and more saved a little more but put ListContainers' p95 from 17 to 26 ms.
 */
export const DAEMON_ENV: Record<string, string> = {
  DENO_V8_FLAGS: DAEMON_V8_FLAGS,
  MALLOC_ARENA_MAX: "2",
  MALLOC_TRIM_THRESHOLD_: "131072",
  // for scripts/launcher.sh: add DAEMON_DENO_FLAGS to its `deno run`
  RKL_DAEMON_DENO_FLAGS: "1",
};

/**
 * `deno run` flags for the daemon. Without V8's code cache Deno does not
 * open and map its SQLite cache of compiled code (`v8_code_cache_v2`), which
 * it reads only while modules load: an idle daemon is 69 MB instead of 72
 * (RSS, two runs each). The one-time cost is compiling the modules from
 * source at start and at the CRI's first connection. The launcher adds them
 * when RKL_DAEMON_DENO_FLAGS=1; a unit that runs `deno run` names them itself.
 */
export const DAEMON_DENO_FLAGS = ["--no-code-cache"];

/** Whether `exe` is a deno binary (rkl run from source), not rkl compiled or its artifact. */
export function isDenoExe(exe: string): boolean {
  return /(^|\/)deno$/.test(exe);
}

/** `bin` with the daemon's deno flags when it is a `deno run …` command line. */
export function withDaemonFlags(bin: string[]): string[] {
  if (bin.length > 1 && isDenoExe(bin[0]) && bin[1] === "run") {
    return [bin[0], "run", ...DAEMON_DENO_FLAGS, ...bin.slice(2)];
  }
  return bin;
}
