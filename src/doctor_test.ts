import assert from "node:assert/strict";
import { formatCheck, hostChecks, type HostView } from "./doctor.ts";

function fake(files: Record<string, string>, bins: Record<string, string>): HostView {
  return {
    read: (p) => files[p],
    exists: (p) => p in files || Object.keys(files).some((f) => f.startsWith(`${p}/`)),
    which: (n) => bins[n],
    kernelRelease: () => "6.1.0",
  };
}

const V2_HOST = {
  "/proc/self/ns/mnt": "",
  "/proc/self/ns/uts": "",
  "/proc/self/ns/ipc": "",
  "/proc/self/ns/pid": "",
  "/proc/self/ns/net": "",
  "/proc/self/ns/cgroup": "",
  "/proc/filesystems": "nodev\tproc\nnodev\toverlay\n",
  "/proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
  "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
  "/lib/modules/6.1.0/modules.builtin": "kernel/net/bridge/bridge.ko\n",
  "/lib/modules/6.1.0/kernel/drivers/net/veth.ko.xz": "",
  "/usr/lib/cni/bridge": "",
  "/usr/lib/cni/host-local": "",
  "/usr/lib/cni/portmap": "",
  "/usr/lib/cni/loopback": "",
};

Deno.test("hostChecks() passes a cgroup v2 host with modules built in or on disk", () => {
  const checks = hostChecks(fake(V2_HOST, {
    runc: "/usr/bin/runc",
    conmon: "/usr/bin/conmon",
    iptables: "/usr/sbin/iptables",
    catatonit: "/usr/bin/catatonit",
    ip: "/sbin/ip",
    setsid: "/bin/setsid",
    busybox: "/bin/busybox",
  }));
  assert.deepEqual(checks.filter((c) => !c.ok), []);
  const byName = Object.fromEntries(checks.map((c) => [c.name, c.detail]));
  assert.equal(byName.cgroups, "v2; controllers: cpu memory pids");
  assert.equal(byName.bridge, "built in");
  assert.equal(byName.veth, "module available");
});

Deno.test("hostChecks() names what is missing and the packages that bring it", () => {
  const files: Record<string, string> = { ...V2_HOST };
  delete files["/usr/lib/cni/portmap"];
  files["/sys/fs/cgroup/cgroup.controllers"] = "cpu\n";
  const checks = hostChecks(fake(files, { iptables: "/usr/sbin/iptables" }));
  const bad = checks.filter((c) => !c.ok).map(formatCheck);
  assert.deepEqual(bad, [
    "MISSING cgroups: v2; controllers: cpu; install: mount cgroup2 on /sys/fs/cgroup (or the v1 cpu, memory and pids hierarchies)",
    "MISSING OCI runtime: none of youki, runc, crun on PATH; install: apt-get install runc  |  dnf install runc  (or crun; youki: cargo install youki --features systemd,v1,v2,seccomp)",
    "MISSING conmon: not on PATH; install: apt-get install conmon  |  dnf install conmon",
    "MISSING CNI plugin portmap: not in /opt/cni/bin, /usr/lib/cni, /usr/libexec/cni; install: apt-get install containernetworking-plugins  |  dnf install containernetworking-plugins",
    "warning pause (catatonit): not on PATH (pods need it for their pause process, unless RKL_PAUSE_BUNDLE is set); install: apt-get install catatonit  |  dnf install catatonit",
    "warning ip: not on PATH (for removing bridges); install: apt-get install iproute2  |  dnf install iproute",
    "warning setsid: not on PATH (for the compose health monitor); install: apt-get install util-linux  |  dnf install util-linux",
    "warning busybox: not on PATH (for `rkl bundle build busybox`); install: apt-get install busybox-static  |  dnf install busybox",
  ]);
});
