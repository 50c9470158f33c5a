/**
 * Creating a single container.
 *
 * Rollback design: the store record lists each resource *before* it is made
 * (`resources`), and {@linkcode teardown} undoes exactly the listed ones,
 * tolerating the ones that are already gone. The same function is the undo
 * path of a failed create, the body of `rm`, and the cleanup after an rkl
 * process that died half-way (`rm -f` of a "creating" record), so there is
 * one rollback path to test instead of three.
 */
import { ensureVolume, removeVolumesIfUnused, volumeOfDataDir } from "../volumes.ts";
import { populateVolumes } from "./populate.ts";
import { ConflictError, locatingFields, RklError } from "../../errors.ts";
import type { NetConfList, PortMapping } from "../../net/cni.ts";
import { loadNetwork } from "../../net/network.ts";
import { natTable } from "../../net/hostnet.ts";
import type { LoadedContainer } from "../../spec/container.ts";
import { writeAtomic } from "../../store/store.ts";
import { mountOverlay } from "../../sys/mounts.ts";
import { stageSubPath } from "../../sys/subpath.ts";
import { pathExists, privateDir } from "../../sys/fsutil.ts";
import { primeAttach } from "../../sys/cgroups/mod.ts";
import { trace } from "../../trace.ts";
import { cancellable, checkCancelled } from "../../cancel.ts";
import { storedHooks } from "../hooks.ts";
import { portConflict } from "../ports.ts";
import { runtimesKnowing } from "../scavenge.ts";
import { cniIdFor, containerDirs, type Host, networkOptions } from "../host.ts";
import { readOr } from "./_fs.ts";
import { launch } from "./conmon.ts";
import { planContainer, portMappings } from "./plan.ts";
import { prepareHostPaths, readLocalhostSeccomp, rootSource, withResolvedUser } from "./prepare.ts";
import { locText, selfOwner } from "./record.ts";
import { setUpOwnSandbox } from "./sandbox.ts";
import { rootlessPlan } from "./rootless.ts";
import { rollback } from "./teardown.ts";
import { chooseId, idHeldByAnother } from "./rename.ts";
import type {
  ContainerPlan,
  ContainerRecord,
  CreateOptions,
  ExtraNetwork,
  RootSource,
} from "./types.ts";

/**
 * Creates the container (not started). On any failure everything made is
 * undone. A FieldError raised under it (its path is the container's) becomes
 * a SpecError at the place the request's source (its front end's locator)
 * gives that path.
 */
