/**
 * The bridge plugin's IP masquerade (`ipMasq: true`), made by rkl in one
 * iptables-restore instead of by the plugin. The plugin makes it with nine
 * iptables runs at ADD (a version probe, a chain listing, the chain, then a
 * check and an append for each of three rules) and takes it down with six at
 * DEL; each run loads the whole nat table, 3-8 ms apiece on this host, 30-45
 * ms of a pod's ADD in all. rkl asks the plugin for its veth and address
 * with `ipMasq: false` and writes the same rules itself in one transaction:
 * the chain the plugin would name (`CNI-` and 24 hex digits of
 * SHA-512(network + container id)), the same two rules in it and the same
 * jump from POSTROUTING, each with the plugin's comment, so that the plugin's
 * own DEL, rkl's clean-up by id (portmap.ts natCleanupForId) and an older rkl
 * all find them as if the plugin had made them. At DEL the three go in one
 * transaction too, beside the plugin's DEL.
 */
import type { CommandRunner } from "../sys/command.ts";
import { NetworkError } from "../errors.ts";
import { hex } from "../base/hex.ts";

/** What is read of a plugin's configuration (cni.ts's PluginConf; not imported: cni.ts imports this file). */
interface PluginConf {
  type: string;
  [key: string]: unknown;
}

/** What is read of an ADD result (cni.ts's CniResult). */
interface CniResult {
  ips?: { address: string }[];
}

/** Names the rules may carry: what rkl makes (DNS-1123 networks, its CNI ids). */
const SAFE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/**
 * Whether rkl makes `plugin`'s masquerade in its place: a bridge plugin with
 * `ipMasq` on, IPAM (the plugin masquerades only then) and no other backend
 * asked for, for plain names only.
 */
export function takesMasquerade(plugin: PluginConf, network: string, containerId: string): boolean {
  return plugin.type === "bridge" && plugin.ipMasq === true &&
    typeof plugin.ipam === "object" && plugin.ipam !== null &&
    (plugin.ipMasqBackend === undefined || plugin.ipMasqBackend === "iptables") &&
    SAFE.test(network) && SAFE.test(containerId);
}

/** The chain the bridge plugin names for (network, container id): containernetworking/plugins' utils.FormatChainName. */
export async function masqChain(network: string, containerId: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(network + containerId));
  return `CNI-${hex(d)}`.slice(0, 28);
}

/** The plugin's comment (utils.FormatComment), quoted as iptables-save prints it. */
function comment(network: string, containerId: string): string {
  return `"name: \\"${network}\\" id: \\"${containerId}\\""`;
}

interface Address {
  /** The address alone. */
  ip: string;
  /** Its network, as `a.b.c.d/len`. */
  net: string;
  v6: boolean;
}

/** The result's addresses, each with its network; undefined when one is not an address. */
export function resultAddresses(r: CniResult | undefined): Address[] | undefined {
  const out: Address[] = [];
  for (const { address } of r?.ips ?? []) {
    const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(address);
    if (!m) return undefined;
    const [, ip, lenText] = m;
    const len = Number(lenText);
    if (ip.includes(":")) {
      const net = v6Network(ip, len);
      if (!net) return undefined;
      out.push({ ip, net, v6: true });
    } else {
      const parts = ip.split(".").map(Number);
      if (
        parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255) ||
        len > 32
      ) return undefined;
      const n = parts.reduce((a, p) => a * 256 + p, 0);
      const mask = len === 0 ? 0 : 2 ** 32 - 2 ** (32 - len);
      const base = Number((BigInt(n) & BigInt(mask)).toString());
      const dotted = [24, 16, 8, 0].map((s) => (base >>> s) & 255).join(".");
      out.push({ ip, net: `${dotted}/${len}`, v6: false });
    }
  }
  return out;
}

function v6Network(ip: string, len: number): string | undefined {
  if (len > 128) return undefined;
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...Array(Math.max(0, fill)).fill("0"), ...tail];
  if (all.length !== 8 || all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  let n = 0n;
  for (const g of all) n = (n << 16n) | BigInt(parseInt(g, 16));
  const mask = len === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - len)) - 1n);
  const base = n & mask;
  const out: string[] = [];
  for (let i = 7; i >= 0; i--) out.push(((base >> BigInt(i * 16)) & 0xffffn).toString(16));
  return `${out.join(":")}/${len}`;
}

