/**
 * A hybrid host's cgroup v2 twin of a container's cgroup.
 *
 * On a hybrid host (cgroup v1 controllers, cgroup2 mounted at `unified/`
 * with no controllers) runc keeps a container's unified-hierarchy path beside
 * its v1 ones (the `""` entry of its cgroup paths), joins the container's
 * init to it at create and every exec'd process at exec. youki 0.7 does
 * not: its processes stay in the v2 root (`0::/`), so the container has no
 * pressure (PSI) files of its own, which the kubelet's summary API wants
 * from the CRI. rkl makes the twin itself after the runtime's create, while
 * the container's init is still stopped in its create state. The
 * directories go with the v1 ones: {@linkcode CgroupV1Manager.remove}
 * removes `rel` in every hierarchy, the unified one included.
 */
import { assertRelPath, type CgroupManager } from "./mod.ts";
import { CgroupV1Manager } from "./v1.ts";

/**
 * The cgroup2 mount of a hybrid host (the hierarchy beside the v1 ones with
 * a `cgroup.controllers` file), or undefined on a v1-only or v2 host.
 */
export function hybridUnifiedRoot(cg: CgroupManager): string | undefined {
  if (!(cg instanceof CgroupV1Manager)) return undefined;
  return cg.otherHierarchies.find((h) => {
    try {
      return Deno.statSync(`${h}/cgroup.controllers`).isFile;
    } catch {
      return false;
    }
  });
}

/**
 * Puts `pid` (with all its threads) into `rel` of a hybrid host's unified
 * hierarchy, making the directory and its missing parents (mode 0755, as
 * cgroupfs makes them). Returns the directory, or undefined where the host
 * is not hybrid (nothing to do). Throws when the directory or the move
 * fails; a pid already gone is ESRCH (Deno.errors.NotFound).
 */
export function joinUnified(cg: CgroupManager, rel: string, pid: number): string | undefined {
  assertRelPath(rel);
  if (!Number.isInteger(pid) || pid <= 1) throw new TypeError(`pid ${pid} is not a process's`);
  const root = hybridUnifiedRoot(cg);
  if (root === undefined) return undefined;
  const dir = `${root}/${rel}`;
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(pid));
  return dir;
}
