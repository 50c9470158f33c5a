/**
 * Cleaning up an object by what is on the host, when its record cannot be
 * trusted (damaged, or gone): every resource is found from the object's
 * name alone, through the same derivations create uses (containerDirs,
 * podDirs, nsDir, the cgroup layout, the CNI container id), never through
 * paths read from the record. Each step tolerates what is already gone, so
 * running it twice is harmless. `rm -f` of a damaged record and `rkl gc` use
 * it; ordinary teardown uses the record, which knows more (CNI results).
 */
import { removeIdlePortmapChains, removeNatRulesFor } from "../net/portmap.ts";
import type { NetConfList } from "../net/cni.ts";
import { bridgeName } from "../net/network.ts";
import { deleteIdleBridge } from "../net/hostnet.ts";
import { mountPoints, unmount } from "../sys/mounts.ts";
import { removeNetns } from "../sys/netns.ts";
import { pathExists, readDirOr, removeBelow } from "../sys/fsutil.ts";
import type { FsEntry } from "../sys/fs.ts";
import { unstageSubPath } from "../sys/subpath.ts";
import { which } from "../oci/runtime.ts";
import {
  deleteWithRetry,
  removeAttachLinks,
  removeCgroup,
  removeEmptyParent,
  removeUnmounted,
} from "./container/teardown.ts";
import { waitConmonGone } from "./container/conmon.ts";
import { cniIdFor, containerDirs, type Host } from "./host.ts";
import { rotatedLogs } from "./logrotate.ts";

/** The cgroup a container of this record name lives in (pod members below their pod's). */
export function cgroupOfName(host: Pick<Host, "cgroupParent">, name: string): string {
  const i = name.indexOf("_");
  if (i < 0) return `${host.cgroupParent}/${name}`;
  return `${host.cgroupParent}/pod-${name.slice(0, i)}/${name.slice(i + 1)}`;
}

/** Runtime state dirs under this run root that know container `id`: [name, root]. */
export function runtimesKnowing(host: Host, id: string): [string, string][] {
  const base = `${host.paths.runRoot}/runtime`;
  const out: [string, string][] = [];
  let entries: FsEntry[] = [];
  try {
    entries = host.fs.readDir(base);
  } catch { /* no runtime used yet */ }
  for (const e of entries) {
    if (!e.isDirectory || !/^[a-z0-9-]+$/.test(e.name)) continue;
    try {
      host.fs.stat(`${base}/${e.name}/${id}`);
      out.push([e.name, `${base}/${e.name}`]);
    } catch { /* not this runtime's */ }
  }
  return out;
}

/** Removes host-local IPAM leases held by a CNI container id; returns the IPs freed. */
export function removeLeases(host: Host, cniId: string): string[] {
  const base = `${host.paths.root}/cni/networks`;
  const freed: string[] = [];
  let nets: FsEntry[] = [];
  try {
    nets = host.fs.readDir(base);
  } catch { /* no leases */ }
  for (const n of nets) {
    if (!n.isDirectory) continue;
    for (const f of host.fs.readDir(`${base}/${n.name}`)) {
      if (!f.isFile || f.name === "lock" || f.name.startsWith("last_reserved_ip")) continue;
      const path = `${base}/${n.name}/${f.name}`;
      try {
        // host-local writes "ID\nIFNAME" into a file named by the address.
        if (host.fs.readTextFile(path).split(/\r?\n/)[0].trim() !== cniId) continue;
        host.fs.remove(path);
        freed.push(f.name);
      } catch { /* raced with a release */ }
    }
  }
  return freed;
}

