/**
 * Chooses the cgroup version from the mount table, as runc does: a unified
 * (cgroup2) mount at the cgroup root means v2; v1 controller mounts mean v1,
 * also on hybrid hosts where cgroup2 sits at `unified/` with no controllers.
 */
import type { CgroupManager } from "./mod.ts";
import { CgroupV1Manager } from "./v1.ts";
import { CgroupV2Manager } from "./v2.ts";

export interface CgroupLayout {
  version: 1 | 2;
  /** v2: the unified root. */
  root?: string;
  /** v1: controller → hierarchy root. */
  controllers?: Record<string, string>;
  /** Every cgroup hierarchy mount point (v1 named hierarchies and unified included). */
  hierarchies: string[];
}

export function detectCgroupLayout(mountinfo: string): CgroupLayout {
  const controllers: Record<string, string> = {};
  const hierarchies: string[] = [];
  let unified: string | undefined;
  for (const line of mountinfo.split("\n")) {
    if (!line) continue;
    const [pre, post] = line.split(" - ");
    if (!post) continue;
    const fields = pre.split(" ");
    const mountPoint = fields[4];
    const [fstype, , superOpts = ""] = post.split(" ");
    if (fstype === "cgroup2") {
      unified = mountPoint;
      hierarchies.push(mountPoint);
    } else if (fstype === "cgroup") {
      hierarchies.push(mountPoint);
      for (const opt of superOpts.split(",")) {
        if (
          ["cpu", "cpuacct", "memory", "pids", "cpuset", "blkio", "devices", "freezer"].includes(
            opt,
          )
        ) {
          controllers[opt] = mountPoint;
        }
      }
    }
  }
  if (Object.keys(controllers).length > 0) return { version: 1, controllers, hierarchies };
  if (unified !== undefined) return { version: 2, root: unified, hierarchies };
  throw new Error("Cannot find cgroupfs: no cgroup or cgroup2 mount in /proc/self/mountinfo");
}

export function managerFor(layout: CgroupLayout): CgroupManager {
  return layout.version === 1
    ? new CgroupV1Manager(layout.controllers ?? {}, layout.hierarchies)
    : new CgroupV2Manager(layout.root!);
}

export function detectCgroups(): { layout: CgroupLayout; manager: CgroupManager } {
  const layout = detectCgroupLayout(Deno.readTextFileSync("/proc/self/mountinfo"));
  return { layout, manager: managerFor(layout) };
}
