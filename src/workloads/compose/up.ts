/**
 * `compose up`: config and secret files read, networks and volumes made,
 * orphans dealt with, then each service in dependency order, replica by
 * replica (recreated when its config hash changed).
 */
import { NotFoundError, RklError, SpecError } from "../../errors.ts";
import { readExitCode } from "../../oci/conmon.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import { assertBelow, privateDir } from "../../sys/fsutil.ts";
import { FileReadError, MAX_INPUT_BYTES, readBounded } from "../../sys/readfile.ts";
import {
  type ContainerRecord,
  createContainer,
  type JoinNetwork,
  refresh,
  removeContainer,
  startContainer,
} from "../container.ts";
import { ensureHealthMonitor, waitForHealth } from "../health.ts";
import type { Host } from "../host.ts";
import { writeProjectHosts } from "./hosts.ts";
import {
  type ComposeRecord,
  containerName,
  LABEL_HASH,
  LABEL_NETNS_OF,
  LABEL_NUMBER,
  LABEL_SERVICE,
  projectContainers,
  projectDir,
  projectVolumeDir,
  serviceHash,
} from "./names.ts";
import { ensureNetworks, fixedAddresses, networkToJoin } from "./networks.ts";
import { rootlessComposeChecks, rootlessProjectUp } from "../rootless_compose.ts";
import { configPath, replicaPorts, replicaSpec } from "./replica.ts";

/**
 * The bytes of every config and secret, by `KIND/NAME`: a `file:` is read
 * here (a regular file of at most 1 MiB, the size of a Kubernetes ConfigMap
 * or Secret); anything else is a SpecError naming the file (exit 2).
 */
export function configContents(project: ComposeProject): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const kind of ["configs", "secrets"] as const) {
    for (const c of project[kind]) {
      if (!c.file) {
        out.set(`${kind}/${c.name}`, new TextEncoder().encode(c.content ?? ""));
        continue;
      }
      try {
        out.set(`${kind}/${c.name}`, readBounded(c.file, { max: MAX_INPUT_BYTES }));
      } catch (e) {
        if (!(e instanceof FileReadError)) throw e;
        throw new SpecError(
          { file: project.files[0] ?? project.dir, path: `${kind}.${c.name}.file` },
          e.message,
          { cause: e },
        );
      }
    }
  }
  return out;
}

export interface UpOptions {
  services?: string[];
  removeOrphans?: boolean;
  warn(message: string): void;
  log?(message: string): void;
  /** Create the containers but start none (`compose create`). */
  noStart?: boolean;
}

/** The project's record as stored, or a new one (not saved). */
export function projectRecord(host: Host, project: ComposeProject): ComposeRecord {
  return host.store.get<ComposeRecord>("compose", project.name) ?? {
    schemaVersion: 1,
    kind: "compose",
    name: project.name,
    dir: project.dir,
    files: project.files,
    networks: {},
    volumes: [],
    services: {},
    createdAt: host.now().toISOString(),
  };
}

/** Brings the project up: networks, volumes, then services in dependency order. */
export async function composeUp(
  host: Host,
  project: ComposeProject,
  options: UpOptions,
): Promise<ComposeRecord> {
  // Config and secret files are read before anything is made: each a regular file of at most 1 MiB.
  const contents = configContents(project);
  checkExternalVolumes(host, project);
  if (host.rootless) rootlessComposeChecks(host.rootless, project);
  const rec = projectRecord(host, project);
  rec.files = project.files;
  host.store.put("compose", rec);
  // Rootless: one netns for the whole project instead of its bridges (rootless_compose.ts).
  const joinProject = host.rootless
    ? await rootlessProjectUp(host, host.rootless, project)
    : undefined;
  if (!joinProject) await ensureNetworks(host, project, rec);
  writeProjectFiles(host, project, rec, contents);
  host.store.put("compose", rec);
  await orphans(host, project, options);
  const wanted = options.services?.length
    ? withDependencies(project, options.services)
    : project.services;
  for (const svc of wanted) await upService(host, { project, rec, svc, joinProject }, options);
  writeProjectHosts(host, project.name);
  return rec;
}

/**
 * The project's external volumes exist (docker compose's check): up never
 * makes one. Called before anything of the project is made.
 */
export function checkExternalVolumes(host: Host, project: ComposeProject): void {
  for (const v of project.volumes) {
    if (!v.external || v.volumeName === undefined) continue;
    const dir = projectVolumeDir(host, project.name, v);
    let ok = false;
    try {
      ok = host.fs.lstat(dir).isDirectory && host.fs.lstat(`${dir}/_data`).isDirectory;
    } catch { /* missing */ }
    if (!ok) {
      throw new SpecError(
        { ...(v.loc ?? { file: project.files[0] ?? "compose" }), path: `volumes.${v.name}` },
        `external volume ${JSON.stringify(v.volumeName)} not found`,
        { hint: `make it first: rkl volume create ${v.volumeName}` },
      );
    }
  }
}

