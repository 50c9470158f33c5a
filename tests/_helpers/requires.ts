/**
 * Gates for tests that need real parts. On a developer machine a missing
 * prerequisite skips the test (with the reason printed once); under CI=true it
 * throws, so CI can never go green by skipping.
 */
import { which } from "../../src/oci/runtime.ts";
import { CNI_PLUGIN_DIRS } from "../../src/net/cni.ts";
import { youkiRunsRootlessOnV1 } from "../../src/oci/youki_marker.ts";
import { detectCgroupLayout } from "../../src/sys/cgroups/detect.ts";

export type Requirement =
  | "root"
  | "youki"
  | "runc"
  | "conmon"
  | "cni"
  | "iptables"
  | "bundles"
  | "ip"
  | "qemu-aarch64"
  | "npm"
  | "registry"
  | "crictl"
  | "kubelet"
  | "containerd"
  | "cc"
  | "prometheus"
  | "rootless"
  | "youki-rootless-v1";

const ROOT_DIR = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

function missing(req: Requirement): string | undefined {
  switch (req) {
    case "root":
      return Deno.uid() === 0 ? undefined : "not running as root";
    case "youki":
    case "runc":
    case "conmon":
    case "iptables":
    case "ip":
      return which(req) ? undefined : `${req} is not installed (scripts/setup.sh installs it)`;
    case "qemu-aarch64":
      if (!which("qemu-aarch64-static")) {
        return "qemu-user-static is not installed (scripts/setup.sh)";
      }
      try {
        Deno.statSync("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1");
      } catch {
        return "libc6-arm64-cross is not installed (scripts/setup.sh)";
      }
      return undefined;
    case "registry":
      for (const t of ["docker-registry", "skopeo", "tar"]) {
        if (!which(t)) return `${t} is not installed (scripts/setup.sh installs it)`;
      }
      return undefined;
    case "containerd":
      // containerd 1.6 and the image builders the unpack differential test uses
      for (const t of ["containerd", "ctr", "buildah", "umoci", "skopeo", "getfattr", "tar"]) {
        if (!which(t)) return `${t} is not installed (scripts/setup.sh installs it)`;
      }
      return undefined;
    case "crictl":
      return which("crictl") ? undefined : "crictl is not installed (scripts/setup.sh installs it)";
    case "kubelet":
      return which("kubelet")
        ? undefined
        : "kubelet is not installed (scripts/setup.sh installs it)";
    case "cc":
      return which("cc")
        ? undefined
        : "cc is not installed (scripts/setup.sh installs build-essential)";
    case "prometheus":
      return which("prometheus")
        ? undefined
        : "prometheus is not installed (scripts/setup.sh installs it)";
    case "rootless":
      // An unprivileged user's rkl (tests/e2e/rootless_test.ts): the uidmap and util-linux tools.
      for (const t of ["newuidmap", "newgidmap", "slirp4netns", "useradd", "userdel", "setpriv"]) {
        if (!which(t)) return `${t} is not installed (scripts/setup.sh installs it)`;
      }
      return undefined;
    case "youki-rootless-v1": {
      // rkl's youki as the rootless runtime of a cgroup v1 host (tests/e2e/rootless_youki_test.ts).
      if (detectCgroupLayout(Deno.readTextFileSync("/proc/self/mountinfo")).version !== 1) {
        return "this host has no cgroup v1 hierarchies";
      }
      const youki = which("youki");
      if (!youki) return "youki is not installed (scripts/setup.sh installs it)";
      return youkiRunsRootlessOnV1(youki)
        ? undefined
        : `${youki} is not rkl's build with libcontainer-rootless-cgroup-v1.patch ` +
          "(no matching /usr/local/share/rkl/youki.json; scripts/setup.sh builds it)";
    }
    case "npm":
      return which("npm") ? undefined : "npm is not installed (scripts/setup.sh)";
    case "cni": {
      for (const p of ["bridge", "host-local", "portmap"]) {
        const found = CNI_PLUGIN_DIRS.some((d) => {
          try {
            return Deno.statSync(`${d}/${p}`).isFile;
          } catch {
            return false;
          }
        });
        if (!found) return `CNI plugin ${p} is not installed in ${CNI_PLUGIN_DIRS.join(" or ")}`;
      }
      return undefined;
    }
    case "bundles":
      for (const b of ["busybox/rootfs/bin/busybox", "pause/rootfs/bin/catatonit"]) {
        try {
          Deno.statSync(`${ROOT_DIR}/bundles/${b}`);
        } catch {
          return `bundle file bundles/${b} is missing (scripts/setup.sh builds it)`;
        }
      }
      return undefined;
  }
}

const reported = new Set<string>();

/** true when every requirement is met; false (skip) or a thrown Error under CI=true. */
export function requires(...reqs: Requirement[]): boolean {
  const problems = reqs.map(missing).filter((p): p is string => p !== undefined);
  if (problems.length === 0) return true;
  const msg = `missing prerequisite: ${problems.join("; ")}`;
  if (Deno.env.get("CI") === "true") {
    throw new Error(`${msg} (CI=true: failing instead of skipping)`);
  }
  if (!reported.has(msg)) {
    reported.add(msg);
    console.error(`skipping: ${msg}`);
  }
  return false;
}

export const REPO = ROOT_DIR;
