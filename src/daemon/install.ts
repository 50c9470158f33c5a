/** `rkl daemon install`: a systemd unit, a tmpfiles.d entry, the manifests dir, and preflight checks. */

export {
  DAEMON_DENO_FLAGS,
  DAEMON_ENV,
  DAEMON_V8_FLAGS,
  isDenoExe,
  withDaemonFlags,
} from "./launch.ts";
import { DAEMON_ENV, withDaemonFlags } from "./launch.ts";

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
