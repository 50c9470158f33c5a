/**
 * A compose project run by a rootless rkl: one network namespace per
 * project instead of one bridge per compose network (a bridge and its veths
 * need root in the host's network namespace).
 *
 * `up` pins the project's netns at RUN_ROOT/netns/cmp_PROJECT (made by a
 * child, in the user's namespace), attaches slirp4netns to it with every
 * service's published ports, and writes the project's /etc files under its
 * compose dir: `hosts` names every service, replica, container_name, alias
 * and link as 127.0.0.1, since they all share the namespace. Each replica
 * joins that namespace (as `network_mode: service:X` does) with its own
 * hostname. `down` removes the containers first, then stops slirp4netns and
 * unpins the netns; the /etc files go with the project's dir.
 *
 * What this costs against root's networks (docs/rootless.md): services
 * are not isolated from each other by network, two services cannot listen
 * on the same port, and `ipv4_address`/`mac_address` are refused.
 */
import { RklError, SpecError } from "../errors.ts";
import { SLIRP_DNS, slirpConflist } from "../net/slirp.ts";
import type { PortMapping } from "../net/cni.ts";
import type { ComposeProject } from "../spec/compose.ts";
import { removeNetns } from "../sys/netns.ts";
import { assertBelow, pathExists, privateDir } from "../sys/fsutil.ts";
import type { JoinNetwork } from "./container.ts";
import { hostsFile, resolvConf } from "./etc_files.ts";
import type { Host, RootlessHost } from "./host.ts";
import { containerName, projectDir } from "./compose/names.ts";

/** The project's pinned netns and its slirp4netns attachment's id. */
export function projectNetns(host: Pick<Host, "paths">, project: string): {
  netns: string;
  cniId: string;
} {
  return { netns: `${host.paths.runRoot}/netns/cmp_${project}`, cniId: `cmp_${project}` };
}

/** Every service's published ports, as one slirp4netns publishes them. */
export function projectPorts(project: ComposeProject): PortMapping[] {
  return project.services.filter((s) => s.networkMode === undefined).flatMap((s) =>
    s.ports.map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: p.protocol,
      ...(p.hostIP ? { hostIP: p.hostIP } : {}),
    }))
  );
}

/** What a rootless up refuses before it makes anything: one line each, exit 2. */
export function rootlessComposeChecks(rl: RootlessHost, project: ComposeProject): void {
  const file = project.files[0] ?? project.dir;
  for (const s of project.services) {
    const at = { file, path: `services.${s.name}` };
    for (const p of s.ports) {
      if (p.hostPortEnd !== undefined) {
        throw new SpecError(
          { ...at, path: `${at.path}.ports` },
          `a host port range (${p.hostPort}-${p.hostPortEnd}) is not supported rootless; ` +
            `name one port`,
        );
      }
      if (p.hostPort < rl.unprivilegedPortStart) {
        throw new SpecError(
          { ...at, path: `${at.path}.ports` },
          `host port ${p.hostPort} is below net.ipv4.ip_unprivileged_port_start ` +
            `(${rl.unprivilegedPortStart}): a rootless rkl cannot bind it`,
        );
      }
    }
    for (const n of s.networks) {
      if (n.ipv4Address || n.macAddress) {
        throw new SpecError(
          { ...at, path: `${at.path}.networks.${n.name}` },
          `${n.ipv4Address ? "ipv4_address" : "mac_address"} is not supported rootless: ` +
            `a rootless project's services share one network namespace`,
        );
      }
    }
    if (rl.strictLimits) {
      const set = [
        s.cpus !== undefined && "cpus",
        s.memory !== undefined && "memory",
        s.pidsLimit !== undefined && s.pidsLimit > 0 && "pids_limit",
      ].filter(Boolean);
      if (set.length > 0) {
        throw new SpecError(
          at,
          `${set.join(", ")} cannot be applied rootless (${rl.limitsReason}); ` +
            `--strict-limits refuses it`,
        );
      }
    }
  }
  const seen = new Map<string, string>();
  for (const s of project.services) {
    if (s.networkMode !== undefined) continue;
    for (const p of s.ports) {
      const k = `${p.containerPort}/${p.protocol}`;
      const other = seen.get(k);
      if (other && other !== s.name) {
        throw new SpecError(
          { file, path: `services.${s.name}.ports` },
          `container port ${k} is published by service ${JSON.stringify(other)} too: ` +
            `a rootless project's services share one network namespace`,
        );
      }
      seen.set(k, s.name);
    }
  }
}

