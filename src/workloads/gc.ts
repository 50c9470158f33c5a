/**
 * `rkl gc`: finds what no usable record owns under this host's roots and
 * removes it, and finishes what a dead rkl process left half made.
 *
 * - Objects by name: every place create puts something (container and pod
 *   dirs, conmon dirs, netns and namespace pins, runtime state, exit files,
 *   logs, cgroups below rkl's parent, IPAM leases) is listed, and each name
 *   that has no usable record is cleaned up by what the host holds
 *   (scavenge.ts). A damaged record counts as no record.
 * - Interrupted creates: a "creating" container or a pod not yet created
 *   whose owner process is gone is torn down from its record.
 * - Records whose resources went away (a runtime that forgot the container)
 *   get their status brought up to date.
 * - Temp files of interrupted atomic writes; portmap chains no one uses.
 * - The image store's temporaries (unpack dirs, partial downloads) when no
 *   pull or import runs.
 *
 * The whole pass holds the store lock, so a create in another process
 * (which reserves its record under that lock before it makes anything) is
 * never mistaken for garbage.
 */
import { checkRecordName } from "../store/store.ts";
import { readDirOr, removeBelow } from "../sys/fsutil.ts";
import { healthDir } from "./health_spawn.ts";
import {
  type ContainerRecord,
  ownerGone,
  processAlive,
  quickRefresh,
  teardown,
} from "./container.ts";
import type { Host } from "./host.ts";
import { podMembersOnHost, type PodRecord, teardownPod } from "./pod.ts";
import { idleBridges, releaseIdleNetworks, scavengeContainer, scavengePod } from "./scavenge.ts";

export interface GcFinding {
  kind: "container" | "pod" | "file" | "record";
  name: string;
  why: string;
}

export interface GcResult {
  findings: GcFinding[];
  /** What was removed or repaired (empty with dryRun). */
  done: string[];
}

function validName(name: string, kind: "containers" | "pods"): boolean {
  try {
    checkRecordName(name, kind);
    return true;
  } catch {
    return false;
  }
}

