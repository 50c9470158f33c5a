/**
 * A pod's resolv.conf from its dnsPolicy and dnsConfig, as the kubelet forms
 * it (pkg/kubelet/network/dns): the base (the host's resolv.conf, or nothing
 * for None), then the pod's nameservers and searches appended without
 * duplicates and its options merged by name, then cut to the limits: 3
 * nameservers, 32 search domains of at most 253 characters, 2048 characters
 * in the search line. What is cut is said in a note, as the kubelet's
 * DNSConfigForming event says it.
 */
import type { PodDns, PodResolv } from "../spec/pod.ts";
import { MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES } from "../spec/pod_limits.ts";

/** nameserver lines accumulate; the last search and options lines win (as the kubelet reads it). */
export function parseResolvConf(text: string): PodDns {
  const dns: PodDns = { servers: [], searches: [], options: [] };
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t.startsWith("#") || t.startsWith(";")) continue;
    const f = t.split(/\s+/).filter(Boolean);
    if (f[0] === "nameserver" && f[1]) dns.servers.push(f[1]);
    if (f[0] === "search") dns.searches = f.slice(1).map((s) => s.replace(/\.$/, ""));
    if (f[0] === "options") dns.options = f.slice(1);
  }
  return dns;
}

const unique = (l: string[]) => [...new Set(l)];

export function podResolvConf(
  want: PodResolv,
  hostText: string,
  hostNetwork: boolean,
): { dns: PodDns; notes: string[] } {
  const base: PodDns = want.base === "none"
    ? { servers: [], searches: [], options: [] }
    : parseResolvConf(hostText);
  // Off the host's network, its loopback resolvers answer nothing (rkl's and docker's rule).
  if (!hostNetwork) {
    base.servers = base.servers.filter((s) => !(s.startsWith("127.") || s === "::1"));
  }
  const options = new Map<string, string>();
  for (const o of base.options) {
    const i = o.indexOf(":");
    options.set(i < 0 ? o : o.slice(0, i), i < 0 ? "" : o.slice(i + 1));
  }
  for (const o of want.options) options.set(o.name, o.value ?? "");
  const notes: string[] = [];
  let servers = unique([...base.servers, ...want.nameservers]);
  if (servers.length > MAX_NAMESERVERS) {
    servers = servers.slice(0, MAX_NAMESERVERS);
    notes.push(
      `more than ${MAX_NAMESERVERS} nameservers with the host's: kept ${servers.join(" ")}`,
    );
  }
  let searches = unique([...base.searches, ...want.searches]);
  const all = searches.length;
  searches = searches.slice(0, MAX_SEARCHES).filter((s) => s.length <= 253);
  while (searches.length > 0 && searches.join(" ").length > MAX_SEARCH_CHARS) searches.pop();
  if (searches.length < all) {
    notes.push(
      `the search list is over its limits (${MAX_SEARCHES} domains of at most 253 characters, ${MAX_SEARCH_CHARS} in all) with the host's: kept ${
        searches.join(" ") || "none"
      }`,
    );
  }
  return {
    dns: {
      servers,
      searches,
      options: [...options].map(([k, v]) => v === "" ? k : `${k}:${v}`),
    },
    notes,
  };
}
