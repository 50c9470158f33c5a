/**
 * pasta (Debian `passt`) as a rootless rkl's other network, beside
 * slirp4netns (slirp.ts): `--network pasta` names the conflist of one plugin
 * of type `pasta` (written by cli/rootless_host.ts). Its ADD runs
 *
 *   pasta --config-net --netns NETNS --no-map-gw -T none -U none -q
 *         -P RUN_ROOT/pasta/KEY.pid -l RUN_ROOT/pasta/KEY.log -t PORTS -u PORTS
 *
 * which configures the namespace (the host's address and default route on
 * an interface named as the host's) and goes to the background once it is
 * ready: its exit is the ready signal, no polling. Published ports are given
 * at start (`-t [ADDR/]HOST:CONTAINER`); pasta has no API to add them later.
 * `--no-map-gw` and `-T none -U none` keep the container from reaching the
 * host's loopback (slirp4netns's `--disable-host-loopback`). Its DEL stops
 * that pasta (only a process whose command line is pasta on that netns);
 * pasta also quits by itself when the pinned netns is unmounted.
 */
import type { Attachment, CniResult, NetConfList, PortMapping } from "./cni.ts";
import { NetworkError } from "../errors.ts";
import { slirpKey, stopHelper } from "./user_net.ts";

export const PASTA_TYPE = "pasta";
export const PASTA_NETWORK = "pasta";

/** The conflist of the `pasta` network. */
export function pastaConflist(name = PASTA_NETWORK): NetConfList {
  return {
    cniVersion: "1.0.0",
    name,
    plugins: [{ type: PASTA_TYPE, capabilities: { portMappings: true } }],
  };
}

/** pasta's -t/-u value for these mappings of one protocol: "none", or `[ADDR/]HOST:CONTAINER,…`. */
export function pastaPorts(maps: PortMapping[], protocol: "tcp" | "udp"): string {
  const specs: string[] = [];
  for (const m of maps) {
    if ((m.protocol ?? "tcp") !== protocol) continue;
    const addr = m.hostIP && m.hostIP !== "0.0.0.0" ? `${m.hostIP}/` : "";
    if (addr && !/^\d{1,3}(\.\d{1,3}){3}\/$/.test(addr)) {
      throw new NetworkError(`Cannot publish port ${m.hostPort}: pasta takes an IPv4 hostIP here`);
    }
    specs.push(`${addr}${m.hostPort}:${m.containerPort}`);
  }
  return specs.length ? specs.join(",") : "none";
}

export function pastaArgv(
  bin: string,
  netns: string,
  files: { pid: string; log: string },
  maps: PortMapping[],
): string[] {
  return [
    bin,
    "--config-net",
    "--netns",
    netns,
    "--no-map-gw",
    "-T",
    "none",
    "-U",
    "none",
    "-q",
    "-P",
    files.pid,
    "-l",
    files.log,
    "-t",
    pastaPorts(maps, "tcp"),
    "-u",
    pastaPorts(maps, "udp"),
  ];
}

export interface PastaOptions {
  /** Where pid and log files go (RUN_ROOT/pasta). */
  dir: string;
  /** pasta's path (throws when it is not installed). */
  readonly binary: string;
  /** Runs argv to its end (pasta forks into the background when ready). */
  run(argv: string[]): Promise<{ code: number; stderr: string }>;
  kill(pid: number, signal: Deno.Signal): void;
  /** /proc/PID/cmdline split at NUL, undefined once gone or a zombie. */
  cmdline(pid: number): string[] | undefined;
  sleep(ms: number): Promise<void>;
  /** The address (CIDR) and gateway pasta gives the namespace: the host's default route's. */
  hostRoute(): { address: string; gateway?: string } | undefined;
}

export class PastaCni {
  constructor(readonly options: PastaOptions) {}

  #paths(att: Attachment): { pid: string; log: string } {
    const k = slirpKey(att.containerId);
    return { pid: `${this.options.dir}/${k}.pid`, log: `${this.options.dir}/${k}.log` };
  }

  #ours(pid: number, netns: string): boolean {
    const argv = this.options.cmdline(pid);
    return argv !== undefined && /(^|\/)(pasta|passt)[^/]*$/.test(argv[0] ?? "") &&
      argv.includes(netns);
  }

  async add(list: NetConfList, att: Attachment): Promise<CniResult> {
    const o = this.options;
    Deno.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const p = this.#paths(att);
    for (const f of [p.pid, p.log]) {
      try {
        Deno.removeSync(f);
      } catch { /* none */ }
    }
    const argv = pastaArgv(o.binary, att.netns, p, att.capabilityArgs?.portMappings ?? []);
    const r = await o.run(argv);
    if (r.code !== 0) {
      await this.del(list, att);
      const said = r.stderr.split("\n").filter((l) => l.trim() && !/syslog/.test(l)).slice(-2)
        .join("; ");
      throw new NetworkError(`Cannot start pasta: exit ${r.code}${said ? `: ${said}` : ""}`);
    }
    const route = o.hostRoute();
    return {
      cniVersion: list.cniVersion,
      interfaces: [{ name: "pasta", sandbox: att.netns }],
      ...(route
        ? {
          ips: [{ address: route.address, gateway: route.gateway, interface: 0 }],
          ...(route.gateway ? { routes: [{ dst: "0.0.0.0/0", gw: route.gateway }] } : {}),
        }
        : {}),
    };
  }

  /** Stops the attachment's pasta (only a process that is one, for this netns). */
  async del(_list: NetConfList, att: Attachment): Promise<void> {
    const p = this.#paths(att);
    await stopHelper(p.pid, (pid) => this.#ours(pid, att.netns), this.options, [p.pid, p.log]);
  }

  check(list: NetConfList, att: Attachment): Promise<void> {
    const text = (() => {
      try {
        return Deno.readTextFileSync(this.#paths(att).pid).trim();
      } catch {
        return "";
      }
    })();
    if (!/^\d+$/.test(text) || !this.#ours(Number(text), att.netns)) {
      return Promise.reject(
        new NetworkError(`Cannot CHECK network ${JSON.stringify(list.name)}: pasta is gone`),
      );
    }
    return Promise.resolve();
  }
}

/** The host's default IPv4 route: its interface's address (CIDR) and gateway, from /proc/net/route. */
export function defaultRoute(
  routeText: string,
  interfaces: { name: string; family: string; cidr: string | null }[],
): { address: string; gateway?: string } | undefined {
  for (const line of routeText.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] !== "00000000" || f[7] !== "00000000") continue;
    const gw = f[2];
    const gateway = /^[0-9A-Fa-f]{8}$/.test(gw) && gw !== "00000000"
      ? [3, 2, 1, 0].map((i) => parseInt(gw.slice(i * 2, i * 2 + 2), 16)).join(".")
      : undefined;
    const addr = interfaces.find((i) => i.name === f[0] && i.family === "IPv4" && i.cidr);
    if (addr?.cidr) return { address: addr.cidr, gateway };
  }
  return undefined;
}
