/**
 * The parts of the Host that differ when rkl runs rootless (inside the
 * user's namespaces, see src/sys/userns.ts): no cgroup writes, slirp4netns
 * instead of CNI's bridge, the host-wide locks under the run root (the user
 * cannot write /run/lock, and no other user shares this user's networks),
 * and the network namespace made by a child process.
 */
import { flockHostLock, type HostLock } from "../src/net/hostnet.ts";
import { conflistPath, DEFAULT_NETWORK } from "../src/net/network.ts";
import { SLIRP_TYPE, SlirpCni, slirpConflist } from "../src/net/slirp.ts";
import {
  defaultRoute,
  PASTA_NETWORK,
  PASTA_TYPE,
  PastaCni,
  pastaConflist,
} from "../src/net/pasta.ts";
import { RuncCliRuntime, which } from "../src/oci/runtime.ts";
import { NoCgroupManager } from "../src/sys/cgroups/none.ts";
import { detectCgroupLayout } from "../src/sys/cgroups/detect.ts";
import type { CommandRunner } from "../src/sys/command.ts";
import type { Syscalls } from "../src/sys/syscalls.ts";
import { createNetnsByChild } from "../src/sys/userns.ts";
import type { RklPaths, RootlessHost } from "../src/workloads/host.ts";
import { NotFoundError, RklError } from "../src/errors.ts";
import { defaultRootlessRuntime, which as earlyWhich } from "./rootless_early.ts";

function readOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** net.ipv4.ip_unprivileged_port_start (1024 when unreadable). */
export function unprivilegedPortStart(text = readOr(
  "/proc/sys/net/ipv4/ip_unprivileged_port_start",
  "1024",
)): number {
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n : 1024;
}

/**
 * The runtime a rootless rkl uses unless told (when the outer rkl did not
 * set RKL_RUNTIME): the same rule as the outer rkl's, defaultRootlessRuntime
 * (rkl's patched youki or runc on cgroup v1, the usual default on v2).
 */
export function rootlessRuntime(
  mountinfo = readOr("/proc/self/mountinfo", ""),
): string | undefined {
  return defaultRootlessRuntime(mountinfo, (n) => earlyWhich(n));
}

/** A HostLock that keeps /run/lock/NAME as RUN_ROOT/locks/NAME. */
export function runRootLock(runRoot: string): HostLock {
  return {
    hold: (path, exclusive, fn) =>
      flockHostLock.hold(
        `${runRoot}/locks/${path.slice(path.lastIndexOf("/") + 1)}`,
        exclusive,
        fn,
      ),
  };
}

/**
 * New IPC and/or UTS namespaces pinned at their paths (which must not
 * exist), the hostname set in the UTS one, made by a child (`unshare
 * --ipc=P --uts=P hostname NAME`): as for the netns, this process could not
 * setns back into the host's namespaces, which belong to the initial user
 * namespace. A failure leaves no pin behind.
 */
