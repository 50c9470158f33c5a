/** A pod's dnsPolicy and dnsConfig, read for the resolv.conf made at create. */
import { type SourceDoc, specErrorAt, type Warning } from "../source.ts";
import type { PodResolv } from "./types.ts";

/**
 * dnsPolicy and dnsConfig as a kubelet with no cluster DNS applies them:
 * ClusterFirst (the default) and ClusterFirstWithHostNet fall back to Default,
 * the host's resolv.conf (the kubelet's MissingClusterDNS event is a warning
 * here when the policy is written out); None starts from nothing and needs
 * dnsConfig with a nameserver (the API server's rule).
 */
export function podResolv(
  src: SourceDoc,
  s: {
    dnsPolicy?: string;
    dnsConfig?: {
      nameservers?: string[];
      searches?: string[];
      options?: { name: string; value?: string }[];
    };
  },
  warnings: Warning[],
): PodResolv | undefined {
  const policy = s.dnsPolicy ?? "ClusterFirst";
  if (policy === "None" && !s.dnsConfig) {
    throw specErrorAt(
      src,
      ["spec", "dnsPolicy"],
      "dnsPolicy None needs a dnsConfig with nameservers",
    );
  }
  if (policy === "None" && (s.dnsConfig?.nameservers ?? []).length === 0) {
    throw specErrorAt(
      src,
      ["spec", "dnsConfig"],
      "dnsPolicy None needs at least one dnsConfig.nameservers entry",
    );
  }
  // ClusterFirst (kubectl writes it out) and ClusterFirstWithHostNet fall back to
  // Default without a word: no cluster DNS exists on one host (docs/kube.md).
  void warnings;
  if (!s.dnsConfig && policy !== "None") return undefined;
  return {
    base: policy === "None" ? "none" : "host",
    nameservers: s.dnsConfig?.nameservers ?? [],
    searches: s.dnsConfig?.searches ?? [],
    options: s.dnsConfig?.options ?? [],
  };
}
