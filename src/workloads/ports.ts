/** Host ports published by rkl workloads, whatever their kind. */
import type { PortMapping } from "../net/cni.ts";
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

/** The first mapping that is taken, with the reason, or undefined when all are free. */
export function portConflict(
  host: Host,
  mappings: PortMapping[],
): { mapping: PortMapping; reason: string } | undefined {
  const taken = publishedPorts(host);
  for (const m of mappings) {
    const owner = taken.get(`${m.hostPort}/${m.protocol}`);
    if (owner) return { mapping: m, reason: `${owner} publishes it` };
    if (host.portInUse(m.hostPort, m.protocol, m.hostIP ?? "0.0.0.0")) {
      return { mapping: m, reason: "it is in use on the host" };
    }
  }
  return undefined;
}
