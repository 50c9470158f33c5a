/**
 * What rkl needs on a host, checked without changing anything: kernel
 * features, the OCI runtime, conmon, the CNI plugins, the pause process and
 * the tools rkl calls. `rkl doctor`, the daemon's preflight and `daemon
 * install` print these; a missing part comes with the packages that bring it.
 */
import { CNI_PLUGIN_DIRS } from "./net/cni.ts";
import { RUNTIME_PREFERENCE, which } from "./oci/runtime.ts";

export interface Check {
  name: string;
  ok: boolean;
  /** What was found, or what is missing. */
  detail: string;
  /** Needed for containers to run; the others are for some features only. */
  required: boolean;
  /** How to get it: Debian/Ubuntu and Fedora/RHEL package names, or what to do. */
  fix?: string;
}

/** What the checks read; the real host by default, a fake tree in tests. */
export interface HostView {
  read(path: string): string | undefined;
  exists(path: string): boolean;
  which(name: string): string | undefined;
  kernelRelease(): string;
  /** A program's standard output (undefined when it cannot run or fails); for versions. */
  output?(argv: string[]): string | undefined;
}

export const REAL_HOST: HostView = {
  read(path) {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return undefined;
    }
  },
  exists(path) {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  },
  which: (name) => which(name),
  kernelRelease: () => Deno.osRelease(),
  output(argv) {
    try {
      const r = new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "null" })
        .outputSync();
      return r.success ? new TextDecoder().decode(r.stdout) : undefined;
    } catch {
      return undefined;
    }
  },
};

const pkg = (apt: string, dnf: string) => `apt-get install ${apt}  |  dnf install ${dnf}`;

/** A kernel module: loaded, built in, or present to load. */
function kernelModule(
  h: HostView,
  mod: string,
  path: string,
  symbol?: string,
): string | undefined {
  if (h.exists(`/sys/module/${mod}`)) return "loaded";
  // Built in without a /sys/module entry (no parameters) and no modules dir: its code is there.
  if (symbol && new RegExp(` ${symbol}$`, "m").test(h.read("/proc/kallsyms") ?? "")) {
    return "built in";
  }
  const rel = h.kernelRelease();
  const builtin = h.read(`/lib/modules/${rel}/modules.builtin`) ?? "";
  if (builtin.split("\n").some((l) => l.endsWith(`/${mod}.ko`))) return "built in";
  for (const ext of ["ko", "ko.xz", "ko.zst", "ko.gz"]) {
    if (h.exists(`/lib/modules/${rel}/kernel/${path}/${mod}.${ext}`)) return "module available";
  }
  return undefined;
}

