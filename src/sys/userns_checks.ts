/**
 * `rkl doctor` run by a user without root: what that user lacks to run
 * rootless containers, each with how to get it. Same shape as doctor.ts's
 * checks (name, ok, detail, required, fix), read through a view of the host
 * so a test can give a fake one.
 */
import { isInitialUserNs, subordinateRange } from "./userns.ts";

export interface RootlessCheck {
  name: string;
  ok: boolean;
  detail: string;
  required: boolean;
  fix?: string;
}

export interface RootlessView {
  read(path: string): string | undefined;
  which(name: string): string | undefined;
  /** Mode bits of a file (with setuid), or undefined when it is missing. */
  mode(path: string): number | undefined;
  /** True when this user can open the file for reading and writing. */
  canOpenRw(path: string): boolean;
  kernelRelease(): string;
  /** True when the youki at this path is rkl's build that runs rootless on cgroup v1 (src/oci/youki_marker.ts). */
  youkiRootlessV1?(binary: string): boolean;
  uid: number;
  user: string;
}

const pkg = (apt: string, dnf: string) => `apt-get install ${apt}  |  dnf install ${dnf}`;

/** [major, minor] of a kernel release string ("6.1.0-18-amd64" → [6, 1]). */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

export function rootlessChecks(h: RootlessView): RootlessCheck[] {
  const out: RootlessCheck[] = [];
  const add = (c: RootlessCheck) => out.push(c);
  const num = (path: string) => {
    const t = h.read(path)?.trim();
    return t !== undefined && /^\d+$/.test(t) ? Number(t) : undefined;
  };

  // User namespaces.
  const max = num("/proc/sys/user/max_user_namespaces");
  const clone = num("/proc/sys/kernel/unprivileged_userns_clone"); // Debian's own knob
  const apparmor = num("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  const nsProblems = [
    ...(max === 0 ? ["user.max_user_namespaces is 0"] : []),
    ...(clone === 0 ? ["kernel.unprivileged_userns_clone is 0"] : []),
    ...(apparmor === 1 ? ["kernel.apparmor_restrict_unprivileged_userns is 1"] : []),
  ];
  add({
    name: "user namespaces",
    ok: nsProblems.length === 0,
    detail: nsProblems.length ? nsProblems.join("; ") : `enabled (max ${max ?? "?"})`,
    required: true,
    fix: "as root: sysctl -w user.max_user_namespaces=28633 kernel.unprivileged_userns_clone=1 " +
      "(and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu), then persist it in /etc/sysctl.d",
  });

  // Subordinate ids.
  for (const [file, flag] of [["/etc/subuid", "--add-subuids"], ["/etc/subgid", "--add-subgids"]]) {
    const r = subordinateRange(h.read(file) ?? "", h.user, h.uid);
    add({
      name: `${file.slice(5)} range`,
      ok: r !== undefined && r.count >= 65536,
      detail: r
        ? `${r.start}-${r.start + r.count - 1} (${r.count} ids)${
          r.count < 65536 ? "; fewer than 65536: images with ids above it cannot be unpacked" : ""
        }`
        : `no line for ${h.user} (uid ${h.uid}) in ${file}`,
      required: r === undefined,
      fix: `as root: usermod ${flag} 100000-165535 ${h.user}  (a range no other user has)`,
    });
  }

  // The setuid helpers that write the id maps.
  for (const tool of ["newuidmap", "newgidmap"]) {
    const path = h.which(tool);
    const mode = path ? h.mode(path) : undefined;
    const setuid = mode !== undefined && (mode & 0o4000) !== 0;
    add({
      name: tool,
      ok: path !== undefined,
      detail: path
        ? `${path}${setuid ? " (setuid)" : " (no setuid bit: file capabilities?)"}`
        : "not found",
      required: true,
      fix: pkg("uidmap", "shadow-utils"),
    });
  }
  for (const tool of ["nsenter", "unshare"]) {
    const path = h.which(tool);
    add({
      name: tool,
      ok: path !== undefined,
      detail: path ?? "not found",
      required: true,
      fix: pkg("util-linux", "util-linux"),
    });
  }

  // Networking.
  const slirp = h.which("slirp4netns");
  const pasta = h.which("pasta");
  add({
    name: "slirp4netns",
    ok: slirp !== undefined,
    detail: slirp ??
      `not found; the default network does not work${
        pasta ? " (--network pasta does)" : ", only --network none"
      }`,
    required: false,
    fix: pkg("slirp4netns", "slirp4netns"),
  });
  add({
    name: "pasta",
    ok: pasta !== undefined,
    detail: pasta ? `${pasta} (--network pasta)` : "not found; --network pasta does not work",
    required: false,
    fix: pkg("passt", "passt"),
  });
  const tun = h.canOpenRw("/dev/net/tun");
  add({
    name: "/dev/net/tun",
    ok: tun,
    detail: tun
      ? "open for reading and writing"
      : `this user cannot open it (mode ${
        (h.mode("/dev/net/tun") ?? 0).toString(8).slice(-3)
      }): slirp4netns and pasta cannot make their tap devices`,
    required: false,
    fix: 'as root: chmod 0666 /dev/net/tun (udev\'s default), or a udev rule MODE="0666"',
  });
  const ports = num("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  add({
    name: "unprivileged ports",
    ok: true,
    detail: `host ports from ${ports ?? 1024} up can be published`,
    required: false,
    fix: "as root: sysctl -w net.ipv4.ip_unprivileged_port_start=80 for lower ones",
  });

  // Overlay in a user namespace.
  const [maj, min] = kernelVersion(h.kernelRelease());
  const kernelOverlay = maj > 5 || (maj === 5 && min >= 11);
  const fuse = h.which("fuse-overlayfs");
  add({
    name: "overlay in a user namespace",
    ok: kernelOverlay,
    detail: kernelOverlay
      ? `kernel ${h.kernelRelease()} mounts overlayfs in a user namespace (5.11+)`
      : `kernel ${h.kernelRelease()} is older than 5.11; rkl does not use fuse-overlayfs${
        fuse ? ` (found at ${fuse})` : ""
      } yet`,
    required: true,
    fix: "a kernel 5.11 or newer",
  });

  // Runtime and monitor.
  const mounts = h.read("/proc/self/mountinfo") ?? "";
  const v1 = / - cgroup /.test(mounts);
  const runc = h.which("runc");
  const youki = h.which("youki");
  const ours = youki !== undefined && (h.youkiRootlessV1?.(youki) ?? false);
  add({
    name: "OCI runtime",
    ok: v1 ? ours || runc !== undefined : (runc ?? youki) !== undefined,
    detail: v1
      ? (ours
        ? `youki (${youki}, rkl's build); cgroup v1: limits cannot apply rootless`
        : runc
        ? `runc (${runc}); cgroup v1: limits cannot apply rootless`
        : "cgroup v1 needs runc or rkl's youki (youki 0.7.0 as published cannot run rootless on cgroup v1)")
      : (youki ?? runc ?? "neither youki nor runc found"),
    required: true,
    fix: `${pkg("runc", "runc")}, or scripts/setup.sh (rkl's youki)`,
  });
  const conmon = h.which("conmon");
  add({
    name: "conmon",
    ok: conmon !== undefined,
    detail: conmon ?? "not found",
    required: true,
    fix: pkg("conmon", "conmon"),
  });
  const own = h.read("/proc/self/uid_map");
  if (own !== undefined && !isInitialUserNs(own)) {
    add({
      name: "nesting",
      ok: true,
      detail: "this shell is already in a user namespace; rkl makes its own below it",
      required: false,
    });
  }
  return out;
}
