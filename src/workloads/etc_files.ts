/** The /etc/hosts, /etc/hostname and /etc/resolv.conf rkl writes for a sandbox. */

export function hostsFile(
  hostname: string,
  ip: string | undefined,
  extra: { ip: string; names: string[] }[] = [],
): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
  ];
  lines.push(`${ip ?? "127.0.1.1"}\t${hostname}`);
  for (const e of extra) lines.push(`${e.ip}\t${e.names.join(" ")}`);
  return lines.join("\n") + "\n";
}

/**
 * The host's resolv.conf without loopback nameservers, which mean nothing
 * inside another network namespace (as docker does).
 */
export function resolvConf(hostText: string): string {
  const out = hostText.split("\n").filter((l) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(l);
    return !m || !(m[1].startsWith("127.") || m[1] === "::1");
  });
  return out.join("\n").trimEnd() + "\n";
}