export function createContainer(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<ContainerRecord> {
  return locatingFields(loaded.source, () => createPodMember(host, loaded, options));
}

/**
 * createContainer for a pod's own create, which locates a FieldError itself:
 * a pod container's field paths are the pod's (its hostPath volumes are).
 */
export function createPodMember(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<ContainerRecord> {
  return cancellable(() => createContainerNow(host, loaded, options));
}

/** What a create read and decided before it makes anything. */
interface CreateInputs {
  /** The spec with its user names resolved. */
  loaded: LoadedContainer;
  source: RootSource;
  plan: ContainerPlan;
  conflist?: NetConfList;
  extra: ExtraNetwork[];
  /** The nat table (iptables-save), when the container publishes ports. */
  nat: string;
}

type Resources = ContainerRecord["resources"];

async function createContainerNow(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<ContainerRecord> {
  trace("create: begin");
  // The runtime's cgroup attach, 10-30 ms from now, then waits little (see
  // primeAttach); a deferred launch primes at its start instead.
  if (!options.deferLaunch) void primeAttach(host.cgroups);
  const inputs = await gatherInputs(host, loaded, options);
  // Everything this create is going to make. The reservation stores it all
  // (synced) before any of it exists, so an rkl that dies midway leaves a
  // record naming every part, and teardown takes a missing part as removed:
  // refuseLeftovers() has just found none of these paths, and the name is
  // ours from then on. In memory, `resources` says what has been started
  // (this process's own rollback undoes just that); a part found not to be
  // ours is set false there, and every save stores the plan with those
  // changes on top. One synced write instead of one per step.
  const ownSandbox = !options.hostNetwork && !options.sandbox && !options.joinNetwork;
  const planned: Resources = {
    dir: true,
    overlay: true,
    subPaths: inputs.plan.subPaths.length > 0 || undefined,
    netns: ownSandbox || undefined,
    cni: ownSandbox || undefined,
    runtime: true,
  };
  const rec = await reserve(host, inputs, options, planned);
  trace("create: record reserved");
  const save = () => {
    host.store.put("containers", { ...rec, resources: { ...planned, ...rec.resources } });
    checkCancelled();
  };
  try {
    await makeParts(host, rec, inputs, options, { planned, save });
    rec.owner = undefined; // made: no longer anyone's half-done work
    // A run saves it once, started; until then it stays "creating", ours.
    if (!options.thenStart) save();
    else checkCancelled();
    return rec;
  } catch (e) {
    await rollback(host, rec, e);
    throw e;
  }
}

/** Reads and checks every input, and plans the container; nothing is made yet. */
async function gatherInputs(
  host: Host,
  loaded: LoadedContainer,
  options: CreateOptions,
): Promise<CreateInputs> {
  // Host ports other roots and other forwarders hold (the nat table), read
  // while the create is planned: an iptables-save of 2-3 ms, off the path.
  const natRead = !options.hostNetwork && !options.sandbox && options.network &&
      portMappings(loaded.spec.ports).length > 0
    ? natTable(host.cmd)
    : undefined;
  const source = await rootSource(host, loaded);
  const bundle = source.defaults;
  prepareHostPaths(host, loaded);
  loaded = withResolvedUser(host, loaded, source);
  const sandbox = options.sandbox;
  const plan = planContainer(loaded, {
    host,
    id: sandbox ? undefined : chooseId(host, loaded.spec.name),
    network: options.hostNetwork || options.joinNetwork ? null : options.network,
    hostNetwork: options.hostNetwork,
    joinNetwork: options.joinNetwork,
    bundle,
    sandbox,
    localhostSeccomp: readLocalhostSeccomp(host, loaded),
  });
  if (host.rootless) {
    rootlessPlan({ ...host, rootless: host.rootless }, loaded, {
      plan,
      strict: options.strictLimits,
    });
  }
  if (options.logPath) plan.dirs.log = options.logPath;
  const netOptions = networkOptions(host);
  const conflist = plan.network ? await loadNetwork(plan.network, netOptions) : undefined;
  const extra: ExtraNetwork[] = [];
  const extraNames = sandbox || options.hostNetwork || options.joinNetwork
    ? []
    : options.extraNetworks ?? [];
  for (const [k, n] of extraNames.entries()) {
    extra.push({ name: n, ifName: `eth${k + 1}`, conflist: await loadNetwork(n, netOptions) });
  }
  const nat = plan.portMappings.length > 0 ? await (natRead ?? natTable(host.cmd)) : "";
  return { loaded, source, plan, conflist, extra, nat };
}

/**
 * Under the store lock: refuses a name in use (by a record, or by leftovers
 * on the host) and ports taken, then stores the record as "creating" with
 * every planned part. Returns it with nothing yet marked as made.
 */
async function reserve(
  host: Host,
  inputs: CreateInputs,
  options: CreateOptions,
  planned: Resources,
): Promise<ContainerRecord> {
  const { loaded, plan } = inputs;
  return await host.store.withLock(() => {
    if (host.store.get("containers", plan.name)) {
      if (options.sandbox) {
        throw new ConflictError(
          `Cannot create container ${JSON.stringify(plan.name)}: a record with that name exists`,
        );
      }
      throw new ConflictError(
        `${locText(loaded, ["name"])}: Cannot create container: name ${
          JSON.stringify(plan.name)
        } is already in use`,
      );
    }
    if (plan.id === plan.name ? idHeldByAnother(host, plan.id) : idHeld(host, plan.id)) {
      // A rename made since the plan took the name as its id.
      throw new ConflictError(
        `Cannot create container ${
          JSON.stringify(plan.name)
        }: another container was renamed from that name meanwhile; run the command again`,
      );
    }
    refuseLeftovers(host, plan.name, "container", plan.id);
    checkPorts(host, loaded, plan.portMappings, inputs.nat);
    const r = newRecord(host, inputs, options, planned);
    // Named volumes (`run -v NAME:/dir`): a missing one is made, as docker makes it, here under
    // the lock where removals check what names them; the record names those it made, for a
    // rollback to take them back.
    const volumes = [...new Set(loaded.spec.mounts.flatMap((m) => m.namedVolume ?? []))];
    const populate = loaded.spec.mounts.flatMap((m) => {
      const volume = m.populate ? volumeOfDataDir(host, m.source) : undefined;
      return volume ? [{ volume, destination: m.destination }] : [];
    });
    if (populate.length > 0) r.populate = populate;
    if (volumes.length > 0) {
      r.volumes = volumes;
      const anonymous = new Set(
        loaded.spec.mounts.flatMap((m) => m.anonymous && m.namedVolume ? [m.namedVolume] : []),
      );
      const made: string[] = [];
      try {
        for (const v of volumes) {
          if (ensureVolume(host, v, {}, { anonymous: anonymous.has(v) })) made.push(v);
        }
      } catch (e) {
        // One could not be made (its dir taken by a file): none of this create's stays.
        removeVolumesIfUnused(host, made);
        throw e;
      }
      if (made.length > 0) r.madeVolumes = made;
      if (anonymous.size > 0) r.anonymousVolumes = [...anonymous];
    }
    host.store.put("containers", r);
    return Promise.resolve({ ...r, resources: {} });
  });
}

/** The record of a container about to be made, status "creating", owned by this process. */
function newRecord(
  host: Host,
  inputs: CreateInputs,
  options: CreateOptions,
  planned: Resources,
): ContainerRecord {
  const { loaded, source, plan, conflist, extra } = inputs;
  const sandbox = options.sandbox;
  return {
    schemaVersion: 1,
    kind: "container",
    name: plan.name,
    id: plan.id,
    status: "creating",
    specFile: loaded.source.file,
    image: loaded.spec.image,
    imageId: source.imageId,
    lowerDirs: source.imageId ? source.lowers : undefined,
    createdAt: host.now().toISOString(),
    runtime: { name: host.runtime.name, binary: host.runtime.binary, root: host.runtime.root },
    cgroupPath: plan.cgroupPath,
    limits: {
      cpuQuota: plan.config.linux.resources.cpu?.quota,
      cpuPeriod: plan.config.linux.resources.cpu?.period,
      cpuShares: plan.config.linux.resources.cpu?.shares,
      memoryLimit: plan.config.linux.resources.memory?.limit,
    },
    network: conflist
      ? {
        name: plan.network!,
        cniId: cniIdFor(host.paths, "c", plan.id),
        netns: plan.dirs.netns,
        conflist,
        portMappings: plan.portMappings,
      }
      : undefined,
    labels: sandbox?.labels ?? loaded.spec.labels,
    pod: sandbox?.pod,
    extraNetworks: extra.length > 0 ? extra : undefined,
    hostNetwork: options.hostNetwork || undefined,
    netnsOf: options.joinNetwork?.container,
    terminal: plan.config.process.terminal || undefined,
    stdin: loaded.spec.stdin ? (loaded.spec.stdinOnce ? "once" : "open") : undefined,
    stopSignal: loaded.spec.stopSignal,
    hooks: storedHooks(loaded.spec.lifecycle, loaded.spec.ports, loaded.spec.execHooks),
    healthcheck: loaded.spec.healthcheck,
    source: options.source,
    resources: planned,
    subPaths: plan.subPaths.length > 0 ? plan.subPaths : undefined,
    dirs: plan.dirs,
    owner: selfOwner(host),
    epoch: host.epoch,
  };
}

/**
 * Makes the parts in order, each marked in `rec.resources` before it is
 * started: dirs, overlay, subPaths, the network sandbox and /etc files,
 * config.json, then conmon and the runtime's create.
 */
async function makeParts(
  host: Host,
  rec: ContainerRecord,
  inputs: CreateInputs,
  options: CreateOptions,
  steps: { planned: Resources; save: () => void },
): Promise<void> {
  const { plan } = inputs;
  const d = plan.dirs;
  // Only an image's layers (their dirs kept in the record) can be mounted later.
  const deferred = options.deferLaunch === true && !options.thenStart &&
    inputs.source.imageId !== undefined && inputs.source.lowers.length > 0;
  makeDirs(host, rec, steps.planned, steps.save);
  if (!deferred) {
    rec.resources.overlay = true;
    checkCancelled();
    mountOverlay(host.sys, {
      lower: inputs.source.lowers,
      upper: d.upper,
      work: d.work,
      merged: d.rootfs,
    });
    trace("create: overlay mounted");
    if (rec.populate) await populateVolumes(host, rec);
    if (plan.subPaths.length > 0) {
      rec.resources.subPaths = true; // rec.subPaths: in the reservation
      checkCancelled();
      stageSubPaths(host, rec, inputs.loaded);
    }
    trace("create: dirs + overlay");
  }
  if (options.hostNetwork) {
    for (const f of ["hosts", "hostname", "resolv.conf"]) {
      host.fs.writeTextFile(`${d.etc}/${f}`, readOr(host.fs, `/etc/${f}`));
    }
  } else if (!options.sandbox && !options.joinNetwork) {
    await setUpOwnSandbox(host, rec, plan, inputs.conflist, steps.save, options.fixed);
  }
  // The store's atomic write (tmp, rename), not synced: nothing reads a
  // container's config.json after a reboot (a container from an earlier boot
  // is exited and never started in place), and a killed rkl leaves it whole or absent.
  writeAtomic(d.config, JSON.stringify(plan.config, null, 2) + "\n", host.fs, {
    durable: false,
  });
  trace("create: config written");
  if (deferred) {
    // The rest is the start's (launchDeferred): nothing runs until then.
    rec.status = "created";
    rec.deferred = true;
    return;
  }
  rec.resources.runtime = true;
  checkCancelled();
  await launch(host, rec);
  trace("create: conmon + runtime create");
}

/**
 * What a deferred create left for the start: the overlay of the recorded
 * image layers, the subPaths, conmon and the runtime's create. The record is
 * saved first without `deferred` and with this process as its owner, so a
 * teardown from then on looks for every part and lets a conmon that may
 * still be creating finish first; the owner goes once the launch has ended.
 */
export async function launchDeferred(host: Host, rec: ContainerRecord): Promise<void> {
  const d = rec.dirs;
  const lowers = rec.lowerDirs ?? [];
  // The record is read back from disk: its layers must be this image store's.
  const root = host.images?.store.root;
  if (
    !root || lowers.length === 0 ||
    lowers.some((l) => !l.startsWith(`${root}/`) || l.split("/").includes(".."))
  ) {
    throw new RklError(
      "EIMAGE",
      `Cannot start container ${JSON.stringify(rec.name)}: its record's lowerDirs are not ` +
        `layers of the image store`,
    );
  }
  // The runtime's cgroup attach then waits little (see primeAttach).
  void primeAttach(host.cgroups);
  rec.deferred = undefined;
  rec.owner = selfOwner(host);
  host.store.put("containers", rec);
  try {
    mountOverlay(host.sys, { lower: lowers, upper: d.upper, work: d.work, merged: d.rootfs });
    trace("start: overlay mounted");
    if (rec.populate) await populateVolumes(host, rec);
    stageSubPaths(host, rec);
    await launch(host, rec);
    trace("start: conmon + runtime create");
  } finally {
    rec.owner = undefined;
  }
}

/** The container's own dir, claimed exclusively, and the dirs below and beside it. */
function makeDirs(host: Host, rec: ContainerRecord, planned: Resources, save: () => void): void {
  const d = rec.dirs;
  rec.resources.dir = true;
  checkCancelled(); // every step starts here: a good place to stop
  // Root-only: no host user may walk into a container's files or logs.
  privateDir(`${host.paths.root}/containers`, 0o700, host.fs);
  privateDir(host.paths.logDir, 0o700, host.fs);
  privateDir(`${host.paths.runRoot}/conmon`, 0o700, host.fs);
  // Claimed exclusively: if it exists now, it is someone else's, and the
  // rollback must not remove it.
  try {
    host.fs.mkdir(d.dir, { mode: 0o711 });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      // Someone else's: nothing of this create may be undone in or under it.
      for (const k of Object.keys(planned) as (keyof typeof planned)[]) rec.resources[k] = false;
      save();
    } else rec.resources.dir = false;
    throw e instanceof Deno.errors.AlreadyExists
      ? new ConflictError(`Cannot create container ${JSON.stringify(rec.name)}: ${d.dir} exists`)
      : e;
  }
  for (
    const p of [
      d.upper,
      d.work,
      d.rootfs,
      d.etc,
      d.exitDir,
      d.socketDir,
      host.paths.logDir,
      d.log.slice(0, d.log.lastIndexOf("/")),
    ]
  ) {
    host.fs.mkdir(p, { recursive: true, mode: 0o711 });
  }
}

/** (Re)stages every subPath of the container; errors name the volumeMount. */
export function stageSubPaths(host: Host, rec: ContainerRecord, loaded?: LoadedContainer): void {
  if (!rec.subPaths || rec.subPaths.length === 0) return;
  privateDir(rec.dirs.subPaths, 0o700, host.fs);
  for (const sp of rec.subPaths) {
    try {
      stageSubPath(host.sys, sp, host.fs);
    } catch (e) {
      const where = loaded ? `${locText(loaded, ["volumeMounts", sp.mount, "subPath"])}: ` : "";
      throw new RklError(
        "ESUBPATH",
        `${where}Cannot mount subPath of container ${JSON.stringify(rec.name)}: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
  }
}

/**
 * Refuses a name whose resources are still on the host though no record
 * owns them (a record deleted by hand, a crash before `rkl gc` ran): making
 * the new object would share, and its rollback destroy, the old one's.
 */
export function refuseLeftovers(
  host: Host,
  name: string,
  what: "container" | "pod",
  id = name,
): void {
  const paths = what === "container"
    ? (() => {
      const d = containerDirs(host.paths, id);
      return [d.dir, d.conmonDir, d.netns];
    })()
    : [
      `${host.paths.root}/pods/${name}`,
      `${host.paths.runRoot}/netns/p_${name}`,
      `${host.paths.runRoot}/ns/p_${name}`,
    ];
  const known = what === "container" ? runtimesKnowing(host, id)[0] : undefined;
  const found = paths.find((p) => pathExists(p, host.fs)) ??
    (known ? `${known[1]}/${id}` : undefined);
  if (found) {
    throw new ConflictError(
      `Cannot create ${what} ${
        JSON.stringify(name)
      }: ${found} is left from an earlier ${what} of that name whose record is gone`,
      { hint: "rkl gc removes what no record owns (rkl gc --dry-run shows it first)" },
    );
  }
}

/** True when a container record has `id` as its id. */
function idHeld(host: Host, id: string): boolean {
  return host.store.list<ContainerRecord>("containers").some((r) => r.id === id);
}

/** hostPorts must be free: neither published by another rkl workload nor bound on the host. */
function checkPorts(
  host: Host,
  loaded: LoadedContainer,
  mappings: PortMapping[],
  nat: string,
): void {
  const c = portConflict(host, mappings, { nat });
  if (!c) return;
  const i = loaded.spec.ports.findIndex((p) => p.hostPort === c.mapping.hostPort);
  throw new ConflictError(
    `${
      locText(loaded, ["ports", i, "hostPort"])
    }: Cannot publish port ${c.mapping.hostPort}/${c.mapping.protocol}: ${c.reason}`,
  );
}