/** Names of containers and pods that something on the host belongs to, with where it was seen. */
export function namesOnHost(
  host: Host,
): { containers: Map<string, string>; pods: Map<string, string> } {
  const containers = new Map<string, string>();
  const pods = new Map<string, string>();
  const seen = (m: Map<string, string>, name: string, where: string) => {
    if (!m.has(name)) m.set(name, where);
  };
  const { root, runRoot, logDir } = host.paths;
  for (const e of readDirOr(`${root}/containers`, host.fs)) {
    seen(containers, e.name, `${root}/containers`);
  }
  for (const e of readDirOr(`${runRoot}/conmon`, host.fs)) {
    seen(containers, e.name, `${runRoot}/conmon`);
  }
  for (const e of readDirOr(`${root}/exits`, host.fs)) seen(containers, e.name, `${root}/exits`);
  for (const e of readDirOr(logDir, host.fs)) {
    const m = /^(.+)\.log(\.\d+)?$/.exec(e.name); // NAME.log and its rotated NAME.log.N
    if (m) seen(containers, m[1], logDir);
  }
  for (const rt of readDirOr(`${runRoot}/runtime`, host.fs)) {
    for (const e of readDirOr(`${runRoot}/runtime/${rt.name}`, host.fs)) {
      if (e.isDirectory) seen(containers, e.name, `${runRoot}/runtime/${rt.name}`);
    }
  }
  for (const e of readDirOr(`${runRoot}/netns`, host.fs)) {
    if (e.name.startsWith("c_")) seen(containers, e.name.slice(2), `${runRoot}/netns`);
    if (e.name.startsWith("p_")) seen(pods, e.name.slice(2), `${runRoot}/netns`);
  }
  for (const e of readDirOr(`${runRoot}/ns`, host.fs)) {
    if (e.name.startsWith("p_")) seen(pods, e.name.slice(2), `${runRoot}/ns`);
  }
  for (const e of readDirOr(`${root}/pods`, host.fs)) seen(pods, e.name, `${root}/pods`);
  const cgroupDir = host.cgroups.dirs(host.cgroupParent)[0];
  if (cgroupDir) {
    for (const e of readDirOr(cgroupDir, host.fs)) {
      if (!e.isDirectory) continue;
      if (e.name.startsWith("pod-")) {
        const pod = e.name.slice(4);
        seen(pods, pod, cgroupDir);
        for (const m of readDirOr(`${cgroupDir}/${e.name}`, host.fs)) {
          if (m.isDirectory) seen(containers, `${pod}_${m.name}`, `${cgroupDir}/${e.name}`);
        }
      } else seen(containers, e.name, cgroupDir);
    }
  }
  for (const net of readDirOr(`${root}/cni/networks`, host.fs)) {
    for (const f of readDirOr(`${root}/cni/networks/${net.name}`, host.fs)) {
      if (!f.isFile || f.name === "lock" || f.name.startsWith("last_reserved_ip")) continue;
      try {
        const id = host.fs.readTextFile(`${root}/cni/networks/${net.name}/${f.name}`)
          .split(/\r?\n/)[0].trim();
        const tag = host.paths.tag ?? "";
        const bare = id.startsWith(tag) ? id.slice(tag.length) : id;
        if (bare.startsWith("c_")) seen(containers, bare.slice(2), `IP lease ${f.name}`);
        if (bare.startsWith("p_")) seen(pods, bare.slice(2), `IP lease ${f.name}`);
      } catch { /* released meanwhile */ }
    }
  }
  for (const [m, kind] of [[containers, "containers"], [pods, "pods"]] as const) {
    for (const n of [...m.keys()]) if (!validName(n, kind)) m.delete(n);
  }
  return { containers, pods };
}

/** RUN_ROOT/health/NAME.json (and its temp files) without a container record. */
function orphanHealthFiles(host: Host): string[] {
  const dir = healthDir(host);
  return readDirOr(dir, host.fs).filter((e) => {
    const m = /^(.+)\.json(\.\d+\.tmp)?$/.exec(e.name);
    if (!m) return false;
    try {
      return host.store.get("containers", m[1]) === undefined;
    } catch {
      return false; // a damaged record is gc's other business
    }
  }).map((e) => `${dir}/${e.name}`);
}

/** Temp files of atomic writes whose writer (pid in the name) is gone. */
function staleTempFiles(host: Host): string[] {
  const out: string[] = [];
  const dirs = [
    `${host.paths.root}/records/containers`,
    `${host.paths.root}/records/pods`,
    `${host.paths.root}/records/compose`,
  ]; // deno-fmt-ignore
  for (const dir of dirs) {
    for (const e of readDirOr(dir, host.fs)) {
      const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(e.name);
      if (m && !processAlive(host, Number(m[1]))) out.push(`${dir}/${e.name}`);
    }
  }
  return out;
}

/** Volume copies (populate.ts) whose copier (pid in the name) is gone. */
function stalePopulates(host: Host): string[] {
  const out: string[] = [];
  const root = `${host.paths.root}/volumes`;
  for (const v of readDirOr(root, host.fs)) {
    if (!v.isDirectory) continue;
    for (const e of readDirOr(`${root}/${v.name}`, host.fs)) {
      const m = /^\.populate-(\d+)-[0-9a-f]+$/.exec(e.name);
      if (m && e.isDirectory && !processAlive(host, Number(m[1]))) {
        out.push(`${root}/${v.name}/${e.name}`);
      }
    }
  }
  return out;
}

/** What a gc pass collects as it goes: what it found, and what it did about it. */
interface Pass {
  host: Host;
  dryRun: boolean;
  findings: GcFinding[];
  done: string[];
  /** The pod records as the pass began. */
  pods: PodRecord[];
}

