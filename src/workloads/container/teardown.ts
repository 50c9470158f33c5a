/**
 * Tearing a container down: undoes what `rec.resources` lists, newest
 * first, and tolerates what is already gone. The undo of a failed create,
 * the body of `rm`, and the cleanup of an interrupted create all come here.
 */
import { removeVolumesIfUnused } from "../volumes.ts";
import { RklError } from "../../errors.ts";
import { removeNatRulesFor } from "../../net/portmap.ts";
import { cniDown } from "../../net/attach.ts";
import { mountPoints, unmount } from "../../sys/mounts.ts";
import { unstageSubPath } from "../../sys/subpath.ts";
import { pathExists } from "../../sys/fsutil.ts";
import { removeConmonLinks } from "../../oci/conmon_links.ts";
import { readExitCode } from "../../oci/conmon.ts";
import { removeNetns } from "../../sys/netns.ts";
import { trace } from "../../trace.ts";
import { about, noteEvent } from "../event_log.ts";
import { rotatedLogs } from "../logrotate.ts";
import { healthFile } from "../health_spawn.ts";
import { containerDirs, type Host } from "../host.ts";
import { removeAll } from "./_fs.ts";
import { settleConmon, waitConmonGone } from "./conmon.ts";
import { releaseNetworkIfUnused } from "./network.ts";
import { cniContainerId } from "./record.ts";
import { exitTime } from "./status.ts";
import type { ContainerRecord, NetworkUser } from "./types.ts";

/**
 * Undoes whatever `rec.resources` lists, newest first. Idempotent.
 * `keepBridges`: bridges whose removal the caller has taken over (compose
 * down deletes a project's bridge beside the DELs, as pod teardown does).
 * `rollback`: the undo of the create that made `rec` (a record still
 * `creating` is one too, cut short): a bridge that create's ADD made goes
 * when idle; otherwise the bridge stays with its network (bridgeGoesWith).
 * `quiet`: no `destroy` in the event log (the member of a pod whose create is undone).
 */