/** Everything a container of this name may hold on the host, removed; returns what was done. */
export async function scavengeContainer(
  host: Host,
  name: string,
  options: { releaseNetworks?: boolean } = {},
): Promise<string[]> {
  const done: string[] = [];
  const d = containerDirs(host.paths, name);
  const errors: Error[] = [];
  const step = async (what: string, fn: () => unknown) => {
    try {
      const r = await fn();
      if (r !== false) done.push(what);
    } catch (e) {
      errors.push(e as Error);
    }
  };
  const cg = cgroupOfName(host, name);
  for (const [rt, root] of runtimesKnowing(host, name)) {
    const binary = which(rt);
    if (!binary) {
      errors.push(new Error(`runtime ${rt} knows ${name} but is not installed`));
      continue;
    }
    await step(
      `runtime ${rt}: delete --force ${name}`,
      () =>
        deleteWithRetry(host, { id: name, runtime: { name: rt, binary, root }, cgroupPath: cg }),
    );
  }
  await step(
    "conmon exited",
    () => waitConmonGone(host, d.conmonDir, { kill: true }).then(() => false),
  );
  await step(`cgroup ${cg}`, async () => {
    if (host.cgroups.dirs(cg).every((p) => !pathExists(p, host.fs))) return false;
    await removeCgroup(host, cg);
  });
  const cniId = cniIdFor(host.paths, "c", name);
  await step(`nat rules of ${cniId}`, () => removeNatRulesFor(host.cmd, cniId));
  await step(`IP leases of ${cniId}`, () => removeLeases(host, cniId).length > 0);
  let staged: FsEntry[] = [];
  try {
    staged = host.fs.readDir(d.subPaths);
  } catch { /* none */ }
  for (const s of staged) {
    await step(
      `subPath ${s.name}`,
      () => unstageSubPath(host.sys, `${d.subPaths}/${s.name}`, host.fs),
    );
  }
  await step("rootfs unmounted", () => {
    if (!pathExists(d.rootfs, host.fs)) return false;
    unmount(host.sys, d.rootfs);
  });
  await step(`netns ${d.netns}`, () => {
    if (!pathExists(d.netns, host.fs)) return false;
    removeNetns(host.sys, d.netns, host.fs);
  });
  for (
    const [what, path, root] of [
      ["container dir", d.dir, `${host.paths.root}/containers`],
      ["conmon dir", d.conmonDir, `${host.paths.runRoot}/conmon`],
      ["exit file", `${d.exitDir}/${name}`, d.exitDir],
      ["log", d.log, host.paths.logDir],
    ] as const
  ) {
    await step(`${what} ${path}`, () => {
      if (!pathExists(path, host.fs)) return false;
      if (path === d.dir) removeUnmounted(host, path);
      else removeBelow(root, path, what, host.fs);
    });
  }
  await step(
    `attach socket links of ${name}`,
    () => removeAttachLinks(host, d.socketDir, name, d.bundle) > 0,
  );
  for (const old of rotatedLogs(d.log, host.fs)) {
    await step(`log ${old}`, () => removeBelow(host.paths.logDir, old, "rotated log", host.fs));
  }
  if (errors.length > 0) {
    throw new Error(`Cannot clean up container ${JSON.stringify(name)}: ${errors[0].message}`, {
      cause: errors[0],
    });
  }
  await step(`cgroup parent of ${cg}`, () => {
    removeEmptyParent(host, cg);
    return false;
  });
  await host.store.withLock(async () => {
    host.store.delete("containers", name);
    // A pod's or gc's pass releases once, after all of its members. Idle
    // bridges stay, as after any rm (bridgeGoesWith): gc deletes them.
    if (options.releaseNetworks ?? true) {
      done.push(...await releaseIdleNetworks(host, { bridges: false }));
    }
  });
  return done;
}

