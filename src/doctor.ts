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
