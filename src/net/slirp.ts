/**
 * Networking for a rootless rkl: slirp4netns in place of the bridge, veth and
 * portmap plugins, which need root in the host's network namespace.
 *
 * The default network's conflist of a rootless root is one plugin of type
 * `slirp4netns` (written by cli/host.ts), and the Host's CNI client is a
 * {@linkcode SlirpCni}: its ADD starts slirp4netns on the sandbox's pinned
 * namespace (`--netns-type=path`; tap0, 10.0.2.100/24, gateway 10.0.2.2,
 * `--disable-host-loopback` so a container cannot reach the host's
 * 127.0.0.1), in its own session so it outlives the command, and publishes
 * each port through slirp4netns's API socket (`add_hostfwd`): slirp4netns,
 * in the host's network namespace, listens on the host port and forwards to
 * the container. Its DEL stops that slirp4netns. So the create, the
 * teardown and the records stay the same as with CNI.
 */
import { type Attachment, CniClient, type CniResult, type NetConfList } from "./cni.ts";
import type { CommandRunner } from "../sys/command.ts";
import { NetworkError } from "../errors.ts";
import { slirpKey, stopHelper } from "./user_net.ts";

export { slirpKey };

export const SLIRP_TYPE = "slirp4netns";
/** slirp4netns's fixed addresses with --configure. */
export const SLIRP_GUEST = "10.0.2.100";
export const SLIRP_GATEWAY = "10.0.2.2";
export const SLIRP_DNS = "10.0.2.3";

/** The conflist of a rootless root's default network. */
export function slirpConflist(name: string): NetConfList {
  return {
    cniVersion: "1.0.0",
    name,
    plugins: [{ type: SLIRP_TYPE, capabilities: { portMappings: true } }],
  };
}

/** The argv of slirp4netns for a namespace pinned at `netns`. */
export function slirpArgv(bin: string, netns: string, apiSocket: string): string[] {
  return [
    bin,
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-sandbox",
    "--enable-seccomp",
    `--api-socket=${apiSocket}`,
    "--netns-type=path",
    netns,
    "tap0",
  ];
}

export interface SlirpOptions {
  /** Where pid files and API sockets go (RUN_ROOT/slirp). */
  dir: string;
  /** slirp4netns's path. */
  binary: string;
  /** Starts a process in its own session, its stderr to `log`; its pid. */
  spawn(argv: string[], log: string): number;
  kill(pid: number, signal: Deno.Signal): void;
  /** /proc/PID/cmdline split at NUL ([] during an exec), undefined once gone or a zombie. */
  cmdline(pid: number): string[] | undefined;
  sleep(ms: number): Promise<void>;
  /** The `pasta` network's driver (pasta.ts): a conflist of one `pasta` plugin goes to it. */
  pasta?: NetDriver;
}

/** What SlirpCni needs of another network's driver (pasta.ts's PastaCni). */
export interface NetDriver {
  add(list: NetConfList, att: Attachment): Promise<CniResult>;
  del(list: NetConfList, att: Attachment): Promise<void>;
  check(list: NetConfList, att: Attachment): Promise<void>;
}

/** One API request over the socket; the reply's JSON. */
export async function slirpApi(socket: string, request: unknown): Promise<Record<string, unknown>> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(request));
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    await conn.closeWrite();
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (let n; (n = await conn.read(buf)) !== null;) chunks.push(buf.slice(0, n));
    const text = new TextDecoder().decode(
      chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
    );
    return JSON.parse(text) as Record<string, unknown>;
  } finally {
    conn.close();
  }
}

export class SlirpCni extends CniClient {
  constructor(cmd: CommandRunner, readonly options: SlirpOptions) {
    super(cmd, []);
  }

