/**
 * What a rootless rkl checks of a pod before it makes anything (the pod's
 * create calls it when `host.rootless` is set; nothing here runs for root):
 *
 * - published host ports the user may not bind (below
 *   net.ipv4.ip_unprivileged_port_start) are refused at their YAML line, as
 *   a single container's are, before slirp4netns would fail on them;
 * - limits: the pod's own `spec.resources` are warned once here (each field
 *   named); each member's limits are warned by its own create
 *   (container/rootless.ts); under `--strict-limits` the first field of
 *   either kind refuses the pod, exit 2, before anything is made.
 */
import { SpecError } from "../errors.ts";
import type { LoadedPod } from "../spec/pod.ts";
import { limitFields } from "./container/rootless.ts";
import type { Host, RootlessHost } from "./host.ts";
import { locText } from "./pod/plan.ts";

/** The pod-level limit fields (`spec.resources.limits/requests.cpu/memory`) the spec sets. */
export function podLimitFields(loaded: LoadedPod): (string | number)[][] {
  const out: (string | number)[][] = [];
  const r = loaded.spec.resources;
  for (const kind of ["limits", "requests"] as const) {
    for (const k of ["cpu", "memory"] as const) {
      if (r?.[kind]?.[k] !== undefined) out.push(["spec", "resources", kind, k]);
    }
  }
  return out;
}

export function rootlessPodChecks(
  host: Pick<Host, "warn"> & { rootless: RootlessHost },
  loaded: LoadedPod,
): void {
  const rl = host.rootless;
  const spec = loaded.spec;
  if (!spec.hostNetwork) {
    for (const c of spec.containers) {
      for (const [j, p] of c.spec.ports.entries()) {
        if (p.hostPort && p.hostPort < rl.unprivilegedPortStart) {
          throw new SpecError(
            c.source.at(["ports", j, "hostPort"]),
            `host port ${p.hostPort} is below net.ipv4.ip_unprivileged_port_start ` +
              `(${rl.unprivilegedPortStart}): a rootless rkl cannot bind it`,
          );
        }
      }
    }
  }
  const own = podLimitFields(loaded);
  if (rl.strictLimits) {
    if (own.length > 0) {
      throw new SpecError(
        loaded.source.at(own[0]),
        `${own.map((f) => f.join(".")).join(", ")} cannot be applied rootless ` +
          `(${rl.limitsReason}); --strict-limits refuses it`,
      );
    }
    for (const c of [...spec.initContainers, ...spec.containers]) {
      const fields = limitFields(c);
      if (fields.length > 0) {
        throw new SpecError(
          c.source.at(fields[0]),
          `${fields.map((f) => f.join(".")).join(", ")} cannot be applied rootless ` +
            `(${rl.limitsReason}); --strict-limits refuses it`,
        );
      }
    }
  } else if (own.length > 0) {
    host.warn(
      `${locText(loaded, own[0])}: ${own.map((f) => f.join(".")).join(", ")} not applied: ` +
        `a rootless rkl cannot write cgroups (${rl.limitsReason}); --strict-limits refuses such a spec`,
    );
  }
}