export function hostChecks(h: HostView = REAL_HOST): Check[] {
  const out: Check[] = [];
  const add = (c: Check) => out.push(c);

  // Kernel.
  const nsMissing = ["mnt", "uts", "ipc", "pid", "net", "cgroup"].filter((n) =>
    !h.exists(`/proc/self/ns/${n}`)
  );
  add({
    name: "namespaces",
    ok: nsMissing.length === 0,
    detail: nsMissing.length ? `missing: ${nsMissing.join(", ")}` : "mnt uts ipc pid net cgroup",
    required: true,
    fix: "a kernel with CONFIG_NAMESPACES and each namespace type",
  });
  const fs = h.read("/proc/filesystems") ?? "";
  const overlay = /\toverlay$/m.test(fs)
    ? "in /proc/filesystems"
    : kernelModule(h, "overlay", "fs/overlayfs");
  add({
    name: "overlayfs",
    ok: !!overlay,
    detail: overlay ?? "not in /proc/filesystems and no overlay module",
    required: true,
    fix: "modprobe overlay (CONFIG_OVERLAY_FS)",
  });
  const mounts = h.read("/proc/self/mountinfo") ?? "";
  const v1 = / - cgroup /.test(mounts);
  const v2 = / - cgroup2 /.test(mounts);
  const controllers: string[] = [];
  if (v1) {
    for (const c of ["cpu", "memory", "pids"]) {
      if (h.exists(`/sys/fs/cgroup/${c}`)) controllers.push(c);
    }
  } else if (v2) {
    const list = (h.read("/sys/fs/cgroup/cgroup.controllers") ?? "").trim().split(/\s+/);
    controllers.push(...["cpu", "memory", "pids"].filter((c) => list.includes(c)));
  }
  add({
    name: "cgroups",
    ok: (v1 || v2) && controllers.length === 3,
    detail: `${v1 ? (v2 ? "v1 (hybrid)" : "v1") : v2 ? "v2" : "none mounted"}; controllers: ${
      controllers.join(" ") || "none"
    }`,
    required: true,
    fix: "mount cgroup2 on /sys/fs/cgroup (or the v1 cpu, memory and pids hierarchies)",
  });
  for (
    const [mod, path, symbol] of [
      ["veth", "drivers/net", "veth_xmit"],
      ["bridge", "net/bridge", "br_dev_xmit"],
    ] as const
  ) {
    const found = kernelModule(h, mod, path, symbol);
    add({
      name: mod,
      ok: !!found,
      detail: found ?? "no module",
      required: true,
      fix: `modprobe ${mod}`,
    });
  }
  const ipt = h.which("iptables") ?? h.which("nft");
  add({
    name: "iptables/nftables",
    ok: !!ipt,
    detail: ipt ?? "neither iptables nor nft on PATH (portmap and bridge masquerading need one)",
    required: true,
    fix: pkg("iptables", "iptables-nft"),
  });

  // The parts rkl drives.
  const rt = RUNTIME_PREFERENCE.map((r) => h.which(r)).find(Boolean);
  add({
    name: "OCI runtime",
    ok: !!rt,
    detail: rt ?? `none of ${RUNTIME_PREFERENCE.join(", ")} on PATH`,
    required: true,
    fix: `${
      pkg("runc", "runc")
    }  (or crun; youki: cargo install youki --features systemd,v1,v2,seccomp)`,
  });
  const conmon = h.which("conmon");
  add({
    name: "conmon",
    ok: !!conmon,
    detail: conmon ?? "not on PATH",
    required: true,
    fix: pkg("conmon", "conmon"),
  });
  for (const p of ["bridge", "host-local", "portmap"]) {
    const dir = CNI_PLUGIN_DIRS.find((d) => h.exists(`${d}/${p}`));
    add({
      name: `CNI plugin ${p}`,
      ok: !!dir,
      detail: dir ? `${dir}/${p}` : `not in ${CNI_PLUGIN_DIRS.join(", ")}`,
      required: true,
      fix: pkg("containernetworking-plugins", "containernetworking-plugins"),
    });
  }
  const cat = h.which("catatonit");
  add({
    name: "pause (catatonit)",
    ok: !!cat,
    detail: cat ??
      "not on PATH (pods need it for their pause process, unless RKL_PAUSE_BUNDLE is set)",
    required: false,
    fix: pkg("catatonit", "catatonit"),
  });
  for (
    const [bin, why, apt, dnf] of [
      ["ip", "removing bridges", "iproute2", "iproute"],
      ["setsid", "the compose health monitor", "util-linux", "util-linux"],
      ["busybox", "`rkl bundle build busybox`", "busybox-static", "busybox"],
    ] as const
  ) {
    const found = h.which(bin);
    add({
      name: bin,
      ok: !!found,
      detail: found ?? `not on PATH (for ${why})`,
      required: false,
      fix: pkg(apt, dnf),
    });
  }
  return out;
}

/** `ok      name: detail`, or `MISSING name: detail; install: …`. */
export function formatCheck(c: Check): string {
  const tag = c.ok ? "ok     " : c.required ? "MISSING" : "warning";
  return `${tag} ${c.name}: ${c.detail}${!c.ok && c.fix ? `; install: ${c.fix}` : ""}`;
}

/** The oldest kubelet that speaks only CRI runtime.v1, which is all rkl serves. */
const KUBELET_MIN = [1, 26];

/**
 * What this host still lacks to be a Kubernetes node with rkl as its
 * runtime (beyond what hostChecks() asks for rkl itself): a kubelet, swap
 * off or allowed, the sysctls kube-proxy's iptables mode and pod traffic
 * need, and `rkl node install`'s files. kube-proxy v1.32 and later clears
 * conntrack entries through netlink, so the conntrack tool is not asked for.
 */