/** Everything a pod of this name may hold, its members included; returns what was done. */
export async function scavengePod(
  host: Host,
  name: string,
  members: string[],
): Promise<string[]> {
  const done: string[] = [];
  for (const m of members) {
    done.push(...await scavengeContainer(host, m, { releaseNetworks: false }));
  }
  const cniId = cniIdFor(host.paths, "p", name);
  if (await removeNatRulesFor(host.cmd, cniId)) done.push(`nat rules of ${cniId}`);
  if (removeLeases(host, cniId).length > 0) done.push(`IP leases of ${cniId}`);
  const netns = `${host.paths.runRoot}/netns/p_${name}`;
  if (pathExists(netns, host.fs)) {
    removeNetns(host.sys, netns, host.fs);
    done.push(`netns ${netns}`);
  }
  const ns = `${host.paths.runRoot}/ns/p_${name}`;
  if (pathExists(ns, host.fs)) {
    for (const t of ["ipc", "uts", "pid"]) removeNetns(host.sys, `${ns}/${t}`, host.fs);
    removeBelow(`${host.paths.runRoot}/ns`, ns, `pod ${name} namespaces`, host.fs);
    done.push(`namespace pins ${ns}`);
  }
  const cg = `${host.cgroupParent}/pod-${name}`;
  if (host.cgroups.dirs(cg).some((p) => pathExists(p, host.fs))) {
    await removeCgroup(host, cg);
    done.push(`cgroup ${cg}`);
  }
  removeEmptyParent(host, cg); // its members' removal may have taken the pod cgroup already
  const dir = `${host.paths.root}/pods/${name}`;
  // The only mounts a pod dir holds sit on pods/NAME/volumes/VOLUME: image
  // volumes and medium: Memory emptyDirs. The kernel's table names them.
  const volumes = `${dir}/volumes/`;
  for (const m of mountPoints(host.fs.readTextFile("/proc/self/mountinfo"))) {
    if (!m.startsWith(volumes) || m.slice(volumes.length).includes("/")) continue;
    unmount(host.sys, m);
    done.push(`volume mount ${m}`);
  }
  if (pathExists(dir, host.fs)) {
    removeUnmounted(host, dir);
    done.push(`pod dir ${dir}`);
  }
  await host.store.withLock(async () => {
    host.store.delete("pods", name);
    done.push(...await releaseIdleNetworks(host, { bridges: false }));
  });
  return done;
}

/** Bridges of rkl's own conflists that exist, have no port, and no record uses. */
export function idleBridges(host: Host): string[] {
  const used = new Set<string>();
  for (const kind of ["containers", "pods"] as const) {
    for (
      const r of host.store.list<
        {
          name: string;
          schemaVersion: number;
          network?: { name: string };
          extraNetworks?: { name: string }[];
        }
      >(kind)
    ) {
      if (r.network) used.add(r.network.name);
      for (const x of r.extraNetworks ?? []) used.add(x.name);
    }
  }
  const out: string[] = [];
  for (const e of readDirOr(host.paths.cniConfDir, host.fs)) {
    if (!e.name.endsWith(".conflist")) continue;
    let list: NetConfList;
    try {
      list = JSON.parse(host.fs.readTextFile(`${host.paths.cniConfDir}/${e.name}`));
    } catch {
      continue;
    }
    const br = typeof list?.name === "string" && Array.isArray(list.plugins)
      ? bridgeName(list)
      : undefined;
    if (!br || used.has(list.name) || !/^[A-Za-z0-9_.-]{1,15}$/.test(br)) continue;
    if (readDirOr(`/sys/class/net/${br}/brif`, host.fs).length > 0) continue; // something is plugged in
    try {
      host.fs.stat(`/sys/class/net/${br}/bridge`);
      out.push(br);
    } catch { /* no such bridge */ }
  }
  return out;
}

/**
 * After a scavenge or gc: portmap's shared chains once no mapping is left,
 * and (`bridges`, gc's pass) the bridges of rkl networks nobody uses any
 * more. A scavenge (`rm -f` of a damaged record) leaves bridges, as any rm
 * does (see bridgeGoesWith in container/network.ts). Nothing is released
 * while a damaged record might still stand for a user.
 */
export async function releaseIdleNetworks(
  host: Host,
  options: { bridges?: boolean } = {},
): Promise<string[]> {
  if (host.store.damaged("containers").length + host.store.damaged("pods").length > 0) return [];
  const done: string[] = [];
  for (const br of (options.bridges ?? true) ? idleBridges(host) : []) {
    // Checked again under the host-wide lock: another root may have attached to it since.
    if (await deleteIdleBridge(host.cmd, br, { fs: host.fs, lock: host.lock }).catch(() => false)) {
      done.push(`deleted bridge ${br}`);
    }
  }
  if (await removeIdlePortmapChains(host.cmd, host.lock)) {
    done.push("removed portmap's idle nat chains");
  }
  return done;
}
