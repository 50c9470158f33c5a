/** Host ports published by rkl workloads, whatever their kind, and held by anyone on the host. */
import { ConflictError } from "../errors.ts";
import type { PortMapping } from "../net/cni.ts";
import { forwardedBy, forwardedPorts, natTable } from "../net/hostnet.ts";
import type { Host } from "./host.ts";

interface WithMappings {
  name: string;
  network?: { portMappings: PortMapping[] };
}

/** `port/proto` → who publishes it (`container web`, `pod db`). */
export function publishedPorts(host: Host): Map<string, string> {
  const out = new Map<string, string>();
  for (const kind of ["containers", "pods"] as const) {
    for (const r of host.store.list<WithMappings & { schemaVersion: number }>(kind)) {
      for (const m of r.network?.portMappings ?? []) {
        out.set(
          `${m.hostPort}/${m.protocol}`,
          `${kind === "pods" ? "pod" : "container"} ${r.name}`,
        );
      }
    }
  }
  return out;
}

/**
 * The first mapping that is taken, with the reason, or undefined when all
 * are free: published by a workload of this root, bound by a process, or
 * forwarded by a nat rule (portmap's for another state root, anyone's DNAT).
 * `nat` is an `iptables-save -t nat` dump ("" to skip that check).
 */
export function portConflict(
  host: Host,
  mappings: PortMapping[],
  options: { nat?: string; ownId?: string; records?: boolean } = {},
): { mapping: PortMapping; reason: string } | undefined {
  const taken = options.records === false ? new Map<string, string>() : publishedPorts(host);
  const forwarded = options.nat ? forwardedPorts(options.nat) : undefined;
  for (const m of mappings) {
    const owner = taken.get(`${m.hostPort}/${m.protocol}`);
    if (owner) return { mapping: m, reason: `${owner} publishes it` };
    if (host.portInUse(m.hostPort, m.protocol, m.hostIP ?? "0.0.0.0")) {
      return { mapping: m, reason: "it is in use on the host" };
    }
    const by = forwarded && forwardedBy(forwarded, m.hostPort, m.protocol, options.ownId);
    if (by) return { mapping: m, reason: by };
  }
  return undefined;
}

/**
 * Checked again right before portmap's ADD, which rkl runs one at a time on
 * the host (attach.ts): two state roots that both found a port free at their
 * reservations cannot both forward it. This root's own records were checked
 * under its store lock at the reservation.
 */
export async function assertPortsFree(
  host: Host,
  mappings: PortMapping[],
  ownId: string,
): Promise<void> {
  if (mappings.length === 0) return;
  const c = portConflict(host, mappings, {
    nat: await natTable(host.cmd),
    ownId,
    records: false,
  });
  if (c) {
    throw new ConflictError(
      `Cannot publish port ${c.mapping.hostPort}/${c.mapping.protocol}: ${c.reason}`,
    );
  }
}
