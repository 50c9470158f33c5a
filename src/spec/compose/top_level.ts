/** The project's top-level networks, volumes, configs and secrets. */
import { joinPath } from "../paths.ts";
import type { Located } from "./located.ts";
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
 * absolute host directory); a tmpfs or a device mount is refused at its line.
 */
export function volumeDriver(
  L: Located,
  name: string,
  o: NonNullable<RawProject["volumes"]>[string],
): { device?: string } {
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
    throw L.error(
      ["volumes", name, "driver_opts", "type"],
      "a tmpfs volume is not supported: give the service a tmpfs mount instead (volumes type tmpfs or tmpfs:)",
    );
  }
  if (
    (type !== "none" && type !== "") || !mountOpts.includes("bind") || opts.device === undefined
  ) {
    throw L.error(
      ["volumes", name, "driver_opts"],
      "driver_opts must be a bind ({type: none, o: bind, device: /abs/dir}); rkl mounts no devices or network filesystems",
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