export async function teardown(
  host: Host,
  rec: ContainerRecord,
  options: {
    keepBridges?: ReadonlySet<string>;
    rollback?: boolean;
    quiet?: boolean;
    /** Its anonymous volumes go too (`rm -v`, `run --rm`). */
    volumes?: boolean;
  } = {},
): Promise<void> {
  const rollback = options.rollback === true || rec.status === "creating";
  const errors: unknown[] = [];
  const step = async (fn: () => unknown | Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  const d = rec.dirs;
  // A deferred create made none of the launch's parts (see ContainerRecord.deferred).
  const launched = !rec.deferred;
  const runtimeDown = async () => {
    if (!rec.resources.runtime || !launched) return;
    // An interrupted create or start may still be running in conmon: let it
    // finish, or the container it makes would appear after this teardown.
    if (rec.status === "creating" || rec.owner) {
      await step(() => settleConmon(host, d.conmonDir));
    }
    await step(() => deleteWithRetry(host, rec));
    trace("teardown: runtime delete");
    await step(() => waitConmonGone(host, d.conmonDir, { kill: true }));
    trace("teardown: conmon gone");
    await step(() => removeCgroup(host, rec.cgroupPath));
    await step(() => removeEmptyParent(host, rec.cgroupPath));
  };
  const cniErrors: unknown[] = [];
  const networkDown = async () => {
    if (rec.resources.cni) await cniDel(host, rec, cniErrors);
  };
  // In its own pinned netns, DEL needs none of the container's processes:
  // it runs beside the runtime's delete (bridge's DEL is mostly iptables
  // commits, 40-70 ms). Any other netns keeps the old order.
  if (rec.resources.netns) await Promise.all([runtimeDown(), networkDown()]);
  else {
    await runtimeDown();
    await networkDown();
  }
  // How it ended, for docker's `die` below: conmon's exit file, read before it is removed.
  const exit = rollback || options.quiet || !launched ? undefined : endOf(host, rec);
  errors.push(...cniErrors);
  // A failed DEL is retried by the next rm -f, and the plugins need the
  // netns for it (bridge removes its masquerade rules from inside it).
  const cniFailed = cniErrors.length > 0;
  if (rec.resources.netns && !cniFailed) await step(() => removeNetns(host.sys, d.netns, host.fs));
  if (rec.resources.subPaths && launched) {
    for (const sp of rec.subPaths ?? []) {
      await step(() => unstageSubPath(host.sys, sp.target, host.fs));
    }
  }
  if (rec.resources.overlay && launched) await step(() => unmount(host.sys, d.rootfs));
  if (rec.resources.dir) {
    // Never recurse into a mount: a bind mount still there would be emptied.
    await step(() => removeUnmounted(host, d.dir));
    await step(() => removeAll(host.fs, d.conmonDir));
    await step(() => removeAll(host.fs, `${d.exitDir}/${rec.id}`));
    await step(() => removeAttachLinks(host, d.socketDir, rec.id, d.bundle));
    // A log placed elsewhere by the front end (CreateOptions.logPath; the CRI's, under the
    // kubelet's log directory) is that front end's file: only rkl's own log dir is cleaned.
    if (d.log === containerDirs(host.paths, rec.id).log) {
      await step(() => removeAll(host.fs, d.log));
      for (const old of rotatedLogs(d.log, host.fs)) await step(() => removeAll(host.fs, old));
    }
  }
  if (rec.healthcheck) await step(() => removeAll(host.fs, healthFile(host, rec.name)));
  if (errors.length > 0) {
    // Keep the record so that `rm -f` can try again.
    host.store.put("containers", rec);
    const first = errors[0] as Error;
    throw new RklError(
      "ETEARDOWN",
      `Cannot remove everything of container ${JSON.stringify(rec.name)}: ${first.message}`,
      { cause: first },
    );
  }
  // Only this part needs the store lock: whether the network is now unused
  // is decided against the other records (a create reserves its record
  // under the same lock before its CNI ADD), then the record goes. The
  // record goes last: should the bridge's release fail, it is still there
  // for the next rm -f to finish with. Everything above touches this
  // container's own resources only, so several teardowns can run side by side.
  await host.store.withLock(async () => {
    const nets: NetworkUser["network"][] = !rec.resources.cni ? [] : [
      ...(rec.network ? [rec.network] : []),
      ...(rec.extraNetworks ?? []).map((x) => ({
        name: x.name,
        conflist: x.conflist,
        portMappings: [],
        newBridge: x.newBridge,
      })),
    ];
    for (const network of nets) {
      await releaseNetworkIfUnused(
        host,
        { kind: "containers", name: rec.name, network },
        options.keepBridges,
        rollback,
      );
    }
    host.store.delete("containers", rec.name);
    // A create undone takes back the named volumes it made (`run -v NAME:…` of a missing one);
    // `rm -v` and `run --rm` the anonymous ones (`-v /dir`), as docker's.
    const going = [
      ...(rollback && Array.isArray(rec.madeVolumes) ? rec.madeVolumes : []),
      ...(options.volumes && Array.isArray(rec.anonymousVolumes) ? rec.anonymousVolumes : []),
    ];
    if (going.length > 0) removeVolumesIfUnused(host, going);
  });
  trace("teardown: release network");
  // docker's `destroy`: the record that told this container's history is gone,
  // so the event log keeps its end (a create undone was never reported made).
  if (!rollback && !options.quiet) {
    // docker's `die` first, at the time of the exit (a stream that saw it in the record prints it once).
    if (exit) {
      noteEvent(host, {
        action: "die",
        ...about(rec),
        exitCode: exit.code,
      }, exit.at);
    }
    noteEvent(host, { action: "destroy", ...about(rec) });
  }
}

/**
 * The exit of a container being removed, once its runtime state is gone:
 * conmon's code and the exit file's time (a record's finishedAt is that
 * time too), or what the record says; undefined when it never started or
 * its end is unknown.
 */
function endOf(host: Host, rec: ContainerRecord): { code?: number; at?: Date } | undefined {
  // Created and never started (docker create, then rm): no die, as docker tells none.
  if (!rec.startedAt) return undefined;
  const file = `${rec.dirs.exitDir}/${rec.id}`;
  const code = readExitCode(rec.dirs.exitDir, rec.id, host.fs) ?? rec.exitCode;
  let at = rec.finishedAt ? new Date(rec.finishedAt) : undefined;
  if (!at) {
    try {
      at = host.fs.stat(file).mtime ?? undefined;
    } catch { /* no exit file */ }
  }
  // As the records tell it (events.ts recordEvents): never before the start, nor the kill.
  at = exitTime(at, rec.startedAt, rec.signaledAt);
  if (!at || Number.isNaN(at.getTime()) || (code === undefined && rec.status !== "exited")) {
    return undefined;
  }
  return { code, at };
}

export async function rollback(host: Host, rec: ContainerRecord, cause: unknown): Promise<void> {
  try {
    await teardown(host, rec, { rollback: true });
  } catch (e) {
    host.warn(
      `Cannot roll back container ${JSON.stringify(rec.name)} after "${
        (cause as Error).message
      }": ${(e as Error).message}`,
    );
  }
}

/** CNI DEL on every network the container is on; errors go to `errors`. */
async function cniDel(host: Host, rec: ContainerRecord, errors: unknown[]): Promise<void> {
  const d = rec.dirs;
  const netnsGone = !pathExists(d.netns, host.fs);
  await cniDown(host.cni, {
    cniId: cniContainerId(rec),
    netns: d.netns,
    conflist: rec.network?.conflist,
    portMappings: rec.network?.portMappings ?? [],
    result: rec.network?.result,
  }, (e) => errors.push(e));
  const collect = (e: unknown) => void errors.push(e);
  // Without its netns (a reboot wiped /run) bridge's DEL cannot find the
  // addresses its masquerade rules are for: remove them by container id.
  if (netnsGone) await removeNatRulesFor(host.cmd, cniContainerId(rec)).catch(collect);
  await Promise.all(
    (rec.extraNetworks ?? []).map((x) =>
      host.cni.del(x.conflist, {
        containerId: cniContainerId(rec),
        netns: d.netns,
        ifName: x.ifName,
      }, x.result).catch(collect)
    ),
  );
  trace("teardown: cni del");
}

/**
 * `delete --force`, tried again after a pause: under load a runtime's own
 * cgroup removal can time out while the killed tasks are still exiting.
 * Sub-cgroups the container made (a privileged one can) go first and again
 * before each retry: youki rmdirs the container's cgroup alone, which fails
 * while a child is there (its kill reaches the child's tasks, so the child
 * can go once they have exited).
 */
export async function deleteWithRetry(
  host: Pick<Host, "cgroups" | "runtimeFor" | "sleep">,
  rec: Pick<ContainerRecord, "id" | "runtime" | "cgroupPath">,
): Promise<void> {
  const rt = host.runtimeFor(rec.runtime);
  for (let attempt = 1;; attempt++) {
    try {
      host.cgroups.removeChildren(rec.cgroupPath);
    } catch { /* a child still has tasks: the runtime's kill comes first */ }
    try {
      await rt.delete(rec.id, { force: true, missingOk: true });
      return;
    } catch (e) {
      if (attempt >= 4) throw e;
      await host.sleep(100 * attempt * attempt);
    }
  }
}

/**
 * A killed container's tasks can still be exiting when the runtime already
 * reports "stopped"; rmdir then fails with EBUSY until they are gone.
 */
export async function removeCgroup(host: Host, path: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      host.cgroups.remove(path);
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.Busy) || attempt >= 100) throw e;
      await host.sleep(20);
    }
  }
}

/** rmdir the `rkl` parent once the last container left it (a busy one stays). */
export function removeEmptyParent(host: Host, cgroupPath: string): void {
  const parent = cgroupPath.split("/").slice(0, -1).join("/");
  if (!parent) return;
  for (const dir of host.cgroups.dirs(parent)) {
    try {
      host.fs.remove(dir);
    } catch { /* still in use */ }
  }
}

/** rm -rf of `path`, refused while anything is mounted on or below it. */
export function removeUnmounted(host: Pick<Host, "fs">, path: string): void {
  const below = mountPoints(host.fs.readTextFile("/proc/self/mountinfo")).filter((m) =>
    m === path || m.startsWith(`${path}/`)
  );
  if (below.length > 0) {
    throw new RklError(
      "EBUSY",
      `Cannot remove ${path}: ${below[0]} is still mounted`,
      { hint: "rkl rm -f tries the unmount again" },
    );
  }
  removeAll(host.fs, path);
}

/** conmon's entries for container `id` in its socket dir (src/oci/conmon_links.ts). */
export function removeAttachLinks(
  host: Pick<Host, "fs">,
  socketDir: string,
  id: string,
  bundle: string,
): number {
  return removeConmonLinks(host.fs, socketDir, id, bundle);
}
