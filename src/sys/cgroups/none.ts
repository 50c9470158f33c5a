/**
 * The cgroup manager of a rootless rkl on a host whose cgroupfs the user may
 * not write (cgroup v1, or v2 without a delegated subtree): it makes and
 * removes nothing, and reads nothing. Limits are dropped before a create with
 * a warning naming each field (workloads/container/rootless.ts), never here.
 */
import type { CgroupLimits, CgroupManager } from "./mod.ts";

export class NoCgroupManager implements CgroupManager {
  constructor(readonly version: 1 | 2) {}
  dirs(_rel: string): string[] {
    return [];
  }
  apply(rel: string, limits: CgroupLimits): void {
    if (Object.values(limits).some((v) => v !== undefined)) {
      throw new Deno.errors.PermissionDenied(
        `Cannot set limits of cgroup ${rel}: a rootless rkl cannot write cgroupfs`,
      );
    }
  }
  read(_rel: string): CgroupLimits {
    return {};
  }
  remove(_rel: string): void {}
  removeChildren(_rel: string): void {}
  pids(_rel: string): number[] {
    return [];
  }
  usage(_rel: string): undefined {
    return undefined;
  }
  ownProcsFile(_procSelfCgroup: string): undefined {
    return undefined;
  }
}