export async function gc(host: Host, options: { dryRun?: boolean } = {}): Promise<GcResult> {
  return await host.store.withLock(async () => {
    const pass: Pass = {
      host,
      dryRun: options.dryRun ?? false,
      findings: [],
      done: [],
      pods: host.store.list<PodRecord>("pods"),
    };
    interruptedRenames(pass);
    await orphans(pass);
    await interruptedCreates(pass);
    await staleStatuses(pass);
    strayFiles(pass);
    if (pass.dryRun) {
      for (const br of idleBridges(host)) {
        pass.findings.push({
          kind: "file",
          name: `bridge ${br}`,
          why: "rkl network with no user left",
        });
      }
    } else pass.done.push(...await releaseIdleNetworks(host));
    return { findings: pass.findings, done: pass.done };
  });
}

/** Names on the host with no usable record (or a damaged one), cleaned up by what the host holds. */
async function orphans({ host, dryRun, findings, done, pods }: Pass): Promise<void> {
  const containers = host.store.list<ContainerRecord>("containers");
  const damagedC = host.store.damaged("containers");
  const damagedP = host.store.damaged("pods");
  // What is on the host is named by a container's id (its name unless renamed).
  const owned = new Set(containers.flatMap((r) => [r.name, r.id]));
  const ids = new Set(containers.map((r) => r.id));
  const ownedPods = new Set(pods.map((r) => r.name));
  const onHost = namesOnHost(host);

  // Pods first: a pod's scavenge takes its members with it.
  const orphanPods = new Map<string, string>();
  for (const [n, where] of onHost.pods) {
    if (!ownedPods.has(n)) orphanPods.set(n, `in ${where}, no record`);
  }
  for (const d of damagedP) orphanPods.set(d.name, `damaged record: ${d.reason}`);
  for (const [name, why] of orphanPods) {
    findings.push({ kind: "pod", name, why });
    if (!dryRun) {
      // Members go with their pod, with or without records of their own.
      const members = podMembersOnHost(host, name);
      done.push(...(await scavengePod(host, name, members)).map((x) => `pod ${name}: ${x}`));
    }
  }
  const orphanContainers = new Map<string, string>();
  for (const [n, where] of onHost.containers) {
    if (owned.has(n)) continue;
    const pod = n.includes("_") ? n.slice(0, n.indexOf("_")) : undefined;
    if (pod && orphanPods.has(pod) && !dryRun) continue; // went with its pod
    orphanContainers.set(n, `in ${where}, no record`);
  }
  for (const d of damagedC) orphanContainers.set(d.name, `damaged record: ${d.reason}`);
  for (const [name, why] of orphanContainers) {
    findings.push({ kind: "container", name, why });
    if (!dryRun && ids.has(name)) {
      // A damaged record whose name a renamed container keeps as its id:
      // what the host holds under that name is the other one's.
      host.store.delete("containers", name);
      done.push(`container ${name}: damaged record removed`);
    } else if (!dryRun) {
      const made = await scavengeContainer(host, name, { releaseNetworks: false });
      done.push(...made.map((x) => `container ${name}: ${x}`));
    }
  }
}

/**
 * A rename cut short between its two steps (store.rename) leaves the old
 * record beside the new one, which says `renamedFrom`: the old one goes.
 */
function interruptedRenames({ host, dryRun, findings, done }: Pass): void {
  const all = host.store.list<ContainerRecord>("containers");
  const removed = new Set<string>(); // one record of a pair always stays
  for (const r of all) {
    if (removed.has(r.name)) continue;
    const old = r.renamedFrom === undefined
      ? undefined
      : all.find((o) => o.name === r.renamedFrom && o.id === r.id && o.createdAt === r.createdAt);
    if (!old || removed.has(old.name)) continue;
    removed.add(old.name);
    findings.push({
      kind: "record",
      name: old.name,
      why: `renamed to ${r.name}, rename cut short`,
    });
    if (!dryRun) {
      host.store.delete("containers", old.name);
      done.push(`container ${old.name}: record of its old name removed (now ${r.name})`);
    }
  }
}

