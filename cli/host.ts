/** Builds the real Host: the only place real adapters are created. */
import { realFs } from "../src/sys/fs.ts";
import { spawnDetached } from "../src/sys/detached.ts";
import { createWithConmon } from "../src/oci/conmon.ts";
import { procStat } from "../src/sys/procstat.ts";
import { ImageService } from "../src/image/service.ts";
import { progressFor } from "./progress.ts";
import { selfArgv } from "./self.ts";
import { CniClient } from "../src/net/cni.ts";
import { resolveRuntime, RuncCliRuntime, which } from "../src/oci/runtime.ts";
import { FsStore } from "../src/store/store.ts";
import { recordValidators } from "../src/workloads/records.ts";
import { KUBELET_LOG_ROTATION } from "../src/workloads/logrotate.ts";
import { noteEvent } from "../src/workloads/event_log.ts";
import { detectCgroups } from "../src/sys/cgroups/detect.ts";
import { DenoCommandRunner } from "../src/sys/command.ts";
import { LinuxSyscalls, type Syscalls } from "../src/sys/syscalls.ts";
import {
  type Host,
  type HostProc,
  type RklPaths,
  runRootEpoch,
  shortHash,
} from "../src/workloads/host.ts";
import { NotFoundError, RklError, SpecError } from "../src/errors.ts";
import { DNS1123_LABEL } from "../src/spec/names.ts";
import { absolute, cwd } from "./io.ts";
import { enterRootless } from "./rootless.ts";
import { rootlessParts, rootlessRuntime } from "./rootless_host.ts";
import { runningRootless } from "../src/sys/userns.ts";
import { DEFAULT_ROOT, rootsOf } from "./remote.ts";

export interface GlobalOptions {
  root?: string;
  runRoot?: string;
  runtime?: string;
  debug?: boolean;
}

export { DEFAULT_ROOT, DEFAULT_RUN_ROOT } from "./remote.ts";

export function resolvePaths(opts: GlobalOptions): RklPaths {
  // The thin client finds the daemon's socket by the same rule.
  const { root, runRoot } = rootsOf(opts, {
    RKL_ROOT: Deno.env.get("RKL_ROOT"),
    RKL_RUN_ROOT: Deno.env.get("RKL_RUN_ROOT"),
  }, cwd());
  const logDir = Deno.env.get("RKL_LOG_DIR") ??
    (root === DEFAULT_ROOT ? "/var/log/rkl" : `${root}/logs`);
  const cniConfDir = Deno.env.get("RKL_CNI_CONF_DIR") ??
    (root === DEFAULT_ROOT ? "/etc/rkl/net.d" : `${root}/net.d`);
  for (const [flag, p] of [["--root", root], ["--run-root", runRoot]] as const) {
    if (/[,:\s]/.test(p)) {
      throw new SpecError(
        { file: flag },
        `path ${JSON.stringify(p)} must not contain ',', ':' or spaces`,
      );
    }
  }
  const seccompDir = Deno.env.get("RKL_SECCOMP_DIR") ??
    (root === DEFAULT_ROOT ? "/etc/rkl/seccomp" : `${root}/seccomp`);
  return {
    tag: root === DEFAULT_ROOT ? "" : `r${shortHash(root)}-`,
    root,
    runRoot,
    logDir: absolute(logDir),
    cniConfDir: absolute(cniConfDir),
    seccompDir: absolute(seccompDir),
  };
}

/** Hard RLIMIT_NOFILE from hardLimits(); unlimited counts as 1048576, what rkl asks for at most. */
export function nofileHard(limits: Record<string, number>): number {
  const n = limits.RLIMIT_NOFILE;
  return n === undefined || !Number.isFinite(n) ? 1_048_576 : n;
}

/** /proc/self/limits rows → RLIMIT_* name → hard value (Infinity for unlimited). */
const LIMIT_ROWS: Record<string, string> = {
  "Max cpu time": "RLIMIT_CPU",
  "Max file size": "RLIMIT_FSIZE",
  "Max data size": "RLIMIT_DATA",
  "Max stack size": "RLIMIT_STACK",
  "Max core file size": "RLIMIT_CORE",
  "Max resident set": "RLIMIT_RSS",
  "Max processes": "RLIMIT_NPROC",
  "Max open files": "RLIMIT_NOFILE",
  "Max locked memory": "RLIMIT_MEMLOCK",
  "Max address space": "RLIMIT_AS",
  "Max file locks": "RLIMIT_LOCKS",
  "Max pending signals": "RLIMIT_SIGPENDING",
  "Max msgqueue size": "RLIMIT_MSGQUEUE",
  "Max nice priority": "RLIMIT_NICE",
  "Max realtime priority": "RLIMIT_RTPRIO",
  "Max realtime timeout": "RLIMIT_RTTIME",
}; // deno-fmt-ignore

export function hardLimits(text = Deno.readTextFileSync("/proc/self/limits")): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n").slice(1)) {
    const row = Object.keys(LIMIT_ROWS).find((k) => line.startsWith(k));
    if (!row) continue;
    const hard = line.slice(row.length).trim().split(/\s+/)[1];
    out[LIMIT_ROWS[row]] = hard === "unlimited" ? Infinity : Number(hard);
  }
  return out;
}

