/**
 * A pod's create, in steps: prepare the inputs (prepare.ts), reserve the
 * record, make the sandbox (dirs and volumes, cgroup, netns and CNI, /etc
 * files), pin the namespaces (with a pause container where one is needed),
 * run the init containers, create the app containers. Each thing is listed
 * in the record before it is made; a failure at any step tears down exactly
 * what the record lists.
 */
import { ConflictError, locatingFields, RklError } from "../../errors.ts";
import type { ContainerSpec, LoadedContainer } from "../../spec/container.ts";
import type { LoadedPod } from "../../spec/pod.ts";
import { HOSTS_GROUP } from "../../spec/names.ts";
import { readExitCode } from "../../oci/conmon.ts";
import { createNamespaces, pinNamespace } from "../../sys/netns.ts";
import { privateDir } from "../../sys/fsutil.ts";
import { trace } from "../../trace.ts";
import { cancellable, checkCancelled } from "../../cancel.ts";
import {
  type ContainerRecord,
  createContainer,
  type CreateOptions,
  refresh,
  refuseLeftovers,
  restartContainer,
  type Sandbox,
  selfOwner,
  startCreated,
} from "../container.ts";
import { cniIdFor, type Host } from "../host.ts";
import { createPodMember } from "../container/create.ts";
import { parseCriLog, tail as tailEntries } from "../logs.ts";
import { portConflict } from "../ports.ts";
import { writeEtcFiles, writeGroupHosts } from "./etc.ts";
import { startPodNetwork } from "./network.ts";
import { pauseSpec } from "./pause.ts";
import { findPort, locText, podLimits, usesPodIP } from "./plan.ts";
import { type PodInputs, preparePod } from "./prepare.ts";
import { podInfoOf, podJoin, sandboxFor } from "./sandbox.ts";
import { teardownPod } from "./teardown.ts";
import {
  type CreatePodOptions,
  getPod,
  memberName,
  nsDir,
  podDirs,
  type PodRecord,
} from "./types.ts";
import { makePodVolumes, writeVolumeFiles } from "./volumes.ts";
import { memberProbes } from "./probe_monitor.ts";
import { rootlessPodChecks } from "../rootless.ts";

export function createPod(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
): Promise<PodRecord> {
  // A FieldError (its path is the pod's) is located through the request's source.
  return locatingFields(
    loaded.source,
    () => cancellable(() => createPodNow(host, loaded, options)),
  );
}

/** One create under way: what every step reads, and the CNI ADD while it runs. */
interface PodBuild {
  host: Host;
  loaded: LoadedPod;
  rec: PodRecord;
  inputs: PodInputs;
  /**
   * Stores the record (each step lists what it makes before making it).
   * `durable: false` for a step that lists only what a reboot removes with
   * it (a cgroup, namespaces, a mount, an address in a netns): losing that
   * write in a power cut loses nothing a later rm or gc needs, so it is
   * written atomically but not synced (see writeAtomic). What outlives a
   * reboot (the pod's dirs, its IP lease, its members' records) is listed
   * by a synced write before it is made.
   */
  save(durable?: boolean): void;
  /** CNI ADD, while it runs (awaited before the first start, or before a rollback). */
  netUp?: Promise<void>;
  /** Writes the pod's /etc files (and its hosts group's). */
  writeEtc(): void;
  /** Awaits CNI ADD, once; the IP then goes into /etc/hosts. */
  networkReady(): Promise<void>;
}

async function createPodNow(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
): Promise<PodRecord> {
  if (host.rootless) rootlessPodChecks({ ...host, rootless: host.rootless }, loaded);
  const inputs = await preparePod(host, loaded, options);
  const rec = await reservePod(host, loaded, options, inputs);
  trace("pod: record reserved");
  const b = podBuild(host, loaded, rec, inputs);
  try {
    await makeSandbox(b);
    const join = await pinNamespaces(b);
    await runInitContainers(b, join);
    await createAppContainers(b, join);
    rec.created = true;
    rec.owner = undefined;
    b.save();
    return rec;
  } catch (e) {
    // A CNI ADD still running would attach after the rollback's DEL.
    await b.netUp?.catch(() => {});
    try {
      await teardownPod(host, rec, { rollback: true });
    } catch (e2) {
      host.warn(
        `Cannot roll back pod ${JSON.stringify(rec.name)} after "${(e as Error).message}": ${
          (e2 as Error).message
        }`,
      );
    }
    throw e;
  }
}

