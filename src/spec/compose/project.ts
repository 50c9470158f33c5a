/** Checks across the services of a project, and their dependency order. */
import type { Located } from "./located.ts";
import type { ComposeService } from "./types.ts";

/**
 * Container names are DNS labels (lower case, '_' and '.' become '-'): two
 * services that differ only there would share their containers' names. Then
 * each service's dependencies must be enabled, and its container_name valid
 * and for one replica.
 */
export function checkServices(
  L: Located,
  out: ComposeService[],
  enabledNames: Set<string>,
): void {
  const derived = new Map<string, string>();
  for (const s of out) {
    if (s.containerName) continue;
    const key = s.name.toLowerCase().replace(/[^a-z0-9-]/g, "-");
    const other = derived.get(key);
    if (other !== undefined) {
      throw L.error(
        ["services", s.name],
        `service name ${JSON.stringify(s.name)} gives the same container names as ${
          JSON.stringify(other)
        } (names are lower-cased, '_' and '.' become '-'): rename one or set container_name`,
      );
    }
    derived.set(key, s.name);
  }
  for (const s of out) {
    for (const d of s.dependsOn) {
      if (!enabledNames.has(d.service)) {
        throw L.error(
          ["services", s.name, "depends_on"],
          `service ${JSON.stringify(d.service)} is required but not enabled (profiles)`,
        );
      }
    }
    if (s.containerName && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(s.containerName)) {
      throw L.error(
        ["services", s.name, "container_name"],
        `container_name ${
          JSON.stringify(s.containerName)
        } must start with a letter or digit and use only a-z, A-Z, 0-9, '_', '.', '-' (63 at most)`,
      );
    }
    if (s.containerName && s.replicas > 1) {
      throw L.error(
        ["services", s.name, "container_name"],
        "container_name cannot be used with more than one replica",
      );
    }
  }
}

/** The services in dependency order (dependencies first); a cycle is an error at its depends_on. */
export function dependencyOrder(L: Located, out: ComposeService[]): ComposeService[] {
  const order: ComposeService[] = [];
  const state = new Map<string, "visiting" | "done">();
  const byName = new Map(out.map((s) => [s.name, s]));
  const visitSvc = (s: ComposeService, chain: string[]) => {
    if (state.get(s.name) === "done") return;
    if (state.get(s.name) === "visiting") {
      const cycle = [...chain.slice(chain.indexOf(s.name)), s.name];
      throw L.error(["services", s.name, "depends_on"], `dependency cycle: ${cycle.join(" -> ")}`);
    }
    state.set(s.name, "visiting");
    for (const d of s.dependsOn) visitSvc(byName.get(d.service)!, [...chain, s.name]);
    state.set(s.name, "done");
    order.push(s);
  };
  for (const s of out) visitSvc(s, []);
  return order;
}