  #only(list: NetConfList): void {
    const other = list.plugins.find((p) => p.type !== SLIRP_TYPE);
    if (other) {
      throw new NetworkError(
        `Cannot use network ${JSON.stringify(list.name)}: plugin ${
          JSON.stringify(other.type)
        } needs root; a rootless rkl networks through slirp4netns or pasta only`,
      );
    }
  }

  /** pasta's driver, when `list` is one `pasta` plugin (pasta.ts). */
  #pasta(list: NetConfList): NetDriver | undefined {
    if (list.plugins.length !== 1 || list.plugins[0].type !== "pasta") return undefined;
    if (!this.options.pasta) {
      throw new NetworkError(`Cannot use network ${JSON.stringify(list.name)}: no pasta driver`);
    }
    return this.options.pasta;
  }

  #paths(att: Attachment): { pid: string; socket: string; log: string } {
    const k = slirpKey(att.containerId);
    const d = this.options.dir;
    return { pid: `${d}/${k}.pid`, socket: `${d}/${k}.sock`, log: `${d}/${k}.log` };
  }

  override async add(list: NetConfList, att: Attachment): Promise<CniResult> {
    const pasta = this.#pasta(list);
    if (pasta) return await pasta.add(list, att);
    this.#only(list);
    if (list.plugins.length === 0) return {};
    const o = this.options;
    Deno.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const p = this.#paths(att);
    try {
      Deno.removeSync(p.socket);
    } catch { /* none */ }
    const pid = o.spawn(slirpArgv(o.binary, att.netns, p.socket), p.log);
    Deno.writeTextFileSync(p.pid, `${pid}\n`, { mode: 0o600 });
    try {
      await this.#ready(pid, p.socket, p.log);
      for (const m of att.capabilityArgs?.portMappings ?? []) {
        const r = await slirpApi(p.socket, {
          execute: "add_hostfwd",
          arguments: {
            proto: m.protocol,
            host_addr: m.hostIP || "0.0.0.0",
            host_port: m.hostPort,
            guest_addr: SLIRP_GUEST,
            guest_port: m.containerPort,
          },
        });
        if (r.error) {
          throw new NetworkError(
            `Cannot publish port ${m.hostPort}/${m.protocol}: slirp4netns: ${
              JSON.stringify(r.error)
            }`,
          );
        }
      }
    } catch (e) {
      await this.del(list, att);
      throw e;
    }
    return {
      cniVersion: list.cniVersion,
      interfaces: [{ name: "tap0", sandbox: att.netns }],
      ips: [{ address: `${SLIRP_GUEST}/24`, gateway: SLIRP_GATEWAY, interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: SLIRP_GATEWAY }],
      dns: { nameservers: [SLIRP_DNS] },
    };
  }

  async #ready(pid: number, socket: string, log: string): Promise<void> {
    // slirp4netns answers within a few ms: looked at every 2 ms for the first
    // 200 ms (at 20 ms, each start lost 10 ms on average), then every 20 ms; 5 s in all.
    for (let i = 0; i < 340; i++) {
      if (this.options.cmdline(pid) === undefined) {
        let said = "";
        try {
          said = Deno.readTextFileSync(log).trim().split("\n").filter((l) =>
            !l.startsWith("WARNING")
          ).slice(-2).join("; ");
        } catch { /* none */ }
        throw new NetworkError(
          `Cannot start slirp4netns: it exited (pid ${pid})${said ? `: ${said}` : ""}`,
        );
      }
      try {
        const r = await slirpApi(socket, { execute: "list_hostfwd" });
        if (r.error === undefined) return;
      } catch { /* not listening yet */ }
      await this.options.sleep(i < 100 ? 2 : 20);
    }
    throw new NetworkError(`Cannot start slirp4netns: its API socket ${socket} did not answer`);
  }

  /** Stops the attachment's slirp4netns (only a process that is one, for this netns). */
  override async del(list: NetConfList, att: Attachment): Promise<void> {
    const pasta = this.#pasta(list);
    if (pasta) return await pasta.del(list, att);
    this.#only(list);
    const p = this.#paths(att);
    const ours = (n: number) => {
      const argv = this.options.cmdline(n);
      return argv !== undefined && argv[0]?.endsWith("slirp4netns") && argv.includes(att.netns);
    };
    await stopHelper(p.pid, ours, this.options, [p.socket, p.pid, p.log]);
  }

  override check(list: NetConfList, att: Attachment): Promise<void> {
    const pasta = this.#pasta(list);
    if (pasta) return pasta.check(list, att);
    this.#only(list);
    const text = (() => {
      try {
        return Deno.readTextFileSync(this.#paths(att).pid).trim();
      } catch {
        return "";
      }
    })();
    if (!/^\d+$/.test(text) || this.options.cmdline(Number(text)) === undefined) {
      return Promise.reject(
        new NetworkError(`Cannot CHECK network ${JSON.stringify(list.name)}: slirp4netns is gone`),
      );
    }
    return Promise.resolve();
  }
}