function podBuild(host: Host, loaded: LoadedPod, rec: PodRecord, inputs: PodInputs): PodBuild {
  const spec = loaded.spec;
  let networked = false;
  const b: PodBuild = {
    host,
    loaded,
    rec,
    inputs,
    save: (durable = true) => {
      host.store.put("pods", rec, { durable });
      checkCancelled();
    },
    writeEtc: () => {
      writeEtcFiles(
        host,
        rec,
        spec.subdomain,
        spec.hostAliases,
        spec.dns,
        spec.resolv,
        (note) => host.warn(`pod ${JSON.stringify(rec.name)}: resolv.conf: ${note}`),
      );
      if (spec.annotations[HOSTS_GROUP]) writeGroupHosts(host, spec.annotations[HOSTS_GROUP]);
    },
    networkReady: async () => {
      if (networked || !b.netUp) return;
      await b.netUp;
      networked = true;
      b.writeEtc();
    },
  };
  return b;
}

/** Takes the name and the host ports under the store lock, and stores the record. */
function reservePod(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
  inputs: PodInputs,
): Promise<PodRecord> {
  const name = loaded.spec.name;
  return host.store.withLock(async () => {
    const left = host.store.get<PodRecord>("pods", name);
    // A removal goes on under the lock from its mark to its end: one seen here was cut short.
    if (left?.removing) await teardownPod(host, left);
    else if (left) {
      throw new ConflictError(
        `${locText(loaded, ["metadata", "name"])}: Cannot create pod: name ${
          JSON.stringify(name)
        } is already in use`,
      );
    }
    refuseLeftovers(host, name, "pod");
    const conflict = portConflict(host, inputs.mappings, { nat: inputs.nat });
    if (conflict) {
      const where = findPort(loaded, conflict.mapping.hostPort);
      throw new ConflictError(
        `${
          locText(loaded, where)
        }: Cannot publish port ${conflict.mapping.hostPort}/${conflict.mapping.protocol}: ${conflict.reason}`,
      );
    }
    const r = newPodRecord(host, loaded, options, inputs);
    host.store.put("pods", r);
    return r;
  });
}

/** The record of a pod about to be made: nothing made yet, its owner this process. */
function newPodRecord(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
  inputs: PodInputs,
): PodRecord {
  const spec = loaded.spec;
  const name = spec.name;
  const dirs = podDirs(host, name);
  const { conflist, network, imageVolumes } = inputs;
  return {
    schemaVersion: 1,
    kind: "pod",
    name,
    specFile: loaded.source.file,
    namespace: spec.namespace,
    labels: spec.labels,
    annotations: spec.annotations,
    createdAt: host.now().toISOString(),
    created: false,
    restartPolicy: spec.restartPolicy,
    hostNetwork: spec.hostNetwork,
    shareProcessNamespace: spec.shareProcessNamespace,
    hostPID: spec.hostPID || undefined,
    hostIPC: spec.hostIPC || undefined,
    hostname: spec.hostname,
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
    runtime: { name: host.runtime.name, binary: host.runtime.binary, root: host.runtime.root },
    cgroupPath: spec.cgroupParent ?? `${host.cgroupParent}/pod-${name}`,
    limits: spec.resources
      ? podLimits([{ resources: spec.resources } as ContainerSpec])
      : podLimits(spec.containers.map((c) => c.spec)),
    netns: spec.hostNetwork ? undefined : `${host.paths.runRoot}/netns/p_${name}`,
    network: conflist
      ? {
        name: network!,
        cniId: cniIdFor(host.paths, "p", name),
        conflist,
        portMappings: inputs.mappings,
      }
      : undefined,
    initContainers: [],
    containers: [],
    dirs,
    emptyDirs: Object.fromEntries(
      [...spec.emptyDirs, ...Object.keys(spec.fileVolumes), ...Object.keys(imageVolumes)].map((
        v,
      ) => [v, `${dirs.volumes}/${v}`]),
    ),
    imageVolumes: Object.keys(imageVolumes).length > 0 ? imageVolumes : undefined,
    // Listed by the reservation itself, one synced write fewer: the dirs are
    // made next, and a teardown takes a dir that was never made as removed.
    resources: { dir: true },
    static: options.static,
    source: options.source,
    uid: spec.uid ?? crypto.randomUUID(),
    claims: spec.claims.length > 0 ? spec.claims : undefined,
    probes: memberProbes(
      name,
      [...spec.initContainers.filter((c) => c.spec.sidecar), ...spec.containers].map((c) => c.spec),
    ),
    owner: selfOwner(host),
    epoch: host.epoch,
  };
}

/**
 * Dirs and volumes, the cgroup, the netns with CNI ADD started, the /etc
 * files and the volume files. ADD runs while the first containers are
 * created: they need the netns file, not the address. /etc/hosts is written
 * again, in place (the members bind the inode), once the address is known; a
 * pod that puts its IP in an env var or a file waits for it here.
 */
