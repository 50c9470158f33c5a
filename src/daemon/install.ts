/** `rkl daemon install`: a systemd unit, a tmpfiles.d entry, the manifests dir, and preflight checks. */

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

export interface InstallPaths {
  unit: string;
  tmpfiles: string;
  manifests: string;
}

export const INSTALL_PATHS: InstallPaths = {
  unit: "/etc/systemd/system/rkl.service",
  tmpfiles: "/etc/tmpfiles.d/rkl.conf",
  manifests: "/etc/rk8s/manifests",
};

/** The install paths under `root` (RKL_INSTALL_ROOT, for packaging and tests). */
export function installPaths(root = "/"): InstallPaths {
  const r = root.replace(/\/+$/, "");
  return {
    unit: r + INSTALL_PATHS.unit,
    tmpfiles: r + INSTALL_PATHS.tmpfiles,
    manifests: r + INSTALL_PATHS.manifests,
  };
}

/**
 * The daemon's descriptor limit (soft and hard). systemd's default is 1024
 * soft (524288 hard); `deno run` raises its soft limit to the hard one, but a
 * compiled rkl does not, and every pod, CRI connection and stream holds
 * descriptors. Containers get their own NOFILE limit from the spec.
 */
export const DAEMON_NOFILE = 1_048_576;

/**
 * The unit. Delegate=yes hands the cgroup subtree to rkl; KillMode=process
 * stops only the daemon, never the containers (conmon and the containers
 * live on, and the next daemon adopts them).
 */
export function unitFile(
  options: { bin: string | string[]; manifests: string; runRoot: string },
): string {
  const q = (s: string) => /^[A-Za-z0-9_./-]+$/.test(s) ? s : JSON.stringify(s);
  return `[Unit]
Description=rkl static pod daemon
Documentation=https://github.com/rk8s-dev/rk8s
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=${withDaemonFlags([options.bin].flat()).map(q).join(" ")} daemon --manifests ${
    q(options.manifests)
  }
Restart=always
RestartSec=2
Delegate=yes
KillMode=process
LimitNOFILE=${DAEMON_NOFILE}
Environment=RKL_RUN_ROOT=${q(options.runRoot)}
# A long-lived daemon: trade a little speed for memory (V8's flags, then glibc malloc's).
${Object.entries(DAEMON_ENV).map(([k, v]) => `Environment=${k}=${v}`).join("\n")}

[Install]
WantedBy=multi-user.target
`;
}

export function tmpfilesEntry(runRoot: string): string {
  return `# rkl's volatile state (netns pins, runtime state, locks)\nd ${runRoot} 0700 root root -\n`;
}

export { formatCheck, hostChecks as preflight } from "../doctor.ts";
