import assert from "node:assert/strict";
import { formatNodeCheck, type HostView, nodeChecks } from "./doctor.ts";

const INSTALLED = {
  config: "/var/lib/kubelet/config.yaml",
  unit: "/etc/systemd/system/kubelet.service",
};

function fake(
  files: Record<string, string>,
  bins: Record<string, string>,
  versions: Record<string, string> = {},
): HostView {
  return {
    read: (p) => files[p],
    exists: (p) => p in files,
    which: (n) => bins[n],
    kernelRelease: () => "6.1.0",
    output: (argv) => versions[argv.join(" ")],
  };
}

const READY_NODE = {
  "/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n",
  "/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
  "/proc/sys/net/ipv4/ip_forward": "1\n",
  "/proc/sys/net/netfilter/nf_conntrack_max": "262144\n",
  [INSTALLED.config]: "",
  [INSTALLED.unit]: "",
};

Deno.test("nodeChecks() passes a host with a kubelet, no swap, the sysctls and the installed files", () => {
  const checks = nodeChecks(
    fake(READY_NODE, { kubelet: "/usr/bin/kubelet" }, {
      "/usr/bin/kubelet --version": "Kubernetes v1.36.3\n",
    }),
    INSTALLED,
  );
  assert.deepEqual(checks.filter((c) => !c.ok), []);
  assert.deepEqual(checks.map((c) => c.name), [
    "kubelet",
    "swap",
    "br_netfilter",
    "ip_forward",
    "nf_conntrack",
    "kubelet config",
  ]);
  assert.equal(checks[0].detail, "/usr/bin/kubelet: Kubernetes v1.36.3");
  assert.ok(checks.every((c) => !c.required), "a node's needs never fail rkl's own doctor");
});

Deno.test("nodeChecks() says what a node still lacks, and how to get it", () => {
  const files: Record<string, string> = {
    "/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n/swapfile  file  1048572  0  -2\n",
    "/proc/sys/net/ipv4/ip_forward": "0\n",
  };
  const lines = nodeChecks(fake(files, {}), INSTALLED).filter((c) => !c.ok).map(formatNodeCheck);
  assert.deepEqual(lines, [
    "lacks   kubelet: not on PATH; fix: the kubelet binary of your cluster's version (kubernetes' release, or your distribution's kubelet package)",
    "lacks   swap: on (/swapfile): the kubelet refuses to start unless failSwapOn is false (rkl node install writes that, with swapBehavior NoSwap); fix: swapoff -a, and remove swap from /etc/fstab",
    "lacks   br_netfilter: not loaded: bridged pod traffic skips iptables, so Services (kube-proxy) are not reached from pods; fix: modprobe br_netfilter (and list it in /etc/modules-load.d/)",
    "lacks   ip_forward: net.ipv4.ip_forward = 0: pods reach nothing beyond the node; fix: sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/)",
    "lacks   nf_conntrack: not loaded (kube-proxy sets its limits and Services' NAT needs it); fix: modprobe nf_conntrack",
    "lacks   kubelet config: /var/lib/kubelet/config.yaml, /etc/systemd/system/kubelet.service not there; fix: rkl node install --kubeconfig FILE (or --server URL --token TOKEN --certificate-authority FILE)",
  ]);
});

Deno.test("nodeChecks() refuses a kubelet older than CRI v1 only, and one whose version fails", () => {
  const old = nodeChecks(
    fake(READY_NODE, { kubelet: "/k" }, { "/k --version": "Kubernetes v1.25.16\n" }),
    INSTALLED,
  )[0];
  assert.equal(old.ok, false);
  assert.match(old.detail, /Kubernetes v1\.25\.16 \(older than v1\.26/);
  const broken = nodeChecks(fake(READY_NODE, { kubelet: "/k" }), INSTALLED)[0];
  assert.equal(broken.ok, false);
  assert.match(broken.detail, /its version is unknown/);
  const zero = nodeChecks(
    fake({ ...READY_NODE, "/proc/sys/net/bridge/bridge-nf-call-iptables": "0\n" }, {}),
    INSTALLED,
  );
  assert.match(
    formatNodeCheck(zero[2]),
    /= 0: .*fix: sysctl -w net\.bridge\.bridge-nf-call-iptables=1/,
  );
});