async function makeSandbox(b: PodBuild): Promise<void> {
  const { host, rec, inputs } = b;
  const spec = b.loaded.spec;
  makePodVolumes(host, spec, rec, b.save);
  trace("pod: dirs");
  rec.resources.cgroup = true;
  b.save(false);
  // Rootless: no cgroup to write; the limits were warned about (or refused) before.
  if (!host.rootless) host.cgroups.apply(rec.cgroupPath, rec.limits);
  trace("pod: cgroup");
  if (rec.netns) {
    const { conflist, mappings } = inputs;
    b.netUp = startPodNetwork(host, rec, { netns: rec.netns, conflist, mappings, save: b.save });
    if (usesPodIP(spec)) await b.netUp;
  }
  b.writeEtc();
  const info = podInfoOf(host, rec);
  for (const [v, files] of Object.entries(spec.fileVolumes)) {
    writeVolumeFiles(host.fs, rec.emptyDirs[v], files, info, spec.fsGroup);
  }
}

/**
 * Pins the pod's IPC, UTS (and with a pause container, PID) namespaces as
 * files, and returns what members join. Members join pinned files, never
 * /proc/PID/ns/*: a restart after the pause process died must not join
 * whoever got its pid next.
 */
async function pinNamespaces(b: PodBuild): Promise<Sandbox["join"]> {
  const { host, rec, inputs } = b;
  const spec = b.loaded.spec;
  const name = rec.name;
  const pinTypes = [
    ...(spec.hostIPC ? [] : ["ipc"]),
    ...(spec.hostNetwork ? [] : ["uts"]),
    ...(inputs.withPause ? ["pid"] : []),
  ];
  const pins = Object.fromEntries(pinTypes.map((t) => [t, `${nsDir(host, name)}/${t}`]));
  // Recorded before any pin is made, so a failure or a crash after it is undone.
  const recordPins = () => {
    rec.nsPins = pins;
    rec.resources.nsPins = true;
    b.save(false);
    privateDir(nsDir(host, name), 0o711, host.fs);
  };
  if (inputs.withPause) {
    // The pause container, in the pod netns (or the host's), with new IPC/UTS/PID.
    const pauseName = `${name}__pause`;
    rec.pause = pauseName;
    b.save();
    const pauseRec = await createPodMember(
      host,
      pauseSpec(inputs.pauseDir, inputs.pauseHasArgs, spec.pauseImage),
      {
        network: null,
        sandbox: sandboxFor(host, rec, pauseName, {
          network: rec.netns ?? "host",
          ...(spec.hostNetwork ? { uts: "host" } : {}),
          ...(spec.hostIPC ? { ipc: "host" } : {}),
        }, `${rec.cgroupPath}/_pause`),
      },
    );
    await b.networkReady();
    await startCreated(host, pauseRec);
    trace("pod: pause running");
    recordPins();
    for (const t of pinTypes) {
      pinNamespace(
        host.sys,
        {
          pid: pauseRec.pid!,
          startTime: pauseRec.pidStart!,
          type: t,
          path: pins[t],
        },
        (p) => host.proc.stat(p)?.startTime,
        host.fs,
      );
    }
  } else {
    recordPins();
    if ((pins.ipc || pins.uts) && host.rootless?.createNamespaces) {
      // Rootless: made by a child, which cannot go back to the host's namespaces otherwise.
      host.rootless.createNamespaces(
        { ipc: pins.ipc, uts: pins.uts },
        spec.hostNetwork ? undefined : rec.hostname,
      );
    } else if (pins.ipc || pins.uts) {
      createNamespaces(
        host.sys,
        { ipc: pins.ipc, uts: pins.uts },
        spec.hostNetwork ? undefined : rec.hostname,
        host.fs,
      );
    }
  }
  trace("pod: namespaces pinned");
  return podJoin(rec);
}

/** Runs each init container to completion in turn; a native sidecar is started and left running. */
async function runInitContainers(b: PodBuild, join: Sandbox["join"]): Promise<void> {
  const { host, rec } = b;
  const spec = b.loaded.spec;
  if (spec.initContainers.length > 0) await b.networkReady();
  for (const c of spec.initContainers) {
    const member = memberName(rec.name, c.spec.name);
    rec.initContainers.push(member);
    b.save();
    const r = await createPodMember(host, c, {
      network: null,
      sandbox: sandboxFor(host, rec, member, join, `${rec.cgroupPath}/${c.spec.name}`),
    });
    await startCreated(host, r);
    if (c.spec.sidecar) {
      // A native sidecar: started, then the next init container goes on, as the
      // kubelet does; it runs for the pod's life and restarts Always.
      (rec.sidecars ??= []).push(member);
      b.save();
      continue;
    }
    let done = await waitExited(host, r);
    // The container's own restartPolicy / restartPolicyRules (Kubernetes 1.34) may run a
    // failed init container again, after the kubelet's back-off (10 s, doubled, 5 min at most).
    const own = spec.initRestarts?.[c.spec.name];
    // Loaded only here: restart_rules.ts reaches the YAML parser (its errors are located in the
    // source), which `pod rm` and a pod without such rules need not load (90 modules).
    const { initBackoffMs, initRestarts } = own
      ? await import("../../spec/pod/restart_rules.ts")
      : { initBackoffMs: () => 0, initRestarts: () => false };
    for (let n = 0; own && initRestarts(own, done.exitCode ?? -1); n++) {
      host.warn(
        `pod ${JSON.stringify(rec.name)}: init container ${
          JSON.stringify(c.spec.name)
        } exited with code ${done.exitCode}; its restart rules run it again in ${
          initBackoffMs(n) / 1000
        } s`,
      );
      await sleepCancellable(host, initBackoffMs(n));
      done = await waitExited(host, await restartContainer(host, member));
    }
    trace("pod: init container done");
    if (done.exitCode !== 0) {
      throw new RklError(
        "EINIT",
        `${locText(c, ["name"])}: Cannot start pod ${JSON.stringify(rec.name)}: init container ${
          JSON.stringify(c.spec.name)
        } exited with code ${done.exitCode}${lastLines(host, done)}`,
      );
    }
  }
}