/** Creates whose process died half-way: undone from their records. */
async function interruptedCreates({ host, dryRun, findings, done, pods }: Pass): Promise<void> {
  for (const p of pods) {
    if (p.removing && ownerGone(host, p.remover)) {
      // A served `pod rm` answered, then its process died before the teardown ended.
      findings.push({
        kind: "pod",
        name: p.name,
        why: `removal cut short (pid ${p.remover?.pid} gone)`,
      });
      if (!dryRun) {
        await teardownPod(host, p);
        done.push(`pod ${p.name}: removal finished`);
      }
      continue;
    }
    if (p.created || !ownerGone(host, p.owner)) continue;
    findings.push({
      kind: "pod",
      name: p.name,
      why: `creation interrupted (pid ${p.owner!.pid} gone)`,
    });
    if (!dryRun) {
      await teardownPod(host, p);
      done.push(`pod ${p.name}: interrupted create rolled back`);
    }
  }
  for (const c of host.store.list<ContainerRecord>("containers")) {
    if (c.status !== "creating" || !ownerGone(host, c.owner)) continue;
    if (c.pod && host.store.get("pods", c.pod)) {
      const pod = host.store.get<PodRecord>("pods", c.pod)!;
      if (!pod.created && !ownerGone(host, pod.owner)) continue; // its pod's create goes on
    }
    findings.push({
      kind: "container",
      name: c.name,
      why: `creation interrupted (pid ${c.owner!.pid} gone)`,
    });
    if (!dryRun) {
      await teardown(host, c);
      done.push(`container ${c.name}: interrupted create rolled back`);
    }
  }
}

/** Records whose runtime state went away: status brought up to date. */
async function staleStatuses({ host, dryRun, findings, done }: Pass): Promise<void> {
  for (const c of host.store.list<ContainerRecord>("containers")) {
    if (c.status === "creating" || c.status === "exited") continue;
    const before = c.status;
    const now = await quickRefresh(host, structuredClone(c));
    if (now.status !== before) {
      findings.push({ kind: "record", name: c.name, why: `was ${before}, is ${now.status}` });
      if (!dryRun) {
        host.store.put("containers", now);
        done.push(`container ${c.name}: status ${before} → ${now.status}`);
      }
    }
  }
}

/** Health files of gone containers, temp files of dead writers, the image store's temporaries. */
function strayFiles({ host, dryRun, findings, done }: Pass): void {
  for (const f of orphanHealthFiles(host)) {
    findings.push({ kind: "file", name: f, why: "health state of a container that is gone" });
    if (!dryRun) {
      host.fs.remove(f);
      done.push(`removed ${f}`);
    }
  }
  for (const f of staleTempFiles(host)) {
    findings.push({ kind: "file", name: f, why: "temp file of an interrupted write" });
    if (!dryRun) {
      host.fs.remove(f);
      done.push(`removed ${f}`);
    }
  }
  for (const d of stalePopulates(host)) {
    findings.push({ kind: "file", name: d, why: "a volume's copy cut short" });
    if (!dryRun) {
      removeBelow(`${host.paths.root}/volumes`, d, "a volume's copy", host.fs);
      done.push(`removed ${d}`);
    }
  }
  // The image store's temporaries, when no pull or import runs (a pull
  // killed with -9 leaves its unpack dir and download behind).
  const temps = host.images?.store.sweepTemporaries({ remove: !dryRun });
  if (temps === undefined) {
    done.push("image store: a pull or import is running; its temporaries left for the next gc");
  }
  for (const f of temps ?? []) {
    findings.push({
      kind: "file",
      name: f,
      why: "temporary of an interrupted image pull or import",
    });
    if (!dryRun) done.push(`removed ${f}`);
  }
}
