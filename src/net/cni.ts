/**
 * A CNI 1.0 client: runs plugin binaries with the CNI_* environment and the
 * network configuration on stdin, chains `prevResult` through a conflist on
 * ADD, and walks it backwards on DEL (CNI spec, "Execution protocol" and
 * "Attachment").
 */
import { callTimeoutMs } from "../timeouts.ts";
import { NetworkError } from "../errors.ts";
import type { CommandRunner } from "../sys/command.ts";
import { setUpMasquerade, takesMasquerade, tearDownMasquerade } from "./masquerade.ts";

export const CNI_PLUGIN_DIRS = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"];

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  disableCheck?: boolean;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifName: string;
  /** Runtime config offered to plugins that declare the capability. */
  capabilityArgs?: { portMappings?: PortMapping[]; ips?: string[]; mac?: string };
}

const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The plugins that take part in one attachment. portmap is left out when the
 * attachment maps no ports: its ADD then hands prevResult on untouched, and
 * its DEL only deletes the per-container chains that ADD never made, at the
 * cost of a process and several iptables runs. Every other plugin runs.
 */
export function chainFor(list: NetConfList, att: Attachment): PluginConf[] {
  const maps = att.capabilityArgs?.portMappings?.length ?? 0;
  return list.plugins.filter((p) => p.type !== "portmap" || maps > 0);
}

export interface CniClientOptions {
  /**
   * Make the bridge plugin's IP masquerade here, in one iptables-restore,
   * instead of by the plugin's nine iptables runs (masquerade.ts).
   */
  masquerade?: boolean;
}

export class CniClient {
  constructor(
    private readonly cmd: CommandRunner,
    readonly pluginDirs: string[] = CNI_PLUGIN_DIRS,
    options: CniClientOptions = {},
  ) {
    this.#masquerade = options.masquerade === true;
  }

  readonly #masquerade: boolean;

  /** Whether this client makes `plugin`'s masquerade itself for `att`. */
  #masq(list: NetConfList, plugin: PluginConf, att: Attachment): boolean {
    return this.#masquerade && takesMasquerade(plugin, list.name, att.containerId);
  }

  /** Absolute path of a plugin binary. */
  findPlugin(type: string): string {
    if (!PLUGIN_TYPE.test(type)) {
      throw new NetworkError(`Cannot use CNI plugin ${JSON.stringify(type)}: not a plugin name`);
    }
    for (const dir of this.pluginDirs) {
      try {
        if (Deno.statSync(`${dir}/${type}`).isFile) return `${dir}/${type}`;
      } catch { /* next dir */ }
    }
    throw new NetworkError(
      `Cannot find CNI plugin ${JSON.stringify(type)} in ${this.pluginDirs.join(", ")}`,
    );
  }

  async #exec(
    command: "ADD" | "DEL" | "CHECK",
    list: NetConfList,
    plugin: PluginConf,
    att: Attachment,
    prevResult: CniResult | undefined,
  ): Promise<CniResult | undefined> {
    const conf: Record<string, unknown> = {
      ...plugin,
      cniVersion: list.cniVersion,
      name: list.name,
    };
    delete conf.capabilities;
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
      const v = (att.capabilityArgs as Record<string, unknown> | undefined)?.[cap];
      if (on && v !== undefined) runtimeConfig[cap] = v;
    }
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    if (prevResult) conf.prevResult = prevResult;
    const bin = this.findPlugin(plugin.type);
    const res = await this.cmd.run(bin, {
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: att.containerId,
        CNI_NETNS: att.netns,
        CNI_IFNAME: att.ifName,
        CNI_PATH: this.pluginDirs.join(":"),
      },
      stdin: JSON.stringify(conf),
      timeoutMs: callTimeoutMs(60_000),
    });
    if (res.code !== 0) {
      let msg = res.stderr.trim() || `exit code ${res.code}`;
      try {
        const e = JSON.parse(res.stdout) as { code?: number; msg?: string; details?: string };
        if (e.msg) msg = `${e.msg}${e.details ? ` (${e.details})` : ""}`;
      } catch { /* not JSON */ }
      throw new NetworkError(
        `Cannot ${command} network ${JSON.stringify(list.name)}: plugin ${plugin.type}: ${msg}`,
      );
    }
    if (command !== "ADD") return undefined;
    try {
      return JSON.parse(res.stdout) as CniResult;
    } catch {
      throw new NetworkError(
        `Cannot ADD network ${
          JSON.stringify(list.name)
        }: plugin ${plugin.type} printed no JSON result`,
      );
    }
  }

  /**
   * ADD through the chain; the last plugin's result is the attachment's
   * result. `around` wraps each plugin's run (to hold a lock while it runs).
   */
  async add(
    list: NetConfList,
    att: Attachment,
    around?: <T>(plugin: PluginConf, run: () => Promise<T>) => Promise<T>,
  ): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of chainFor(list, att)) {
      const masq = this.#masq(list, plugin, att);
      const conf = masq ? { ...plugin, ipMasq: false } : plugin;
      const run = () => this.#exec("ADD", list, conf, att, prev);
      prev = around ? await around(plugin, run) : await run();
      if (masq) await setUpMasquerade(this.cmd, list.name, att.containerId, prev ?? {});
    }
    return prev ?? {};
  }

  /** DEL in reverse order. Every plugin is tried; the first error is thrown after all ran. */
  async del(list: NetConfList, att: Attachment, prevResult?: CniResult): Promise<void> {
    let first: unknown;
    const chain = chainFor(list, att).reverse();
    const dels = (async () => {
      for (const plugin of chain) {
        const conf = this.#masq(list, plugin, att) ? { ...plugin, ipMasq: false } : plugin;
        try {
          await this.#exec("DEL", list, conf, att, prevResult);
        } catch (e) {
          first ??= e;
        }
      }
    })();
    // The masquerade this client made goes beside the plugins' DELs (nothing of
    // theirs needs it), once the first plugin is spawned: its chain's name
    // costs a digest, the first of a process loads WebCrypto.
    const masqs = chain.filter((p) => this.#masq(list, p, att)).map((_) =>
      tearDownMasquerade(this.cmd, list.name, att.containerId, prevResult).catch((e) => {
        first ??= e;
      })
    );
    await Promise.all([dels, ...masqs]);
    if (first) throw first;
  }

  async check(list: NetConfList, att: Attachment, prevResult: CniResult): Promise<void> {
    for (const plugin of chainFor(list, att)) {
      await this.#exec("CHECK", list, plugin, att, prevResult);
    }
  }
}

/** The container's IPv4 address from an ADD result, without prefix length. */
export function resultIPv4(r: CniResult): string | undefined {
  const ip = r.ips?.find((i) => !i.address.includes(":"));
  return ip?.address.split("/")[0];
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * The host end of the veth a bridge-style plugin made: the result's one
 * interface outside the sandbox that is not the bridge itself.
 */
export function hostVeth(r: CniResult | undefined, bridge: string): string | undefined {
  const host = (r?.interfaces ?? []).filter((i) => !i.sandbox && i.name !== bridge);
  // Read back from a record: only a plain interface name (IFNAMSIZ) reaches /sys paths.
  return host.length === 1 && IFNAME.test(host[0].name) ? host[0].name : undefined;
}

/** The loopback attachment every sandbox gets (`lo`, no IPAM). */
export const LOOPBACK: NetConfList = {
  cniVersion: "1.0.0",
  name: "lo",
  plugins: [{ type: "loopback" }],
};
