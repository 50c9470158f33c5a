/**
 * A compose project's networks: each one an rkl CNI network with its own
 * conflist, bridge and subnet; `network_mode` joining another container's
 * netns; fixed addresses on a network.
 */
import { ConflictError } from "../../errors.ts";
import { bridgeConflist, conflistPath, loadNetwork } from "../../net/network.ts";
import { conflistSubnets, kernelRoutes, slash24s, writeBridgeNetwork } from "../../net/hostnet.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import type { ContainerRecord, JoinNetwork } from "../container.ts";
import { type Host, networkOptions, type RklPaths } from "../host.ts";
import { type ComposeRecord, containerName } from "./names.ts";
import { sha256Hex } from "../../base/hex.ts";

/** Subnets routed on the host (any bridge, any rkl root, anything else), from /proc/net/route. */
export function routedSubnets(routeTable: string): Set<string> {
  return new Set(kernelRoutes(routeTable).map((r) => r.subnet));
}

/**
 * The bridge (and conflist) name of a project's network. A root other than
 * the default one puts its tag in the hash: the same project name in two
 * roots gets two bridges.
 */
export async function projectNetworkName(
  paths: Pick<RklPaths, "tag">,
  project: string,
  network: string,
): Promise<string> {
  return `cmp-${(await sha256Hex(`${paths.tag ?? ""}${project}/${network}`)).slice(0, 10)}`;
}

/**
 * Writes the project's networks (conflists) that do not exist yet, each with
 * a subnet nothing on the host uses: chosen under the host-wide lock against
 * the kernel's routes and addresses and every root's networks (hostnet.ts).
 */
export async function ensureNetworks(
  host: Host,
  project: ComposeProject,
  rec: ComposeRecord,
): Promise<void> {
  for (const n of project.networks) {
    // A network listed without a subnet was being made when an earlier up stopped: made now.
    const have = rec.networks[n.name];
    if (have && (have.external || have.subnet)) continue;
    if (n.external) {
      rec.networks[n.name] = { rklName: n.name, subnet: "", external: true };
      continue;
    }
    const rklName = await projectNetworkName(host.paths, project.name, n.name);
    const path = conflistPath(host.paths.cniConfDir, rklName);
    // Listed before its conflist and claim exist, so that `down` removes them
    // even when the save after them fails or rkl dies in between.
    rec.networks[n.name] = { rklName, subnet: "", external: false };
    host.store.put("compose", rec);
    const list = await writeBridgeNetwork({
      path,
      bridge: rklName,
      subnet: n.subnet,
      candidates: slash24s("10.90"),
      make: (subnet) =>
        bridgeConflist(rklName, {
          subnet,
          ipamDataDir: `${host.paths.root}/cni/networks`,
          staticAddresses: true,
        }),
    }, networkOptions(host).hostNet!);
    const subnet = conflistSubnets(list)[0] ?? n.subnet ?? "";
    rec.networks[n.name] = { rklName, subnet, external: false };
    host.store.put("compose", rec);
  }
}

/**
 * `network_mode: service:X` (X's first replica) or `container:X` (an rkl
 * container of this root): that container's pinned netns and /etc files.
 * It must be running; a pod's member or a container in the host's
 * namespace is refused (or, for the latter, joined as the host's).
 */
export function networkToJoin(
  host: Host,
  project: ComposeProject,
  svc: ComposeService,
): { join?: JoinNetwork; id?: string; hostNetwork?: boolean } {
  if (svc.networkMode !== "service" && svc.networkMode !== "container") return {};
  const target = svc.networkMode === "service"
    ? containerName(project.name, project.services.find((s) => s.name === svc.networkTarget)!, 1)
    : svc.networkTarget!;
  const what = `network_mode ${svc.networkMode}:${svc.networkTarget} of service ${
    JSON.stringify(svc.name)
  }`;
  const rec = host.store.get<ContainerRecord>("containers", target);
  if (!rec || rec.status !== "running") {
    throw new ConflictError(
      `Cannot join the network of container ${JSON.stringify(target)} (${what}): ${
        rec ? `it is ${rec.status}` : "there is no such container"
      }`,
    );
  }
  if (rec.pod) {
    throw new ConflictError(
      `Cannot join the network of container ${
        JSON.stringify(target)
      } (${what}): it belongs to pod ${
        JSON.stringify(rec.pod)
      }; add the container to that pod instead`,
    );
  }
  // Its id is derived from its name: the creation time tells a recreated one apart.
  const id = `${rec.id}@${rec.createdAt}`;
  if (rec.hostNetwork) return { hostNetwork: true, id };
  let hostname = rec.name;
  try {
    hostname = host.fs.readTextFile(`${rec.dirs.etc}/hostname`).trim() || rec.name;
  } catch { /* the container's name */ }
  return {
    join: { container: rec.name, netns: rec.dirs.netns, etcDir: rec.dirs.etc, hostname },
    id,
  };
}

/**
 * The fixed addresses and MACs a service asks for, by rkl network; each
 * network must offer the capability (one made by an older rkl, or an external
 * one, may not).
 */
export async function fixedAddresses(
  host: Host,
  svc: ComposeService,
  rec: ComposeRecord,
): Promise<Record<string, { ips?: string[]; mac?: string }>> {
  const fixed = Object.fromEntries(
    svc.networks.filter((n) => n.ipv4Address || n.macAddress).map((n) => [
      rec.networks[n.name].rklName,
      {
        ...(n.ipv4Address ? { ips: [n.ipv4Address] } : {}),
        ...(n.macAddress ? { mac: n.macAddress } : {}),
      },
    ]),
  );
  for (const [net, want] of Object.entries(fixed)) {
    const list = await loadNetwork(net, networkOptions(host));
    const caps = list.plugins.find((p) => p.type === "bridge")?.capabilities ?? {};
    for (const [k, cap] of [["ips", "ips"], ["mac", "mac"]] as const) {
      if (want[k] !== undefined && !caps[cap]) {
        throw new ConflictError(
          `Cannot give service ${JSON.stringify(svc.name)} a fixed ${
            k === "ips" ? "address" : "MAC"
          } on network ${net}: its conflist does not offer the "${cap}" capability (run compose down and up to remake it)`,
        );
      }
    }
  }
  return fixed;
}
