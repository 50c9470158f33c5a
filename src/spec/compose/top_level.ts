/** The project's top-level networks, volumes, configs and secrets. */
import { joinPath } from "../paths.ts";
import type { Located } from "./located.ts";
import { tmpfsOptions } from "./mounts.ts";
import type { RawProject } from "./schema.ts";
import type { ComposeProject, LoadComposeOptions } from "./types.ts";
import { COMPOSE_NAME } from "./values.ts";

/**
 * Top-level names become parts of host paths and interface names: the
 * compose-spec's pattern, and no name made only of dots.
 */
export function checkTopLevelNames(L: Located, merged: RawProject): void {
  for (const kind of ["networks", "volumes", "configs", "secrets"] as const) {
    for (const n of Object.keys(merged[kind] ?? {})) {
      if (!COMPOSE_NAME.test(n)) {
        throw L.error(
          [kind, n],
          `${kind.slice(0, -1)} name ${
            JSON.stringify(n)
          } must start with a letter or digit and use only a-z, A-Z, 0-9, '_', '.', '-'`,
        );
      }
    }
  }
}

/** The networks, with `default` first when a service uses it and the files do not declare it. */
export function projectNetworks(
  merged: RawProject,
  usesDefault: boolean,
  declared: Set<string>,
): ComposeProject["networks"] {
  const networks = Object.entries(merged.networks ?? {}).map(([n, o]) => ({
    name: n,
    external: o?.external ?? false,
    subnet: o?.ipam?.config?.[0]?.subnet,
  }));
  if (usesDefault && !declared.has("default")) {
    networks.unshift({ name: "default", external: false, subnet: undefined });
  }
  return networks;
}

/**
 * rkl's compose networks are IPv4 bridges with one subnet: `enable_ipv6:
 * true`, an IPv6 subnet, or a second subnet would be dropped, so each is
 * refused at its line.
 */
export function checkNetworksIpv4(L: Located, merged: RawProject): void {
  for (const [n, o] of Object.entries(merged.networks ?? {})) {
    if (o?.enable_ipv6) {
      throw L.error(
        ["networks", n, "enable_ipv6"],
        "enable_ipv6 is not supported: rkl's compose networks are IPv4 only; remove it (services still reach each other by name over IPv4)",
      );
    }
    (o?.ipam?.config ?? []).forEach((c, i) => {
      if (c.subnet?.includes(":")) {
        throw L.error(
          ["networks", n, "ipam", "config", i, "subnet"],
          `subnet ${
            JSON.stringify(c.subnet)
          } is IPv6: rkl's compose networks are IPv4 only; remove it`,
        );
      }
      if (i > 0) {
        throw L.error(
          ["networks", n, "ipam", "config", i],
          "a second ipam config is not supported: an rkl network has one IPv4 subnet; keep one",
        );
      }
    });
  }
}

/** Configs and secrets: none external (no swarm), each from exactly one source. */
export function checkConfigsSecrets(L: Located, merged: RawProject): void {
  for (const kind of ["configs", "secrets"] as const) {
    for (const [n, o] of Object.entries(merged[kind] ?? {})) {
      if (o.external) {
        throw L.error([kind, n, "external"], `external ${kind} need a swarm; rkl has none`);
      }
      const sources = [o.file, (o as { content?: string }).content, o.environment]
        .filter((x) => x !== undefined);
      if (sources.length !== 1) {
        throw L.error(
          [kind, n],
          `${kind.slice(0, -1)} ${JSON.stringify(n)} needs exactly one of file${
            kind === "configs" ? ", content" : ""
          } or environment`,
        );
      }
    }
  }
}

/** Configs or secrets: a file (absolute), or their content (inline, or from the environment). */
export function fileSources(
  merged: RawProject,
  kind: "configs" | "secrets",
  options: LoadComposeOptions,
): ComposeProject["configs"] {
  return Object.entries(merged[kind] ?? {}).map(([n, o]) => ({
    name: n,
    file: o.file === undefined ? undefined : joinPath(options.dir, o.file),
    content: (o as { content?: string }).content ??
      (o.environment !== undefined ? options.env[o.environment] ?? "" : undefined),
  }));
}

/**
 * A named volume's driver: `local` only. Its `driver_opts` as docker's local
 * driver reads them for a bind (`type: none`, `o: bind`, `device`: an
 * absolute host directory) or a tmpfs (`type: tmpfs`, `o`: its options); a
 * device or network mount is refused at its line.
 */
export function volumeDriver(
  L: Located,
  name: string,
  o: NonNullable<RawProject["volumes"]>[string],
): { device?: string; tmpfs?: { options: string[]; readOnly: boolean } } {
  if (!o) return {};
  if (o.driver !== undefined && o.driver !== "local") {
    throw L.error(
      ["volumes", name, "driver"],
      `volume driver ${JSON.stringify(o.driver)} is not supported: rkl has the local driver only`,
    );
  }
  const opts = o.driver_opts;
  if (!opts) return {};
  for (const k of Object.keys(opts)) {
    if (!["type", "o", "device"].includes(k)) {
      throw L.error(
        ["volumes", name, "driver_opts", k],
        `driver_opts ${JSON.stringify(k)} is not one of the local driver's type, o, device`,
      );
    }
  }
  const type = String(opts.type ?? "");
  const mountOpts = String(opts.o ?? "").split(",").filter(Boolean);
  if (type === "tmpfs") {
    // The local driver mounts a tmpfs with `o` as its data (`device` is a label).
    return {
      tmpfs: tmpfsOptions(L, ["volumes", name, "driver_opts", "o"], mountOpts, ["nosuid", "nodev"]),
    };
  }
  if (
    (type !== "none" && type !== "") || !mountOpts.includes("bind") || opts.device === undefined
  ) {
    throw L.error(
      ["volumes", name, "driver_opts"],
      "driver_opts must be a bind ({type: none, o: bind, device: /abs/dir}) or a tmpfs ({type: tmpfs, device: tmpfs, o: size=64m}); rkl mounts no devices or network filesystems",
    );
  }
  const bad = mountOpts.find((x) => x !== "bind" && x !== "rbind");
  if (bad) {
    throw L.error(
      ["volumes", name, "driver_opts", "o"],
      `mount option ${
        JSON.stringify(bad)
      } is not supported with a bind volume (use :ro on the service's mount)`,
    );
  }
  const device = String(opts.device);
  if (!device.startsWith("/") || device.split("/").includes("..")) {
    throw L.error(
      ["volumes", name, "driver_opts", "device"],
      `device ${
        JSON.stringify(device)
      } must be an absolute path without '..' (docker passes it to mount as it is)`,
    );
  }
  return { device };
}