/** Named volumes' dirs, then the project's configs and secrets, and the copies services own. */
export function writeProjectFiles(
  host: Host,
  project: ComposeProject,
  rec: ComposeRecord,
  contents: Map<string, Uint8Array>,
): void {
  const named = project.volumes.filter((v) => !v.external && !v.device && !v.tmpfs).map((v) => {
    const vdir = projectVolumeDir(host, project.name, v);
    assertBelow(`${host.paths.root}/volumes`, vdir, `volume ${v.name}`, host.fs);
    return { name: v.name, own: v.volumeName, vdir };
  });
  // The record lists a volume before its directory exists: should the save
  // fail, or rkl die, after the mkdir, `down -v` still knows what to remove.
  const unlisted = named.filter((v) => v.own === undefined && !rec.volumes.includes(v.name));
  const ownUnlisted = named.flatMap((v) =>
    v.own !== undefined && !(rec.namedVolumes ?? []).includes(v.own) ? [v.own] : []
  );
  if (unlisted.length > 0 || ownUnlisted.length > 0) {
    rec.volumes.push(...unlisted.map((v) => v.name));
    if (ownUnlisted.length > 0) rec.namedVolumes = [...(rec.namedVolumes ?? []), ...ownUnlisted];
    host.store.put("compose", rec);
  }
  for (const v of named) {
    privateDir(`${host.paths.root}/volumes`, 0o700, host.fs);
    host.fs.mkdir(`${v.vdir}/_data`, { recursive: true });
  }
  const pdir = projectDir(host, project.name);
  for (const kind of ["configs", "secrets"] as const) {
    for (const c of project[kind]) {
      const path = `${pdir}/${kind}/${c.name}`;
      assertBelow(pdir, path, `${kind.slice(0, -1)} ${c.name}`, host.fs);
      privateDir(`${pdir}/${kind}`, 0o700, host.fs);
      host.fs.writeFile(path, contents.get(`${kind}/${c.name}`)!);
      host.fs.chmod(path, kind === "secrets" ? 0o400 : 0o444);
    }
  }
  // Copies with the owner and mode a service asked for (`uid`, `gid`, `mode`).
  for (const svc of project.services) {
    for (const m of svc.mounts) {
      if (!m.owner || (m.kind !== "config" && m.kind !== "secret")) continue;
      const path = configPath(host, project.name, m);
      assertBelow(pdir, path, `${m.kind} ${m.source}`, host.fs);
      privateDir(`${pdir}/${m.kind}s/.owned`, 0o700, host.fs);
      host.fs.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
      host.fs.writeFile(path, contents.get(`${m.kind}s/${m.source}`)!);
      host.fs.chown(path, m.owner.uid, m.owner.gid);
      host.fs.chmod(path, m.owner.mode);
    }
  }
}

/** Orphans: services of this project no longer in the files (removed, or warned about). */
async function orphans(host: Host, project: ComposeProject, options: UpOptions): Promise<void> {
  const known = new Set(project.services.map((s) => s.name));
  for (const c of projectContainers(host, project.name)) {
    if (known.has(c.labels[LABEL_SERVICE])) continue;
    if (options.removeOrphans) await removeContainer(host, c.name, { force: true });
    else {options.warn(
        `container ${c.name} belongs to service ${
          JSON.stringify(c.labels[LABEL_SERVICE])
        }, which is not in the files (use --remove-orphans)`,
      );}
  }
}

interface ServiceUp {
  project: ComposeProject;
  rec: ComposeRecord;
  svc: ComposeService;
  /** Rootless: the project's one network namespace, which each replica joins. */
  joinProject?: (svc: ComposeService, n: number) => JoinNetwork;
}

/** One service: its dependencies waited for, stale replicas removed, each replica brought up. */
async function upService(host: Host, s: ServiceUp, options: UpOptions): Promise<void> {
  const { project, rec, svc } = s;
  if (!options.noStart) {
    for (const d of svc.dependsOn) await waitCondition(host, project, d.service, d.condition);
  }
  const hash = await serviceHash(project, svc);
  const existing = projectContainers(host, project.name).filter((c) =>
    c.labels[LABEL_SERVICE] === svc.name
  );
  // A replica in another container's network namespace goes with that container.
  const joined = networkToJoin(host, project, svc);
  const stale = existing.filter((c) =>
    c.labels[LABEL_HASH] !== hash || Number(c.labels[LABEL_NUMBER]) > svc.replicas ||
    (joined.id !== undefined && c.labels[LABEL_NETNS_OF] !== joined.id)
  );
  for (const c of stale) {
    options.log?.(`recreating ${c.name}`);
    await removeContainer(host, c.name, { force: true });
  }
  for (let n = 1; n <= svc.replicas; n++) {
    await upReplica(host, s, { n, hash, joined }, options);
  }
  rec.services[svc.name] = hash;
  host.store.put("compose", rec);
}