/** Every name a service answers to, all at 127.0.0.1 in the shared namespace. */
function projectNames(project: ComposeProject): string[] {
  const names = new Set<string>();
  for (const s of project.services) {
    names.add(s.name);
    if (s.hostname) names.add(s.hostname);
    for (let n = 1; n <= s.replicas; n++) names.add(containerName(project.name, s, n));
    for (const net of s.networks) net.aliases.forEach((a) => names.add(a));
    for (const l of s.links) names.add(l.alias);
  }
  return [...names];
}

/**
 * Makes (or finds) the project's netns with slirp4netns on it, writes its
 * /etc files, and returns the namespace each replica joins.
 */
export async function rootlessProjectUp(
  host: Host,
  rl: RootlessHost,
  project: ComposeProject,
): Promise<(svc: ComposeProject["services"][number], n: number) => JoinNetwork> {
  const { netns, cniId } = projectNetns(host, project.name);
  assertBelow(`${host.paths.runRoot}/netns`, netns, `project ${project.name}`, host.fs);
  const list = slirpConflist(`cmp_${project.name}`);
  const att = { containerId: cniId, netns, ifName: "tap0" };
  let live = false;
  if (pathExists(netns, host.fs)) {
    try {
      await host.cni.check(list, att, {});
      live = true;
    } catch {
      // A leftover (slirp4netns gone): made again.
      await host.cni.del(list, att).catch(() => {});
      removeNetns(host.sys, netns, host.fs);
    }
  }
  if (!live) {
    host.fs.mkdir(`${host.paths.runRoot}/netns`, { recursive: true, mode: 0o755 });
    rl.createNetns(netns);
    try {
      await host.cni.add(list, {
        ...att,
        capabilityArgs: { portMappings: projectPorts(project) },
      });
    } catch (e) {
      try {
        removeNetns(host.sys, netns, host.fs);
      } catch { /* reported below */ }
      throw e;
    }
  }
  const etc = `${projectDir(host, project.name)}/etc`;
  privateDir(projectDir(host, project.name), 0o755, host.fs);
  host.fs.mkdir(etc, { recursive: true });
  let resolv = "";
  try {
    resolv = resolvConf(host.fs.readTextFile("/etc/resolv.conf"));
  } catch { /* none */ }
  if (!/^\s*nameserver\s/m.test(resolv)) resolv += `nameserver ${SLIRP_DNS}\n`;
  host.fs.writeTextFile(`${etc}/resolv.conf`, resolv);
  host.fs.writeTextFile(`${etc}/hostname`, `${project.name}\n`);
  host.fs.writeTextFile(
    `${etc}/hosts`,
    hostsFile(project.name, undefined, [{ ip: "127.0.0.1", names: projectNames(project) }]),
  );
  return (svc, n) => ({
    container: `project ${project.name}`,
    netns,
    etcDir: etc,
    hostname: svc.hostname ?? containerName(project.name, svc, n),
  });
}

/** Stops the project's slirp4netns and unpins its netns (after its containers are gone). */
export async function rootlessProjectDown(host: Host, project: string): Promise<void> {
  const { netns, cniId } = projectNetns(host, project);
  assertBelow(`${host.paths.runRoot}/netns`, netns, `project ${project}`, host.fs);
  await host.cni.del(slirpConflist(`cmp_${project}`), {
    containerId: cniId,
    netns,
    ifName: "tap0",
  });
  if (pathExists(netns, host.fs)) {
    try {
      removeNetns(host.sys, netns, host.fs);
    } catch (e) {
      throw new RklError(
        "ETEARDOWN",
        `Cannot remove the network namespace of project ${JSON.stringify(project)}: ${
          (e as Error).message
        }`,
      );
    }
  }
}
