/** Taking a compose project down, or stopping it: dependents before their dependencies. */
import { listVolumes } from "../volumes.ts";
import { volumeNameError } from "../../base/names.ts";
import { RklError } from "../../errors.ts";
import { conflistPath } from "../../net/network.ts";
import { releaseSubnetClaims } from "../../net/hostnet.ts";
import { COMPOSE_NAME, type ComposeProject } from "../../spec/compose.ts";
import { assertBelow, pathExists, removeBelow } from "../../sys/fsutil.ts";
import {
  type ContainerRecord,
  deleteBridge,
  removeContainers,
  stopContainer,
} from "../container.ts";
import type { Host } from "../host.ts";
import { rootlessProjectDown } from "../rootless_compose.ts";
import {
  type ComposeRecord,
  LABEL_SERVICE,
  projectContainers,
  projectDir,
  volumeDir,
} from "./names.ts";

/** Removes the project's containers, networks and (with `volumes`) named volumes. */
export async function composeDown(
  host: Host,
  project: ComposeProject | undefined,
  name: string,
  options: { volumes?: boolean; removeOrphans?: boolean; timeoutSec?: number },
): Promise<string[]> {
  const rec = host.store.get<ComposeRecord>("compose", name);
  const known = project ? new Set(project.services.map((s) => s.name)) : undefined;
  const members = projectContainers(host, name);
  const going = members.filter((c) =>
    !(known && !known.has(c.labels[LABEL_SERVICE]) && !options.removeOrphans)
  );
  // Stop dependents before their dependencies, each level side by side; then remove all at once.
  const depth = stopLevels(project);
  const level = (c: ContainerRecord) => depth.get(c.labels[LABEL_SERVICE]) ?? 0;
  const levels = [...new Set(going.map(level))].sort((a, b) => a - b);
  for (const l of levels) {
    await Promise.all(
      going.filter((c) => level(c) === l).map((c) => {
        const grace = options.timeoutSec ??
          project?.services.find((s) => s.name === c.labels[LABEL_SERVICE])?.stopGraceSec ?? 10;
        return stopContainer(host, c.name, grace);
      }),
    );
  }
  // Removed side by side; an idle project bridge goes beside the DELs (its network goes below).
  const networksGoing = new Set(
    Object.values(rec?.networks ?? {}).filter((n) => !n.external).map((n) => n.rklName),
  );
  const removed = await removeContainers(host, going.map((c) => c.name), { networksGoing });
  if (!rec) return removed;
  // Rootless: the project's own netns and slirp4netns (rootless_compose.ts).
  if (host.rootless) await rootlessProjectDown(host, name);
  for (const n of Object.values(rec.networks)) {
    if (n.external) continue;
    // Names read back from the record are checked again before they reach a path.
    const conf = conflistPath(host.paths.cniConfDir, n.rklName);
    // Its bridge, when a failed earlier down left it (else gone with the last container).
    if (pathExists(`/sys/class/net/${n.rklName}`, host.fs)) await deleteBridge(host, n.rklName);
    assertBelow(host.paths.cniConfDir, conf, `network ${n.rklName}`, host.fs);
    try {
      host.fs.remove(conf);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await releaseSubnetClaims(conf, { fs: host.fs, lock: host.lock });
    removeBelow(
      `${host.paths.root}/cni/networks`,
      `${host.paths.root}/cni/networks/${n.rklName}`,
      `network ${n.rklName}`,
      host.fs,
    );
  }
  removeBelow(`${host.paths.root}/compose`, projectDir(host, name), `project ${name}`, host.fs);
  if (options.volumes) {
    for (const v of rec.volumes) {
      if (!COMPOSE_NAME.test(v)) {
        throw new RklError(
          "EPATH",
          `Refusing to remove volume ${JSON.stringify(v)} of project ${
            JSON.stringify(name)
          }: not a volume name`,
        );
      }
      removeBelow(`${host.paths.root}/volumes`, volumeDir(host, name, v), `volume ${v}`, host.fs);
    }
    // Those with a `name:` of their own that up made; another's use (a container's `run -v`)
    // keeps one, as docker's down -v refuses a volume in use.
    const inUse = new Set(
      (rec.namedVolumes?.length ? listVolumes(host) : [])
        .filter((x) => x.users.some((u) => u !== `compose project ${name}`)).map((x) => x.name),
    );
    for (const v of rec.namedVolumes ?? []) {
      if (typeof v !== "string" || volumeNameError(v) !== undefined) {
        throw new RklError(
          "EPATH",
          `Refusing to remove volume ${JSON.stringify(v)} of project ${
            JSON.stringify(name)
          }: not a volume name`,
        );
      }
      if (inUse.has(v)) continue;
      removeBelow(
        `${host.paths.root}/volumes`,
        `${host.paths.root}/volumes/${v}`,
        `volume ${v}`,
        host.fs,
      );
    }
  }
  host.store.delete("compose", name);
  return removed;
}

/**
 * Stop order for down: 0 for services nothing depends on, and one more than
 * the deepest dependent for the others, so each level can stop side by side.
 */
export function stopLevels(project: ComposeProject | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!project) return out;
  const dependents = (name: string) =>
    project.services.filter((s) => s.dependsOn.some((d) => d.service === name));
  const depthOf = (name: string, seen: Set<string>): number => {
    if (out.has(name)) return out.get(name)!;
    if (seen.has(name)) return 0; // cycles are refused at load time
    seen.add(name);
    const d = Math.max(-1, ...dependents(name).map((s) => depthOf(s.name, seen))) + 1;
    out.set(name, d);
    return d;
  };
  for (const s of project.services) depthOf(s.name, new Set());
  return out;
}

export async function composeStop(
  host: Host,
  project: ComposeProject,
  services: string[],
  options: { timeoutSec?: number } = {},
): Promise<string[]> {
  const out: string[] = [];
  for (const svc of [...project.services].reverse()) {
    if (services.length && !services.includes(svc.name)) continue;
    for (
      const c of projectContainers(host, project.name).filter((c) =>
        c.labels[LABEL_SERVICE] === svc.name
      )
    ) {
      await stopContainer(host, c.name, options.timeoutSec ?? svc.stopGraceSec, { byUser: true });
      out.push(c.name);
    }
  }
  return out;
}