/** Ports with a listening TCP socket or any bound UDP socket, from /proc/net. */
export function boundPorts(protocol: "tcp" | "udp"): Set<number> {
  const out = new Set<number>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if (protocol === "tcp" && f[3] !== "0A") continue; // LISTEN
      out.add(parseInt(f[1].split(":")[1], 16));
    }
  }
  return out;
}

/**
 * Log limits: RKL_LOG_SIZE_MAX (bytes, the kubelet's containerLogMaxSize,
 * default 10 MiB) and RKL_LOG_MAX_FILES (containerLogMaxFiles, default 5).
 */
function logRotation(): { maxBytes: number; maxFiles: number } {
  const read = (name: string, def: number, min: number) => {
    const v = Deno.env.get(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new SpecError({ file: name }, `${JSON.stringify(v)} must be a whole number >= ${min}`);
    }
    return n;
  };
  return {
    maxBytes: read("RKL_LOG_SIZE_MAX", KUBELET_LOG_ROTATION.maxBytes, 1024),
    maxFiles: read("RKL_LOG_MAX_FILES", KUBELET_LOG_ROTATION.maxFiles, 2),
  };
}

/** The real process port: /proc, kill(2), and conmon spawned for real. */
export function realProc(sys: Syscalls): HostProc {
  return {
    self: Deno.pid,
    stat: procStat,
    kill: (pid, signal) => Deno.kill(pid, signal),
    createWithConmon: (o) => createWithConmon(sys, o),
    spawnDetached,
  };
}

export function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new RklError("EPERM", "Cannot run: rkl needs root for namespaces, mounts and cgroups", {
      hint: "run it with sudo",
    });
  }
}

export function buildHost(opts: GlobalOptions, warn: (m: string) => void): Host {
  // A user without root: this command runs again inside the user's namespaces.
  if (Deno.uid() !== 0) enterRootless();
  requireRoot();
  const rootless = runningRootless();
  const paths = resolvePaths(opts);
  const cmd = new DenoCommandRunner();
  const rt = resolveRuntime(
    opts.runtime ?? Deno.env.get("RKL_RUNTIME") ?? (rootless ? rootlessRuntime() : undefined),
  );
  const conmon = which("conmon");
  if (!conmon) {
    throw new NotFoundError("Cannot find conmon", {
      hint: "run scripts/setup.sh (Debian package conmon)",
    });
  }
  // Another state root gets its own parent, so no two roots share a cgroup.
  const cgroupParent = Deno.env.get("RKL_CGROUP_PARENT") ??
    (paths.root === DEFAULT_ROOT ? "rkl" : `rkl-${shortHash(paths.root)}`);
  if (!cgroupParent.split("/").every((s) => DNS1123_LABEL.test(s))) {
    throw new SpecError(
      { file: "RKL_CGROUP_PARENT" },
      `${JSON.stringify(cgroupParent)} must be DNS-1123 labels joined by '/'`,
    );
  }
  const rotation = logRotation();
  const limits = hardLimits(); // one read of /proc/self/limits per command
  const pluginDirs = (Deno.env.get("RKL_CNI_PATH") ?? "/opt/cni/bin:/usr/lib/cni:/usr/libexec/cni")
    .split(":");
  const sys = new LinuxSyscalls();
  const rl = rootless ? rootlessParts(paths, cmd, sys) : undefined;
  return {
    sys,
    fs: realFs,
    proc: realProc(sys),
    cmd,
    // The lock lives beside the records it guards: two commands with the same
    // --root and different --run-roots still exclude each other.
    store: new FsStore(
      `${paths.root}/records`,
      `${paths.root}/rkl.lock`,
      recordValidators({ paths, cgroupParent }),
    ),
    cgroups: rl?.cgroups ?? detectCgroups().manager,
    runtime: new (rl?.Runtime ?? RuncCliRuntime)(
      rt.name,
      rt.binary,
      `${paths.runRoot}/runtime/${rt.name}`,
      cmd,
    ),
    runtimeFor: (ref) => new (rl?.Runtime ?? RuncCliRuntime)(ref.name, ref.binary, ref.root, cmd),

    cni: rl?.cni ?? new CniClient(cmd, pluginDirs, { masquerade: true }),
    ...(rl ? { lock: rl.lock, rootless: rl.rootless } : {}),
    images: new ImageService({
      root: `${paths.root}/images`,
      progress: progressFor,
      // pull, import, tag, untag and delete, in the log `rkl events` reads.
      onEvent: (e) => noteEvent({ paths, now: () => new Date(), fs: realFs, warn }, e),
    }),
    paths,
    node: { hostname: () => Deno.hostname(), networkInterfaces: () => Deno.networkInterfaces() },
    conmon,
    pauseBundle: Deno.env.get("RKL_PAUSE_BUNDLE") ?? `${paths.root}/bundles/pause`,
    cgroupParent,
    nofileHard: nofileHard(limits),
    hardLimits: limits,
    logRotation: rotation,
    // conmon's own cap, for when no daemon rotates: twice the rotation size.
    logSizeMax: rotation.maxBytes * 2,
    epoch: runRootEpoch(paths.runRoot, realFs),
    subnet: Deno.env.get("RKL_SUBNET"),
    portInUse: (port, protocol) => boundPorts(protocol).has(port),
    warn,
    selfArgv: selfArgv(),
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  };
}