/** Replica `n`: left running, started when only created, else (re)created and started. */
async function upReplica(
  host: Host,
  s: ServiceUp,
  r: { n: number; hash: string; joined: ReturnType<typeof networkToJoin> },
  options: UpOptions,
): Promise<void> {
  const { project, rec, svc } = s;
  const { n, hash, joined } = r;
  const name = containerName(project.name, svc, n);
  const have = host.store.get<ContainerRecord>("containers", name);
  if (have && have.labels[LABEL_HASH] === hash) {
    const live = await refresh(host, have);
    if (live.status === "created" && !options.noStart) await startContainer(host, name);
    else if (live.status === "exited") {
      // compose up starts stopped containers again; ours are recreated (a new create is cheap and clean).
      await removeContainer(host, name, { force: true });
    } else return;
    if (live.status === "created") return;
  }
  const spec = replicaSpec(host, project, svc, name, n, hash, await replicaPorts(host, svc));
  for (const m of spec.spec.mounts) {
    if (m.source.includes("/anon/")) host.fs.mkdir(m.source, { recursive: true });
  }
  const rootlessJoin = s.joinProject && !svc.networkMode ? s.joinProject(svc, n) : undefined;
  // Rootless: the project's slirp4netns publishes the ports; names are in its hosts file.
  if (rootlessJoin) spec.spec.ports = [];
  for (const net of rootlessJoin ? [] : svc.networks) {
    if (net.aliases.length > 0) {
      spec.spec.labels[`org.rkl.compose.aliases.${rec.networks[net.name].rklName}`] = net
        .aliases.join(",");
    }
  }
  if (joined.id !== undefined) spec.spec.labels[LABEL_NETNS_OF] = joined.id;
  const nets = svc.networkMode || rootlessJoin
    ? []
    : svc.networks.map((n) => rec.networks[n.name].rklName);
  const fixed = rootlessJoin ? {} : await fixedAddresses(host, svc, rec);
  const c = await createContainer(host, spec, {
    network: nets[0] ?? null,
    extraNetworks: nets.slice(1),
    hostNetwork: svc.networkMode === "host" || joined.hostNetwork,
    joinNetwork: rootlessJoin ?? joined.join,
    fixed,
  });
  if (options.noStart) {
    options.log?.(`created ${c.name}`);
    writeProjectHosts(host, project.name);
    return;
  }
  try {
    await startContainer(host, c.name);
  } catch (e) {
    await removeContainer(host, c.name, { force: true }).catch(() => {});
    throw e;
  }
  options.log?.(`started ${c.name}`);
  writeProjectHosts(host, project.name);
}

function withDependencies(project: ComposeProject, names: string[]): ComposeService[] {
  const want = new Set<string>();
  const byName = new Map(project.services.map((s) => [s.name, s]));
  const add = (n: string) => {
    const s = byName.get(n);
    if (!s) {
      throw new NotFoundError(
        `Cannot find service ${JSON.stringify(n)} in project ${JSON.stringify(project.name)}`,
      );
    }
    if (want.has(n)) return;
    want.add(n);
    for (const d of s.dependsOn) add(d.service);
  };
  names.forEach(add);
  return project.services.filter((s) => want.has(s.name));
}

/** Waits until a dependency meets its depends_on condition, or fails `up`. */
async function waitCondition(
  host: Host,
  project: ComposeProject,
  service: string,
  condition: string,
): Promise<void> {
  const members = projectContainers(host, project.name).filter((c) =>
    c.labels[LABEL_SERVICE] === service
  );
  if (condition === "service_started") return;
  const svc = project.services.find((s) => s.name === service)!;
  for (const c of members) {
    if (condition === "service_completed_successfully") {
      for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
        const code = readExitCode(c.dirs.exitDir, c.id);
        if (code !== undefined) {
          if (code !== 0) {
            throw new RklError(
              "EDEPEND",
              `Cannot start dependents of ${
                JSON.stringify(service)
              }: ${c.name} exited with code ${code}`,
            );
          }
          break;
        }
        await host.sleep(delay);
      }
    } else if (condition === "service_healthy") {
      if (!svc.healthcheck) {
        throw new RklError(
          "EDEPEND",
          `Cannot wait for ${JSON.stringify(service)} to be healthy: it has no healthcheck`,
        );
      }
      ensureHealthMonitor(host);
      if (await waitForHealth(host, c) !== "healthy") {
        throw new RklError(
          "EUNHEALTHY",
          `Cannot start dependents of ${
            JSON.stringify(service)
          }: ${c.name} is unhealthy (healthcheck failed ${svc.healthcheck.retries} times)`,
        );
      }
    }
  }
}
