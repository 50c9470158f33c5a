/**
 * `rkl daemon install --user`: a systemd user unit for a user without root
 * (issue 34). The daemon it starts is the user's rootless rkl: it enters the
 * user's namespace as every command of that user does, keeps its state
 * under $XDG_DATA_HOME/rkl and its sockets under $XDG_RUNTIME_DIR/rkl
 * (systemd's `%t/rkl`), and reads static pods from
 * $XDG_CONFIG_HOME/rkl/manifests.
 *
 * Stopping: the unit's main process is the outer rkl, which waits for the
 * inner one (the daemon, in the user namespace) and ignores SIGTERM while
 * it does; both are in the process group systemd made for the service, so
 * ExecStop signals the group: the daemon stops, the outer rkl exits with
 * its code. KillMode=process leaves conmon and the containers running, as
 * root's unit does; the next daemon adopts them. No Delegate= (cgroups are
 * not written rootless on cgroup v1) and no LimitNOFILE (a user manager's
 * hard limit may be lower than root's unit asks).
 */
import { DAEMON_ENV, withDaemonFlags } from "./install.ts";

export interface UserInstallPaths {
  unit: string;
  manifests: string;
}

/** Where the user unit and the manifests go: $XDG_CONFIG_HOME (default ~/.config). */
export function userInstallPaths(env: Record<string, string | undefined>): UserInstallPaths {
  const config = env.XDG_CONFIG_HOME?.startsWith("/")
    ? env.XDG_CONFIG_HOME
    : env.HOME?.startsWith("/")
    ? `${env.HOME}/.config`
    : undefined;
  if (!config) throw new Error("Cannot install a user unit: HOME is not set");
  return {
    unit: `${config}/systemd/user/rkl.service`,
    manifests: `${config}/rkl/manifests`,
  };
}

export function userUnitFile(options: { bin: string | string[]; manifests: string }): string {
  const q = (s: string) => /^[A-Za-z0-9_./-]+$/.test(s) ? s : JSON.stringify(s);
  return `[Unit]
Description=rkl static pod daemon (rootless, for %u)
Documentation=https://github.com/rk8s-dev/rk8s

[Service]
Type=simple
ExecStart=${withDaemonFlags([options.bin].flat()).map(q).join(" ")} daemon --manifests ${
    q(options.manifests)
  }
ExecStop=/bin/kill -TERM -- -\${MAINPID}
Restart=always
RestartSec=2
KillMode=process
Environment=RKL_RUN_ROOT=%t/rkl
${Object.entries(DAEMON_ENV).map(([k, v]) => `Environment=${k}=${v}`).join("\n")}

[Install]
WantedBy=default.target
`;
}