export function createNamespacesByChild(
  pins: { ipc?: string; uts?: string },
  hostname?: string,
): void {
  const made: string[] = [];
  const undo = () => {
    for (const p of made) {
      new Deno.Command("umount", { args: [p], stdout: "null", stderr: "null" }).outputSync();
      try {
        Deno.removeSync(p);
      } catch { /* gone */ }
    }
  };
  const args: string[] = [];
  try {
    for (const [t, p] of Object.entries(pins)) {
      if (!p) continue;
      Deno.writeFileSync(p, new Uint8Array(), { createNew: true, mode: 0o444 });
      made.push(p);
      args.push(`--${t}=${p}`);
    }
    if (args.length === 0) return;
    const tail = hostname !== undefined && pins.uts ? ["hostname", "--", hostname] : ["true"];
    const r = new Deno.Command("unshare", {
      args: [...args, "--", ...tail],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!r.success) {
      throw new RklError(
        "ENETNS",
        `Cannot make namespaces ${made.join(", ")}: ${new TextDecoder().decode(r.stderr).trim()}`,
      );
    }
  } catch (e) {
    undo();
    throw e;
  }
}

/** What killFirst() needs of the host: reads, a signal, a short sleep. */
export interface KillPorts {
  read(path: string): string | undefined;
  kill(pid: number, signal: Deno.Signal): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

/** Field 22 (starttime) and field 3 (state) of a /proc/PID/stat text. */
function statFields(stat: string): { state: string; start: string } | undefined {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return f.length > 19 ? { state: f[0], start: f[19] } : undefined;
}

/**
 * SIGKILL to a runc container's init, and a wait until it is gone, before
 * `delete --force`: runc 1.1's forced delete of a running or created
 * container signals it and then sleeps 100 ms before it looks again
 * (delete.go killContainer), where the init of a rootless container (no
 * cgroup to freeze or kill) is gone within a few ms; a delete of a stopped
 * one destroys at once. The init is taken from runc's own state.json
 * (`init_process_pid`), and signalled only while /proc/PID's starttime is
 * `init_process_start` (never a reused pid). Anything unexpected (no state,
 * another format, EPERM) leaves the work to runc's delete. True when it
 * killed the init and saw it gone.
 */
export async function killFirst(
  stateJson: string,
  ports: KillPorts,
  budgetMs = 1000,
): Promise<boolean> {
  let pid: number, start: string;
  try {
    const st = JSON.parse(ports.read(stateJson) ?? "") as {
      init_process_pid?: unknown;
      init_process_start?: unknown;
    };
    if (!Number.isInteger(st.init_process_pid) || (st.init_process_pid as number) <= 1) {
      return false;
    }
    pid = st.init_process_pid as number;
    start = String(st.init_process_start);
  } catch {
    return false;
  }
  const alive = () => {
    const f = statFields(ports.read(`/proc/${pid}/stat`) ?? "");
    return f !== undefined && f.start === start && f.state !== "Z" && f.state !== "X";
  };
  if (!alive()) return false;
  try {
    ports.kill(pid, "SIGKILL");
  } catch {
    return false;
  }
  const end = ports.now() + budgetMs;
  while (alive()) {
    if (ports.now() >= end) return false;
    await ports.sleep(2);
  }
  return true;
}

/**
 * The runtime as a rootless rkl drives it. runc: a forced delete kills the
 * init itself first (killFirst). youki (rkl's build, which runs rootless
 * on cgroup v1) needs nothing of the kind: its forced delete of a container
 * without a cgroup signals the init and removes its state at once, with no
 * wait (libcontainer-rootless-cgroup-v1.patch).
 */
export class RootlessRuncRuntime extends RuncCliRuntime {
  override async delete(
    id: string,
    options: { force?: boolean; missingOk?: boolean } = {},
  ): Promise<void> {
    if (options.force && this.name === "runc" && /^[A-Za-z0-9_.-]+$/.test(id)) {
      await killFirst(`${this.root}/${id}/state.json`, {
        read: (p) => readOr(p, "") || undefined,
        kill: (pid, sig) => Deno.kill(pid, sig),
        sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
        now: () => performance.now(),
      });
    }
    return super.delete(id, options);
  }
}

export function rootlessParts(paths: RklPaths, cmd: CommandRunner, _sys: Syscalls): {
  cgroups: NoCgroupManager;
  cni: SlirpCni;
  Runtime: typeof RuncCliRuntime;
  lock: HostLock;
  rootless: RootlessHost;
} {
  const slirp = which(SLIRP_TYPE);
  const version = detectCgroupLayout(readOr("/proc/self/mountinfo", "")).version;
  // The default network is slirp4netns's; `--network pasta` is pasta's (src/net/pasta.ts).
  for (
    const [name, list] of [
      [DEFAULT_NETWORK, slirpConflist(DEFAULT_NETWORK)],
      [PASTA_NETWORK, pastaConflist()],
    ] as const
  ) {
    const conf = conflistPath(paths.cniConfDir, name);
    try {
      Deno.statSync(conf);
    } catch {
      Deno.mkdirSync(paths.cniConfDir, { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(conf, JSON.stringify(list, null, 2) + "\n");
    }
  }
  const cmdline = (pid: number): string[] | undefined => {
    try {
      // Empty while an exec is under way (sh becoming slirp4netns): alive all the same.
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return undefined;
      const t = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
      return t === "" ? [] : t.replace(/\0$/, "").split("\0");
    } catch {
      return undefined;
    }
  };
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const pasta = new PastaCni({
    dir: `${paths.runRoot}/pasta`,
    get binary(): string {
      const bin = which(PASTA_TYPE);
      if (!bin) {
        throw new NotFoundError("Cannot network a rootless container with pasta: no pasta", {
          hint: "apt-get install passt, or use slirp4netns (the default network)",
        });
      }
      return bin;
    },
    async run(argv) {
      // In its own session: a ^C to rkl's process group must not reach it.
      const r = await cmd.run("setsid", { args: argv, timeoutMs: 30_000 });
      return { code: r.code, stderr: r.stderr };
    },
    kill: (pid, signal) => Deno.kill(pid, signal),
    cmdline,
    sleep,
    hostRoute: () =>
      defaultRoute(
        readOr("/proc/net/route", ""),
        Deno.networkInterfaces().map((i) => ({ name: i.name, family: i.family, cidr: i.cidr })),
      ),
  });
  return {
    cgroups: new NoCgroupManager(version),
    Runtime: RootlessRuncRuntime,
    cni: new SlirpCni(cmd, {
      dir: `${paths.runRoot}/slirp`,
      get binary(): string {
        if (!slirp) {
          throw new NotFoundError("Cannot network a rootless container: no slirp4netns", {
            hint: "apt-get install slirp4netns, or run it with --network none",
          });
        }
        return slirp;
      },
      spawn(argv, log) {
        // Its stderr to a file: a pipe to this process would break when rkl exits.
        const child = new Deno.Command("setsid", {
          args: ["sh", "-c", 'exec "$@" 2>"$0"', log, ...argv],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        child.unref();
        child.status.catch(() => {});
        return child.pid;
      },
      kill: (pid, signal) => Deno.kill(pid, signal),
      cmdline,
      sleep,
      pasta,
    }),
    lock: runRootLock(paths.runRoot),
    rootless: {
      unprivilegedPortStart: unprivilegedPortStart(),
      createNetns: createNetnsByChild,
      createNamespaces: createNamespacesByChild,
      limitsReason: version === 1
        ? "this host has cgroup v1"
        : "cgroup v2 delegation is not used yet",
    },
  };
}
