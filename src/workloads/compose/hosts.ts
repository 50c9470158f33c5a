/**
 * Name resolution for a compose project: each container's /etc/hosts
 * (bind-mounted from outside its rootfs) lists every project container,
 * rewritten in place whenever one comes or goes.
 */
import type { ContainerRecord } from "../container.ts";
import { hostsFile } from "../etc_files.ts";
import type { Host } from "../host.ts";
import {
  LABEL_CONTAINER_NAME,
  LABEL_LINKS,
  LABEL_NUMBER,
  LABEL_SERVICE,
  projectContainers,
} from "./names.ts";

/** Rewrites every project container's /etc/hosts in place (the files are bind-mounted). */
export function writeProjectHosts(host: Host, project: string): void {
  const members = projectContainers(host, project);
  const ipsOf = (c: ContainerRecord) => {
    const m = new Map<string, string>();
    if (c.network?.ip) m.set(c.network.name, c.network.ip);
    for (const x of c.extraNetworks ?? []) if (x.ip) m.set(x.name, x.ip);
    return m;
  };
  for (const c of members) {
    if (c.hostNetwork) continue; // keeps the host's own /etc/hosts, as docker's host mode does
    const mine = ipsOf(c);
    const extra: { ip: string; names: string[] }[] = [];
    // links: more names for a service, in this container's file only.
    const linked = new Map<string, string[]>();
    for (const l of (c.labels[LABEL_LINKS] ?? "").split(",").filter(Boolean)) {
      const [svc, alias] = l.split(":");
      linked.set(svc, [...(linked.get(svc) ?? []), alias]);
    }
    for (const o of members) {
      if (o.name === c.name) continue;
      const theirs = ipsOf(o);
      // An address on a network both share; else the other's first address
      // (names are project-wide in rkl, traffic between networks is routed by the host).
      const shared = [...theirs].find(([net]) => mine.has(net));
      const [net, ip] = shared ?? [...theirs][0] ?? [];
      if (!ip) continue;
      const aliases = shared
        ? (o.labels[`org.rkl.compose.aliases.${net}`] ?? "").split(",").filter(Boolean)
        : [];
      const written = o.labels[LABEL_CONTAINER_NAME];
      extra.push({
        ip,
        names: [
          ...new Set([
            o.labels[LABEL_SERVICE],
            o.name,
            ...(written ? [written] : []),
            ...aliases,
            ...(Number(o.labels[LABEL_NUMBER]) === 1
              ? linked.get(o.labels[LABEL_SERVICE]) ?? []
              : []),
          ]),
        ],
      });
    }
    try {
      // In place: truncating keeps the inode the container has bind-mounted.
      const own = host.fs.readTextFile(`${c.dirs.etc}/hostname`).trim() || c.name;
      host.fs.writeTextFile(`${c.dirs.etc}/hosts`, hostsFile(own, c.network?.ip, extra));
    } catch { /* container dir being removed */ }
  }
}
