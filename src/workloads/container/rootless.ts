/**
 * What a rootless rkl changes in a container's plan (cli/host.ts sets
 * `host.rootless`; nothing here runs for root):
 *
 * - cgroups: the user cannot write cgroupfs on cgroup v1 (or v2 without a
 *   delegated subtree), so the config.json has no `cgroupsPath` and no
 *   `linux.resources` (youki and runc, run as root of a user namespace, then
 *   make no cgroup). Limits the spec sets are not silently lost: one warning
 *   names each field, or `--strict-limits` refuses the create (exit 2).
 *   rkl's own default pids limit is a hardening default, not the user's: it
 *   goes without a warning (docs/rootless.md says so).
 * - published host ports: slirp4netns binds them as the user, so a port below
 *   net.ipv4.ip_unprivileged_port_start is refused with its YAML location.
 */
import { SpecError } from "../../errors.ts";
import type { LoadedContainer } from "../../spec/container.ts";
import type { Host, RootlessHost } from "../host.ts";
import { locText } from "./record.ts";
import type { ContainerPlan } from "./types.ts";

/** Field paths of the limits a container spec sets, as the user wrote them. */
export function limitFields(loaded: LoadedContainer): (string | number)[][] {
  const out: (string | number)[][] = [];
  const r = loaded.spec.resources;
  for (const kind of ["limits", "requests"] as const) {
    for (const k of ["cpu", "memory"] as const) {
      if (r?.[kind]?.[k] !== undefined) out.push(["resources", kind, k]);
    }
  }
  if (loaded.spec.pidsLimit !== undefined && loaded.spec.pidsLimit > 0) out.push(["pidsLimit"]);
  if ((loaded.spec.devices ?? []).length > 0) out.push(["devices"]);
  return out;
}

/**
 * Takes the cgroup parts out of the plan's config.json, warning once for the
 * limits the spec set, or refusing them under `strict`; refuses published
 * ports the user may not bind.
 */
export function rootlessPlan(
  host: Pick<Host, "warn"> & { rootless: RootlessHost },
  loaded: LoadedContainer,
  options: { plan: ContainerPlan; strict?: boolean },
): void {
  const { plan } = options;
  const rl = host.rootless;
  const fields = limitFields(loaded);
  if (fields.length > 0) {
    const names = fields.map((f) => f.join(".")).join(", ");
    const where = locText(loaded, fields[0]);
    if (options.strict || rl.strictLimits) {
      throw new SpecError(
        loaded.source.at(fields[0]),
        `${names} cannot be applied rootless (${rl.limitsReason}); --strict-limits refuses it`,
      );
    }
    host.warn(
      `${where}: ${names} not applied: a rootless rkl cannot write cgroups (${rl.limitsReason}); ` +
        `--strict-limits refuses such a spec`,
    );
  }
  // No cgroup rule at all, not even the devices cgroup's deny-all (the
  // runtime bind-mounts the default devices in a user namespace).
  plan.config.linux.resources = {};
  delete (plan.config.linux as { cgroupsPath?: string }).cgroupsPath;
  for (const [i, p] of loaded.spec.ports.entries()) {
    if (p.hostPort && p.hostPort < rl.unprivilegedPortStart) {
      throw new SpecError(
        loaded.source.at(["ports", i, "hostPort"]),
        `host port ${p.hostPort} is below net.ipv4.ip_unprivileged_port_start ` +
          `(${rl.unprivilegedPortStart}): a rootless rkl cannot bind it`,
      );
    }
  }
}