/** The iptables-restore batch that makes the masquerade of `addrs` (one family). */
export function masqAddBatch(
  chain: string,
  network: string,
  containerId: string,
  addrs: Address[],
): string {
  const c = comment(network, containerId);
  const out = ["*nat", `:${chain} - [0:0]`];
  for (const a of addrs) {
    const multicast = a.v6 ? "ff00::/8" : "224.0.0.0/4";
    out.push(
      `-A ${chain} -d ${a.net} -m comment --comment ${c} -j ACCEPT`,
      `-A ${chain} ! -d ${multicast} -m comment --comment ${c} -j MASQUERADE`,
    );
  }
  for (const a of addrs) {
    out.push(`-A POSTROUTING -s ${a.ip}/${a.v6 ? 128 : 32} -m comment --comment ${c} -j ${chain}`);
  }
  out.push("COMMIT", "");
  return out.join("\n");
}

/** The batch that removes what masqAddBatch made for `addrs`, rule by rule. */
export function masqDelBatch(
  chain: string,
  network: string,
  containerId: string,
  addrs: Address[],
): string {
  const c = comment(network, containerId);
  const out = ["*nat"];
  for (const a of addrs) {
    out.push(`-D POSTROUTING -s ${a.ip}/${a.v6 ? 128 : 32} -m comment --comment ${c} -j ${chain}`);
  }
  out.push(`-F ${chain}`, `-X ${chain}`, "COMMIT", "");
  return out.join("\n");
}

/**
 * From an `iptables-save -t nat`: the batch that removes every jump to
 * `chain`, then the chain; undefined when neither is there.
 */
export function masqCleanupBatch(natDump: string, chain: string): string | undefined {
  const lines = natDump.split("\n");
  const jumps = lines.filter((l) => l.startsWith("-A ") && l.endsWith(` -j ${chain}`));
  const declared = lines.some((l) => l.startsWith(`:${chain} `));
  if (jumps.length === 0 && !declared) return undefined;
  const out = ["*nat", ...jumps.map((l) => `-D ${l.slice(3)}`)];
  if (declared) out.push(`-F ${chain}`, `-X ${chain}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

const tools = (v6: boolean) =>
  v6 ? { save: "ip6tables-save", restore: "ip6tables-restore" } : {
    save: "iptables-save",
    restore: "iptables-restore",
  };

async function restore(cmd: CommandRunner, v6: boolean, batch: string) {
  return await cmd.run(tools(v6).restore, { args: ["-w", "5", "--noflush"], stdin: batch });
}

/** Makes the masquerade of ADD's `result` for (network, container id), one transaction per family. */
export async function setUpMasquerade(
  cmd: CommandRunner,
  network: string,
  containerId: string,
  result: CniResult,
): Promise<void> {
  const addrs = resultAddresses(result);
  if (!addrs) {
    throw new NetworkError(
      `Cannot masquerade network ${
        JSON.stringify(network)
      }: the bridge plugin's result has an address that is not one`,
    );
  }
  const chain = await masqChain(network, containerId);
  for (const v6 of [false, true]) {
    const mine = addrs.filter((a) => a.v6 === v6);
    if (mine.length === 0) continue;
    const r = await restore(cmd, v6, masqAddBatch(chain, network, containerId, mine));
    if (r.code !== 0) {
      throw new NetworkError(
        `Cannot masquerade network ${JSON.stringify(network)}: ${tools(v6).restore}: ${
          r.stderr.trim() || `exit code ${r.code}`
        }`,
      );
    }
  }
}

/**
 * Removes the masquerade of (network, container id): the rules of `result`'s
 * addresses in one transaction; where that fails (gone already, made twice,
 * or no result), whatever jumps to the chain, and the chain, by a dump.
 */
export async function tearDownMasquerade(
  cmd: CommandRunner,
  network: string,
  containerId: string,
  result: CniResult | undefined,
): Promise<void> {
  const chain = await masqChain(network, containerId);
  const addrs = resultAddresses(result) ?? [];
  for (const v6 of [false, true]) {
    const mine = addrs.filter((a) => a.v6 === v6);
    if (mine.length > 0) {
      const r = await restore(cmd, v6, masqDelBatch(chain, network, containerId, mine));
      if (r.code === 0) continue;
    } else if (v6) continue; // no IPv6 address: nothing of this family was made
    const dump = await cmd.run(tools(v6).save, { args: ["-t", "nat"] });
    if (dump.code !== 0) {
      throw new NetworkError(
        `Cannot remove the masquerade of network ${JSON.stringify(network)}: ${tools(v6).save}: ${
          dump.stderr.trim() || `exit code ${dump.code}`
        }`,
      );
    }
    const batch = masqCleanupBatch(dump.stdout, chain);
    if (!batch) continue;
    const r = await restore(cmd, v6, batch);
    if (r.code !== 0) {
      throw new NetworkError(
        `Cannot remove the masquerade of network ${JSON.stringify(network)}: ${
          tools(v6).restore
        }: ${r.stderr.trim() || `exit code ${r.code}`}`,
      );
    }
  }
}