/**
 * App containers are independent once the namespaces exist: they are
 * created side by side. All are recorded first, so a failure rolls back all.
 */
async function createAppContainers(b: PodBuild, join: Sandbox["join"]): Promise<void> {
  const { host, rec } = b;
  const spec = b.loaded.spec;
  for (const c of spec.containers) rec.containers.push(memberName(rec.name, c.spec.name));
  b.save();
  const made = await Promise.allSettled([
    ...spec.containers.map((c) =>
      createPodMember(host, c, {
        network: null,
        sandbox: sandboxFor(
          host,
          rec,
          memberName(rec.name, c.spec.name),
          join,
          `${rec.cgroupPath}/${c.spec.name}`,
        ),
      })
    ),
    b.networkReady(),
  ]);
  const failed = made.find((m): m is PromiseRejectedResult => m.status === "rejected");
  if (failed) throw failed.reason;
  trace("pod: app containers created");
}

/**
 * Creates one more container in a pod that is made (the CRI's
 * CreateContainer). It is listed in the pod before it is made, and dropped
 * from it again when the create fails, so the pod's teardown always finds it.
 */
export async function addPodContainer(
  host: Host,
  pod: string,
  loaded: LoadedContainer,
  options: Pick<CreateOptions, "source" | "logPath" | "deferLaunch"> & { recordName: string },
): Promise<ContainerRecord> {
  const member = options.recordName;
  const rec = await host.store.withLock(() => {
    const r = getPod(host, pod);
    if (!r.created) {
      throw new ConflictError(`Cannot add to pod ${JSON.stringify(pod)}: it is being made`);
    }
    if (r.containers.includes(member)) {
      throw new ConflictError(`Cannot add ${JSON.stringify(member)}: pod ${pod} holds it already`);
    }
    r.containers.push(member);
    host.store.put("pods", r);
    return Promise.resolve(r);
  });
  try {
    return await createContainer(host, loaded, {
      network: null,
      sandbox: sandboxFor(host, rec, member, podJoin(rec), `${rec.cgroupPath}/${member}`),
      source: options.source,
      logPath: options.logPath,
      deferLaunch: options.deferLaunch,
    });
  } catch (e) {
    await forgetPodContainer(host, pod, member);
    throw e;
  }
}

/** Drops a removed container from its pod's list (the CRI's RemoveContainer). */
export function forgetPodContainer(host: Host, pod: string, member: string): Promise<void> {
  return host.store.withLock(() => {
    const r = host.store.get<PodRecord>("pods", pod);
    if (r && r.containers.includes(member)) {
      r.containers = r.containers.filter((m) => m !== member);
      host.store.put("pods", r);
    }
    return Promise.resolve();
  });
}

/** Sleeps `ms`, interruptible as waitExited is. */
async function sleepCancellable(host: Host, ms: number): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    checkCancelled();
    await host.sleep(Math.min(200, end - Date.now()));
  }
}

/** Waits for a container to exit (init containers); no deadline, as in Kubernetes. */
async function waitExited(host: Host, rec: ContainerRecord): Promise<ContainerRecord> {
  for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
    const exit = readExitCode(rec.dirs.exitDir, rec.id);
    if (exit !== undefined) return await refresh(host, rec);
    checkCancelled(); // an init container that never ends can still be interrupted
    await host.sleep(delay);
  }
}

/** `: last output line` of a failed container, to put in its error. */
function lastLines(host: Host, rec: ContainerRecord): string {
  try {
    const { entries } = parseCriLog(host.fs.readTextFile(rec.dirs.log));
    const last = tailEntries(entries, 2).map((e) => e.content).join(" | ");
    return last ? ` (last output: ${last})` : "";
  } catch {
    return "";
  }
}