export function nodeChecks(
  h: HostView = REAL_HOST,
  installed: { config: string; unit: string } = {
    config: "/var/lib/kubelet/config.yaml",
    unit: "/etc/systemd/system/kubelet.service",
  },
): Check[] {
  const out: Check[] = [];
  const kubelet = h.which("kubelet");
  const version = kubelet ? h.output?.([kubelet, "--version"])?.trim() : undefined;
  const m = version?.match(/v(\d+)\.(\d+)\./);
  const oldKubelet = m !== undefined && m !== null &&
    (Number(m[1]) < KUBELET_MIN[0] ||
      (Number(m[1]) === KUBELET_MIN[0] && Number(m[2]) < KUBELET_MIN[1]));
  out.push({
    name: "kubelet",
    ok: !!kubelet && !!version && !oldKubelet,
    detail: !kubelet
      ? "not on PATH"
      : `${kubelet}: ${version ?? "its version is unknown (--version failed)"}${
        oldKubelet ? ` (older than v${KUBELET_MIN.join(".")}, which has CRI v1 only)` : ""
      }`,
    required: false,
    fix:
      "the kubelet binary of your cluster's version (kubernetes' release, or your distribution's kubelet package)",
  });
  const swaps = (h.read("/proc/swaps") ?? "").trim().split("\n").slice(1).filter(Boolean);
  out.push({
    name: "swap",
    ok: swaps.length === 0,
    detail: swaps.length === 0
      ? "off"
      : `on (${
        swaps.map((l) => l.split(/\s+/)[0]).join(", ")
      }): the kubelet refuses to start unless failSwapOn is false (rkl node install writes that, with swapBehavior NoSwap)`,
    required: false,
    fix: "swapoff -a, and remove swap from /etc/fstab",
  });
  const sysctl = (name: string) => h.read(`/proc/sys/${name.replaceAll(".", "/")}`)?.trim();
  const bnf = sysctl("net.bridge.bridge-nf-call-iptables");
  out.push({
    name: "br_netfilter",
    ok: bnf === "1",
    detail: bnf === undefined
      ? "not loaded: bridged pod traffic skips iptables, so Services (kube-proxy) are not reached from pods"
      : bnf === "1"
      ? "net.bridge.bridge-nf-call-iptables = 1"
      : `net.bridge.bridge-nf-call-iptables = ${bnf}: Services are not reached from pods on the bridge`,
    required: false,
    fix: bnf === undefined
      ? "modprobe br_netfilter (and list it in /etc/modules-load.d/)"
      : "sysctl -w net.bridge.bridge-nf-call-iptables=1 (and in /etc/sysctl.d/)",
  });
  const fwd = sysctl("net.ipv4.ip_forward");
  out.push({
    name: "ip_forward",
    ok: fwd === "1",
    detail: `net.ipv4.ip_forward = ${fwd ?? "unknown"}${
      fwd === "1" ? "" : ": pods reach nothing beyond the node"
    }`,
    required: false,
    fix: "sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/)",
  });
  const ct = sysctl("net.netfilter.nf_conntrack_max");
  out.push({
    name: "nf_conntrack",
    ok: ct !== undefined,
    detail: ct !== undefined
      ? `nf_conntrack_max = ${ct}`
      : "not loaded (kube-proxy sets its limits and Services' NAT needs it)",
    required: false,
    fix: "modprobe nf_conntrack",
  });
  const have = [installed.config, installed.unit].filter((p) => h.exists(p));
  out.push({
    name: "kubelet config",
    ok: have.length === 2,
    detail: have.length === 2
      ? `${installed.config}, ${installed.unit}`
      : `${
        [installed.config, installed.unit].filter((p) => !have.includes(p)).join(", ")
      } not there`,
    required: false,
    fix:
      "rkl node install --kubeconfig FILE (or --server URL --token TOKEN --certificate-authority FILE)",
  });
  return out;
}

/** `ok     name: detail`, or `lacks  name: detail; fix: …` (what a node still lacks). */
export function formatNodeCheck(c: Check): string {
  return `${c.ok ? "ok     " : "lacks  "} ${c.name}: ${c.detail}${
    !c.ok && c.fix ? `; fix: ${c.fix}` : ""
  }`;
}
