/** A pod's /etc files (hosts, hostname, resolv.conf) and the hosts entries a group of pods shares. */
import type { PodDns, PodResolv } from "../../spec/pod.ts";
import { HOSTS_GROUP, HOSTS_NAMES } from "../../spec/names.ts";
import { podResolvConf } from "../dns.ts";
import { hostsFile, resolvConf } from "../etc_files.ts";
import type { Host } from "../host.ts";
import type { PodRecord } from "./types.ts";

export function writeEtcFiles(
  host: Pick<Host, "fs">,
  rec: PodRecord,
  subdomain: string | undefined,
  aliases: { ip: string; hostnames: string[] }[] = [],
  dns?: PodDns,
  podResolv?: PodResolv,
  warn: (note: string) => void = () => {},
): void {
  const extra = aliases.length > 0
    ? `\n# Entries added by HostAliases.\n${
      aliases.map((a) => `${a.ip}\t${a.hostnames.join("\t")}\n`).join("")
    }`
    : "";
  const names = subdomain
    ? [`${rec.hostname}.${subdomain}.${rec.namespace}.svc.cluster.local`, rec.hostname]
    : [rec.hostname];
  if (!dns && podResolv) {
    // dnsPolicy None or a dnsConfig, on the pod's network or the host's.
    let hostText = "";
    try {
      if (podResolv.base === "host") hostText = host.fs.readTextFile("/etc/resolv.conf");
    } catch { /* none on the host */ }
    const made = podResolvConf(podResolv, hostText, rec.hostNetwork);
    made.notes.forEach(warn);
    dns = made.dns;
  }
  if (rec.hostNetwork) {
    // The host's files, but a manifest's dnsPolicy None or dnsConfig still shapes resolv.conf.
    const own = podResolv ? dns : undefined;
    for (const f of ["hosts", "hostname", ...(own ? [] : ["resolv.conf"])]) {
      host.fs.copyFile(`/etc/${f}`, `${rec.dirs.etc}/${f}`);
    }
    if (own) host.fs.writeTextFile(`${rec.dirs.etc}/resolv.conf`, dnsResolvConf(own));
    if (extra) host.fs.writeTextFile(`${rec.dirs.etc}/hosts`, extra, { append: true });
    return;
  }
  const hosts = hostsFile(names.join("\t"), rec.network?.ip);
  host.fs.writeTextFile(`${rec.dirs.etc}/hosts`, hosts + extra);
  host.fs.writeTextFile(`${rec.dirs.etc}/hostname`, `${rec.hostname}\n`);
  if (dns) {
    host.fs.writeTextFile(`${rec.dirs.etc}/resolv.conf`, dnsResolvConf(dns));
    return;
  }
  let resolv = "";
  try {
    resolv = host.fs.readTextFile("/etc/resolv.conf");
  } catch { /* none on the host */ }
  host.fs.writeTextFile(`${rec.dirs.etc}/resolv.conf`, resolvConf(resolv));
}

/** resolv.conf from a DNS config (the CRI's DNSConfig), as the kubelet writes it. */
export function dnsResolvConf(dns: PodDns): string {
  const lines = [
    ...(dns.searches.length > 0 ? [`search ${dns.searches.join(" ")}`] : []),
    ...dns.servers.map((s) => `nameserver ${s}`),
    ...(dns.options.length > 0 ? [`options ${dns.options.join(" ")}`] : []),
  ];
  return lines.join("\n") + "\n";
}

/**
 * Pods that share the annotation {@linkcode HOSTS_GROUP} (a converted
 * compose project) find each other by name: each one's /etc/hosts ends with
 * the others' addresses and names, rewritten in place (same inode, so running
 * containers see it) whenever a pod of the group comes or goes.
 */
export function writeGroupHosts(host: Host, group: string): void {
  const MARK = "# rkl hosts group";
  const members = host.store.list<PodRecord>("pods").filter((p) =>
    p.annotations?.[HOSTS_GROUP] === group
  );
  const entries = members.filter((p) => p.network?.ip && !p.hostNetwork).map((p) => ({
    pod: p.name,
    line: `${p.network!.ip}\t${
      [...new Set([p.hostname, ...(p.annotations[HOSTS_NAMES] ?? "").split(",")])]
        .filter((n) => /^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/.test(n)).join(" ")
    }`,
  }));
  for (const p of members) {
    if (p.hostNetwork) continue;
    const path = `${p.dirs.etc}/hosts`;
    try {
      const text = host.fs.readTextFile(path);
      const base = text.includes(`\n${MARK}`) ? text.slice(0, text.indexOf(`\n${MARK}`) + 1) : text;
      const others = entries.filter((e) => e.pod !== p.name).map((e) => e.line);
      host.fs.writeTextFile(
        path,
        others.length > 0 ? `${base}${MARK} ${group}\n${others.join("\n")}\n` : base,
      );
    } catch { /* a pod being made or removed */ }
  }
}
