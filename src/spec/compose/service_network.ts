/**
 * A service's networking: its network_mode, fixed addresses and MACs, its
 * networks (the default one when it names none), and its dependencies
 * (depends_on, links, a joined service).
 */
import type { PathSegment } from "../source.ts";
import type { RawService } from "./schema.ts";
import type { ComposeService, DependencyCondition, ServiceContext } from "./types.ts";
import { dependsMap, type networksMap } from "./values.ts";

type NetworkMode = ComposeService["networkMode"];
type Deps = Record<
  string,
  { condition?: DependencyCondition; required?: boolean; restart?: boolean }
>;

/** `network_mode`: host, none, or another service's or container's namespace. */
export function networkModeOf(
  ctx: ServiceContext,
  svc: string,
  s: RawService,
): { networkMode: NetworkMode; networkTarget?: string } {
  const { L } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  if (s.network_mode === undefined || s.network_mode === "bridge" || s.network_mode === "default") {
    return { networkMode: undefined };
  }
  const join = /^(service|container):(.+)$/.exec(s.network_mode);
  if (s.network_mode !== "host" && s.network_mode !== "none" && !join) {
    throw L.error(
      at("network_mode"),
      `network_mode ${
        JSON.stringify(s.network_mode)
      } must be bridge, host, none, service:NAME or container:NAME`,
    );
  }
  if (s.networks !== undefined) {
    throw L.error(at("network_mode"), "network_mode cannot be combined with networks");
  }
  if (s.mac_address !== undefined) {
    throw L.error(
      at("mac_address"),
      `mac_address cannot be combined with network_mode ${s.network_mode}: the service has no interface of its own`,
    );
  }
  if (!join) return { networkMode: s.network_mode as "host" | "none" };
  // docker refuses these with another container's network namespace.
  for (const k of ["ports", "hostname", "mac_address"] as const) {
    if ((s as Record<string, unknown>)[k] !== undefined) {
      throw L.error(
        at(k),
        `${k} cannot be combined with network_mode ${s.network_mode}: set it on ${join[2]}`,
      );
    }
  }
  if (join[1] === "service" && !(join[2] in ctx.services)) {
    throw L.error(at("network_mode"), `service ${JSON.stringify(join[2])} is not defined`);
  }
  if (join[1] === "service" && join[2] === svc) {
    throw L.error(at("network_mode"), "a service cannot join its own network namespace");
  }
  if (join[1] === "container" && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(join[2])) {
    throw L.error(
      at("network_mode"),
      `container name ${JSON.stringify(join[2])} must use a-z, A-Z, 0-9, '_', '.', '-'`,
    );
  }
  return { networkMode: join[1] as "service" | "container", networkTarget: join[2] };
}

/** Fixed addresses and MACs: given to CNI (host-local's `ips`, bridge's `mac`). */
export function checkFixedAddresses(
  ctx: ServiceContext,
  svc: string,
  s: RawService,
  nets: ReturnType<typeof networksMap>,
): void {
  const { L } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  type NetOpts = { ipv4_address?: string; ipv6_address?: string; mac_address?: string };
  const fixedCount = (s.mac_address !== undefined ? 1 : 0) +
    Object.values(nets).filter((o) => {
      const x = o as NetOpts | null;
      return x?.ipv4_address !== undefined || x?.mac_address !== undefined;
    }).length;
  if (fixedCount > 0 && (s.deploy?.replicas ?? s.scale ?? 1) > 1) {
    throw L.error(
      at(s.mac_address !== undefined ? "mac_address" : "networks"),
      "a fixed address or MAC cannot be given to more than one replica",
    );
  }
  const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
  if (s.mac_address !== undefined && !MAC.test(s.mac_address)) {
    throw L.error(
      at("mac_address"),
      `mac_address ${JSON.stringify(s.mac_address)} must look like "02:42:ac:11:00:02"`,
    );
  }
  for (const [n, o] of Object.entries(nets)) {
    const x = o as NetOpts | null;
    if (x?.ipv4_address !== undefined && !/^(\d{1,3})(\.\d{1,3}){3}$/.test(x.ipv4_address)) {
      throw L.error(
        at("networks", n, "ipv4_address"),
        `ipv4_address ${JSON.stringify(x.ipv4_address)} must be an IPv4 address`,
      );
    }
    if (x?.mac_address !== undefined && !MAC.test(x.mac_address)) {
      throw L.error(
        at("networks", n, "mac_address"),
        `mac_address ${JSON.stringify(x.mac_address)} must look like "02:42:ac:11:00:02"`,
      );
    }
    if (x?.ipv6_address !== undefined) {
      // docker wants a network with enable_ipv6 and an IPv6 subnet for it; rkl's have neither.
      throw L.error(
        at("networks", n, "ipv6_address"),
        "ipv6_address is not supported: rkl's compose networks are IPv4 only; remove it and reach the service by its name (or an ipv4_address)",
      );
    }
  }
}

/**
 * Checks the service's networks are declared; one with none (and no
 * network_mode) goes on `default`, added here. True when it is on `default`.
 */
export function defaultNetwork(
  ctx: ServiceContext,
  svc: string,
  nets: ReturnType<typeof networksMap>,
  networkMode: NetworkMode,
): boolean {
  for (const n of Object.keys(nets)) {
    if (!ctx.declared.networks.has(n) && n !== "default") {
      throw ctx.L.error(
        ["services", svc, "networks", n],
        `network ${JSON.stringify(n)} is not declared in the top-level networks`,
      );
    }
  }
  if (networkMode) {
    // No CNI network: the host's namespace, or loopback only.
    return false;
  }
  if (Object.keys(nets).length === 0) {
    nets.default = null;
    return true;
  }
  return "default" in nets;
}

/** `depends_on`, with `links` and a joined service started first; each must be defined. */
export function dependencies(
  ctx: ServiceContext,
  svc: string,
  s: RawService,
  networkMode: NetworkMode,
  networkTarget: string | undefined,
): { deps: Deps; links: (readonly [string, string])[] } {
  const { L, services } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  const deps = { ...dependsMap(s.depends_on) };
  // links: SERVICE[:ALIAS]; compose starts linked services first.
  const links = (s.links ?? []).map((l, i) => {
    const [service, alias = service, ...rest] = l.split(":");
    if (
      rest.length > 0 || !(service in services) || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)
    ) {
      throw L.error(
        at("links", i),
        service in services || rest.length > 0
          ? `link ${JSON.stringify(l)} must look like "SERVICE" or "SERVICE:ALIAS"`
          : `service ${JSON.stringify(service)} is not defined`,
      );
    }
    if (!(service in deps)) deps[service] = { condition: "service_started" };
    return [service, alias] as const;
  });
  // The joined service starts first and stops last, as docker compose orders them.
  if (networkMode === "service" && !(networkTarget! in deps)) {
    deps[networkTarget!] = { condition: "service_started" };
  }
  for (const d of Object.keys(deps)) {
    if (!(d in services)) {
      throw L.error(
        at("depends_on", Array.isArray(s.depends_on) ? s.depends_on.indexOf(d) : d),
        `service ${JSON.stringify(d)} is not defined`,
      );
    }
  }
  return { deps, links };
}
