/**
 * rkl's named networks: one conflist per network in the CNI config directory
 * rkl owns. `rkl0` is written on first use: in the default root with a
 * bridge of the same name and 10.89.0.0/24, as always; in any other root
 * with a bridge named after the root and a subnet no one else on the host
 * uses (see hostnet.ts).
 */
import { NetworkError, SpecError } from "../errors.ts";
import { DNS1123_LABEL } from "../base/names.ts";
import type { NetConfList } from "./cni.ts";
import { FileReadError, MAX_INPUT_BYTES } from "../sys/readfile.ts";
import { type HostFs, realFs } from "../sys/fs.ts";
import { type HostNetOptions, writeBridgeNetwork } from "./hostnet.ts";
import { readTextBoundedOn } from "./bounded.ts";

export const DEFAULT_NETWORK = "rkl0";
export const DEFAULT_SUBNET = "10.89.0.0/24";
/** The default root's conflist dir. */
export const DEFAULT_CONF_DIR = "/etc/rkl/net.d";

export interface NetworkOptions {
  /** Directory holding `<name>.conflist` files. */
  confDir: string;
  /** Where host-local keeps its leases. */
  ipamDataDir: string;
  /** The default network's subnet, when given (RKL_SUBNET, or the default root's). */
  subnet?: string;
  /** The default network's bridge (default: the network's name). */
  bridge?: string;
  /** Where the default network's subnet is chosen from when none is given. */
  candidates?: Iterable<string>;
  /** The host-wide view the default network's subnet is chosen against. */
  hostNet?: HostNetOptions;
  /** Where the conflists are read and written (default: hostNet's, else the real file system). */
  fs?: HostFs;
}

const SUBNET = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

export function checkSubnet(subnet: string): void {
  const m = SUBNET.exec(subnet);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 30 || Number(m[5]) < 8) {
    throw new SpecError(
      { file: "RKL_SUBNET" },
      `subnet ${JSON.stringify(subnet)} must be an IPv4 CIDR with a prefix from /8 to /30`,
    );
  }
}

/** The conflist rkl writes for a bridge network. */
export function bridgeConflist(
  name: string,
  options: {
    subnet: string;
    ipamDataDir: string;
    bridge?: string;
    /** Offer `ips` (host-local) and `mac` (bridge) as runtime config: fixed addresses per container. */
    staticAddresses?: boolean;
  },
): NetConfList {
  return {
    cniVersion: "1.0.0",
    name,
    plugins: [
      {
        type: "bridge",
        bridge: options.bridge ?? name,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ...(options.staticAddresses ? { capabilities: { ips: true, mac: true } } : {}),
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: options.subnet }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: options.ipamDataDir,
        },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
}

export function conflistPath(confDir: string, name: string): string {
  return `${confDir}/${name}.conflist`;
}

/** Loads network `name`, writing the default conflist for `rkl0` when it is missing. */
export async function loadNetwork(name: string, options: NetworkOptions): Promise<NetConfList> {
  if (!DNS1123_LABEL.test(name) || name.length > 15) {
    throw new NetworkError(
      `Cannot use network ${
        JSON.stringify(name)
      }: a network name is a DNS-1123 label of at most 15 characters`,
    );
  }
  const path = conflistPath(options.confDir, name);
  const fs = options.fs ?? options.hostNet?.fs ?? realFs;
  let text: string;
  try {
    text = readTextBoundedOn(fs, path, { max: MAX_INPUT_BYTES });
  } catch (e) {
    if (!(e instanceof FileReadError)) throw e;
    if (!e.notFound) {
      throw new NetworkError(`Cannot load network ${JSON.stringify(name)}: ${e.message}`);
    }
    if (name !== DEFAULT_NETWORK) {
      throw new NetworkError(`Cannot find network ${JSON.stringify(name)}: no ${path}`);
    }
    const given = options.subnet ?? (options.candidates ? undefined : DEFAULT_SUBNET);
    if (given) checkSubnet(given);
    const make = (subnet: string) =>
      bridgeConflist(name, { subnet, ipamDataDir: options.ipamDataDir, bridge: options.bridge });
    if (!options.hostNet) {
      const list = make(given ?? DEFAULT_SUBNET);
      fs.mkdir(options.confDir, { recursive: true });
      const tmp = `${path}.tmp-${Deno.pid}`;
      fs.writeTextFile(tmp, JSON.stringify(list, null, 2) + "\n");
      fs.rename(tmp, path);
      return list;
    }
    return await writeBridgeNetwork({
      path,
      make,
      bridge: options.bridge ?? name,
      subnet: given,
      candidates: options.candidates,
    }, { fs, ...options.hostNet });
  }
  let list: NetConfList;
  try {
    list = JSON.parse(text) as NetConfList;
  } catch (e) {
    throw new NetworkError(`Cannot parse ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (
    typeof list.name !== "string" || !Array.isArray(list.plugins) ||
    typeof list.cniVersion !== "string"
  ) {
    throw new NetworkError(`Cannot use ${path}: a conflist needs cniVersion, name and plugins`);
  }
  return list;
}

/** The bridge device a conflist creates, if its first plugin is `bridge`. */
export function bridgeName(list: NetConfList): string | undefined {
  const first = list.plugins[0];
  if (first?.type !== "bridge") return undefined;
  return typeof first.bridge === "string" ? first.bridge : "cni0";
}
