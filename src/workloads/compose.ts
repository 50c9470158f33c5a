/**
 * Compose is a translator: every service replica becomes an rkl container
 * (labelled with project and service), every compose network an rkl CNI
 * network with its own conflist, bridge and subnet, every named volume a
 * directory under the store. Up, down and the rest then run on the same
 * container code as `rkl container`.
 *
 * Name resolution uses managed /etc/hosts files: each container's hosts file
 * (bind-mounted from outside its rootfs) lists every project container, by
 * service name, container name and (on a shared network) aliases, with its
 * address on a shared network when there is one, and is
 * rewritten in place whenever a container of the project comes or goes. No
 * resolver process has to stay up, nothing listens on the host, and a
 * recreated service is found again as soon as `up` finishes. The cost: names
 * are only updated by rkl commands (as with compose, that is when they change).
 */
import { ConflictError, NotFoundError, RklError, SpecError } from "../errors.ts";
import { bridgeConflist, conflistPath, loadNetwork } from "../net/network.ts";
import {
  conflistSubnets,
  kernelRoutes,
  natTable,
  releaseSubnetClaims,
  slash24s,
  writeBridgeNetwork,
} from "../net/hostnet.ts";
import { readExitCode } from "../oci/conmon.ts";
import { COMPOSE_NAME, type ComposeProject, type ComposeService } from "../spec/compose.ts";
import { assertBelow, privateDir, removeBelow } from "../sys/fsutil.ts";
import { FileReadError, MAX_INPUT_BYTES, readBounded } from "../sys/readfile.ts";
import type { LoadedContainer, ResolvedMount } from "../spec/container.ts";
import type { StoredRecord } from "../store/store.ts";
import {
  type ContainerRecord,
  createContainer,
  type JoinNetwork,
  refresh,
  removeContainer,
  removeContainers,
  startContainer,
  stopContainer,
} from "./container.ts";
import { hostsFile } from "./etc_files.ts";
import { ensureHealthMonitor, waitForHealth } from "./health.ts";
import { type Host, networkOptions, type RklPaths } from "./host.ts";
import { RESTART_LABEL } from "../spec/names.ts";
import { which } from "../oci/runtime.ts";
import { portConflict } from "./ports.ts";

export const LABEL_PROJECT = "com.docker.compose.project";
export const LABEL_SERVICE = "com.docker.compose.service";
export const LABEL_NUMBER = "com.docker.compose.container-number";
export const LABEL_HASH = "org.rkl.compose.config-hash";
export const LABEL_CONTAINER_NAME = "org.rkl.compose.container-name";

export interface ComposeRecord extends StoredRecord {
  kind: "compose";
  dir: string;
  files: string[];
  /** Compose network → rkl network (conflist name, also the bridge). */
  networks: Record<string, { rklName: string; subnet: string; external: boolean }>;
  volumes: string[];
  /** Service → config hash of what is running. */
  services: Record<string, string>;
  /** Older records kept the last healthcheck result here; now RUN_ROOT/health has it. */
  health?: Record<string, string>;
  createdAt: string;
}

export function projectDir(host: Host, project: string): string {
  return `${host.paths.root}/compose/${project}`;
}

function volumeDir(host: Host, project: string, volume: string): string {
  return `${host.paths.root}/volumes/${project}_${volume}`;
}

/** A DNS-1123 label from a compose name (`my_app-web-1`). */
export function containerName(project: string, svc: ComposeService, n: number): string {
  const raw = svc.containerName ?? `${project}-${svc.name}-${n}`;
  return raw.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(
    /-+$/,
    "",
  );
}

async function sha(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The service's config hash: recreate on up only when this changes. */
export function serviceHash(project: ComposeProject, svc: ComposeService): Promise<string> {
  // Where things are written (`loc`) is not configuration: moving a line recreates nothing.
  return sha(JSON.stringify(
    { svc, configs: project.configs, secrets: project.secrets },
    (k, v) => k === "loc" ? undefined : v,
  ));
}

/** Members of a project, from the container store. */
export function projectContainers(host: Host, project: string): ContainerRecord[] {
  return host.store.list<ContainerRecord>("containers").filter((c) =>
    c.labels[LABEL_PROJECT] === project
  );
}

/** Subnets routed on the host (any bridge, any rkl root, anything else), from /proc/net/route. */
export function routedSubnets(routeTable: string): Set<string> {
  return new Set(kernelRoutes(routeTable).map((r) => r.subnet));
}

/**
 * The bridge (and conflist) name of a project's network. A root other than
 * the default one puts its tag in the hash: the same project name in two
 * roots gets two bridges.
 */
export async function projectNetworkName(
  paths: Pick<RklPaths, "tag">,
  project: string,
  network: string,
): Promise<string> {
  return `cmp-${(await sha(`${paths.tag ?? ""}${project}/${network}`)).slice(0, 10)}`;
}

/**
 * Writes the project's networks (conflists) that do not exist yet, each with
 * a subnet nothing on the host uses: chosen under the host-wide lock against
 * the kernel's routes and addresses and every root's networks (hostnet.ts).
 */
async function ensureNetworks(
  host: Host,
  project: ComposeProject,
  rec: ComposeRecord,
): Promise<void> {
  for (const n of project.networks) {
    if (rec.networks[n.name]) continue;
    if (n.external) {
      rec.networks[n.name] = { rklName: n.name, subnet: "", external: true };
      continue;
    }
    const rklName = await projectNetworkName(host.paths, project.name, n.name);
    const path = conflistPath(host.paths.cniConfDir, rklName);
    const list = await writeBridgeNetwork({
      path,
      bridge: rklName,
      subnet: n.subnet,
      candidates: slash24s("10.90"),
      make: (subnet) =>
        bridgeConflist(rklName, {
          subnet,
          ipamDataDir: `${host.paths.root}/cni/networks`,
          staticAddresses: true,
        }),
    }, networkOptions(host).hostNet!);
    const subnet = conflistSubnets(list)[0] ?? n.subnet ?? "";
    rec.networks[n.name] = { rklName, subnet, external: false };
    host.store.put("compose", rec);
  }
}

/** Label listing a service's `links` as SERVICE:ALIAS,… for its /etc/hosts. */
export const LABEL_LINKS = "org.rkl.compose.links";

/** Label naming the container (id@createdAt) whose network namespace a replica joined. */
export const LABEL_NETNS_OF = "org.rkl.compose.netns-of";

/**
 * `network_mode: service:X` (X's first replica) or `container:X` (an rkl
 * container of this root): that container's pinned netns and /etc files.
 * It must be running; a pod's member or a container in the host's
 * namespace is refused (or, for the latter, joined as the host's).
 */
function networkToJoin(
  host: Host,
  project: ComposeProject,
  svc: ComposeService,
): { join?: JoinNetwork; id?: string; hostNetwork?: boolean } {
  if (svc.networkMode !== "service" && svc.networkMode !== "container") return {};
  const target = svc.networkMode === "service"
    ? containerName(project.name, project.services.find((s) => s.name === svc.networkTarget)!, 1)
    : svc.networkTarget!;
  const what = `network_mode ${svc.networkMode}:${svc.networkTarget} of service ${
    JSON.stringify(svc.name)
  }`;
  const rec = host.store.get<ContainerRecord>("containers", target);
  if (!rec || rec.status !== "running") {
    throw new ConflictError(
      `Cannot join the network of container ${JSON.stringify(target)} (${what}): ${
        rec ? `it is ${rec.status}` : "there is no such container"
      }`,
    );
  }
  if (rec.pod) {
    throw new ConflictError(
      `Cannot join the network of container ${
        JSON.stringify(target)
      } (${what}): it belongs to pod ${
        JSON.stringify(rec.pod)
      }; add the container to that pod instead`,
    );
  }
  // Its id is derived from its name: the creation time tells a recreated one apart.
  const id = `${rec.id}@${rec.createdAt}`;
  if (rec.hostNetwork) return { hostNetwork: true, id };
  let hostname = rec.name;
  try {
    hostname = Deno.readTextFileSync(`${rec.dirs.etc}/hostname`).trim() || rec.name;
  } catch { /* the container's name */ }
  return {
    join: { container: rec.name, netns: rec.dirs.netns, etcDir: rec.dirs.etc, hostname },
    id,
  };
}

/** The host's catatonit, which `init: true` runs in front of the service's process. */
function initBinary(svc: ComposeService): string | undefined {
  if (!svc.init) return undefined;
  const bin = which("catatonit");
  if (!bin) {
    throw new NotFoundError(
      `Cannot run service ${JSON.stringify(svc.name)} with init: true: catatonit is not installed`,
      { hint: "run scripts/setup.sh (Debian package catatonit), or remove init: true" },
    );
  }
  return bin;
}

/**
 * The ports of one replica: a host range mapped to one container port
 * (`"6005-6015:80"`) takes the first port of the range that no workload
 * publishes, no process holds and no nat rule forwards, as docker does.
 */
async function replicaPorts(host: Host, svc: ComposeService): Promise<ComposeService["ports"]> {
  if (!svc.ports.some((p) => p.hostPortEnd !== undefined)) return svc.ports;
  const nat = await natTable(host.cmd);
  const chosen: ComposeService["ports"] = [];
  for (const p of svc.ports) {
    if (p.hostPortEnd === undefined) {
      chosen.push(p);
      continue;
    }
    let pick: number | undefined;
    for (let port = p.hostPort; port <= p.hostPortEnd && pick === undefined; port++) {
      if (chosen.some((c) => c.hostPort === port && c.protocol === p.protocol)) continue;
      const m = { hostPort: port, containerPort: p.containerPort, protocol: p.protocol };
      if (!portConflict(host, [{ ...m, ...(p.hostIP ? { hostIP: p.hostIP } : {}) }], { nat })) {
        pick = port;
      }
    }
    if (pick === undefined) {
      throw new ConflictError(
        `Cannot publish port ${p.containerPort}/${p.protocol} of service ${
          JSON.stringify(svc.name)
        }: every host port of ${p.hostPort}-${p.hostPortEnd} is taken`,
      );
    }
    chosen.push({
      hostIP: p.hostIP,
      hostPort: pick,
      containerPort: p.containerPort,
      protocol: p.protocol,
    });
  }
  return chosen;
}

/** Where a config or secret is kept: one per project, or a copy per owner and mode. */
function configPath(host: Host, project: string, m: ComposeService["mounts"][number]): string {
  const dir = `${projectDir(host, project)}/${m.kind}s`;
  if (!m.owner) return `${dir}/${m.source}`;
  return `${dir}/.owned/${m.owner.uid}.${m.owner.gid}.${m.owner.mode.toString(8)}/${m.source}`;
}

/** The container spec of one replica. */
function replicaSpec(
  host: Host,
  project: ComposeProject,
  svc: ComposeService,
  name: string,
  n: number,
  hash: string,
  ports: ComposeService["ports"] = svc.ports,
): LoadedContainer {
  const mounts: ResolvedMount[] = svc.mounts.map((m, i) => {
    switch (m.kind) {
      case "bind":
        return {
          source: m.source,
          destination: m.target,
          readOnly: m.readOnly,
          kind: "hostPath",
          hostPathType: "",
          // docker compose makes a missing source a directory, and takes whatever exists.
          ...(m.createHostPath ? { createMissingDir: true } : {}),
          loc: m.loc
            ? { ...m.loc, path: `services.${svc.name}.volumes[${i}]` }
            : { file: project.files[0], path: `services.${svc.name}.volumes[${i}]` },
        };
      case "volume": {
        // driver_opts bind: the directory named by device, which must exist (as docker's local driver).
        const device = project.volumes.find((v) => v.name === m.source)?.device;
        return device
          ? {
            source: device,
            destination: m.target,
            readOnly: m.readOnly,
            kind: "hostPath",
            hostPathType: "Directory",
            loc: { file: project.files[0], path: `volumes.${m.source}.driver_opts.device` },
          }
          : {
            source: `${volumeDir(host, project.name, m.source)}/_data`,
            destination: m.target,
            readOnly: m.readOnly,
            kind: "hostPath",
          };
      }
      case "tmpfs":
        return {
          source: "tmpfs",
          destination: m.target,
          readOnly: m.readOnly,
          kind: "tmpfs",
          tmpfsOptions: m.options ?? [],
        };
      case "anonymous":
        return {
          source: `${projectDir(host, project.name)}/anon/${name}-${i}`,
          destination: m.target,
          readOnly: false,
          kind: "hostPath",
        };
      default:
        return {
          source: configPath(host, project.name, m),
          destination: m.target,
          readOnly: true,
          kind: "hostPath",
        };
    }
  });
  const limits: Record<string, string> = {};
  if (svc.cpus) limits.cpu = svc.cpus;
  if (svc.memory) limits.memory = svc.memory;
  const file = project.files[0];
  return {
    spec: {
      name,
      image: svc.image,
      imagePullPolicy: svc.pullPolicy ?? "IfNotPresent", // compose's default: pull when missing
      command: svc.entrypoint,
      args: svc.command,
      env: Object.entries(svc.environment).map(([k, v]) => ({ name: k, value: v })),
      workingDir: svc.workingDir,
      ports: ports.map((p) => ({
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        protocol: p.protocol.toUpperCase() as "TCP" | "UDP",
        ...(p.hostIP ? { hostIP: p.hostIP } : {}),
      })),
      resources: Object.keys(limits).length > 0 ? { limits } : {},
      mounts,
      securityContext: {
        privileged: svc.privileged,
        capabilities: { add: svc.capAdd, drop: svc.capDrop },
        runAsUser: svc.user?.uid,
        runAsGroup: svc.user?.gid ??
          (svc.user?.uid !== undefined && !svc.user.name ? 0 : undefined),
        readOnlyRootFilesystem: svc.readOnly,
        ...(svc.securityOpt.noNewPrivileges ? { allowPrivilegeEscalation: false } : {}),
        ...(svc.securityOpt.seccomp
          ? {
            seccompProfile: svc.securityOpt.seccomp.type === "Localhost"
              ? { type: "Localhost" as const, localhostProfile: svc.securityOpt.seccomp.file }
              : { type: svc.securityOpt.seccomp.type },
          }
          : {}),
      },
      ...(svc.securityOpt.systemPathsUnconfined ? { maskedPaths: [], readonlyPaths: [] } : {}),
      tty: svc.tty,
      init: initBinary(svc),
      ...(svc.hooks.postStart || svc.hooks.preStop
        ? {
          lifecycle: {
            ...(svc.hooks.postStart
              ? { postStart: { exec: { command: svc.hooks.postStart } } }
              : {}),
            ...(svc.hooks.preStop ? { preStop: { exec: { command: svc.hooks.preStop } } } : {}),
          },
        }
        : {}),
      hostname: svc.hostname,
      userNames: svc.user && (svc.user.name || svc.user.group)
        ? { user: svc.user.name, group: svc.user.group, loc: svc.user.loc }
        : undefined,
      stopSignal: svc.stopSignal,
      healthcheck: svc.healthcheck,
      shmSize: svc.shmSize,
      sysctls: svc.sysctls,
      ulimits: svc.ulimits,
      labels: {
        ...svc.labels,
        [LABEL_PROJECT]: project.name,
        [LABEL_SERVICE]: svc.name,
        [LABEL_NUMBER]: String(n),
        [LABEL_HASH]: hash,
        // The name as written, when the record's had to change (container names are DNS labels).
        ...(svc.containerName && svc.containerName !== name
          ? { [LABEL_CONTAINER_NAME]: svc.containerName }
          : {}),
        // For `rkl daemon`, which applies restart policies.
        [RESTART_LABEL]: svc.restart,
        ...(svc.links.length > 0
          ? { [LABEL_LINKS]: svc.links.map((l) => `${l.service}:${l.alias}`).join(",") }
          : {}),
      },
    },
    warnings: [],
    source: { file, at: (path) => ({ file, path: `services.${svc.name}.${path.join(".")}` }) },
  };
}

/** Rewrites every project container's /etc/hosts in place (the files are bind-mounted). */
export function writeProjectHosts(host: Host, project: string): void {
  const members = projectContainers(host, project);
  const ipsOf = (c: ContainerRecord) => {
    const m = new Map<string, string>();
    if (c.network?.ip) m.set(c.network.name, c.network.ip);
    for (const x of c.extraNetworks ?? []) if (x.ip) m.set(x.name, x.ip);
    return m;
  };
  for (const c of members) {
    if (c.hostNetwork) continue; // keeps the host's own /etc/hosts, as docker's host mode does
    const mine = ipsOf(c);
    const extra: { ip: string; names: string[] }[] = [];
    // links: more names for a service, in this container's file only.
    const linked = new Map<string, string[]>();
    for (const l of (c.labels[LABEL_LINKS] ?? "").split(",").filter(Boolean)) {
      const [svc, alias] = l.split(":");
      linked.set(svc, [...(linked.get(svc) ?? []), alias]);
    }
    for (const o of members) {
      if (o.name === c.name) continue;
      const theirs = ipsOf(o);
      // An address on a network both share; else the other's first address
      // (names are project-wide in rkl, traffic between networks is routed by the host).
      const shared = [...theirs].find(([net]) => mine.has(net));
      const [net, ip] = shared ?? [...theirs][0] ?? [];
      if (!ip) continue;
      const aliases = shared
        ? (o.labels[`org.rkl.compose.aliases.${net}`] ?? "").split(",").filter(Boolean)
        : [];
      const written = o.labels[LABEL_CONTAINER_NAME];
      extra.push({
        ip,
        names: [
          ...new Set([
            o.labels[LABEL_SERVICE],
            o.name,
            ...(written ? [written] : []),
            ...aliases,
            ...(Number(o.labels[LABEL_NUMBER]) === 1
              ? linked.get(o.labels[LABEL_SERVICE]) ?? []
              : []),
          ]),
        ],
      });
    }
    try {
      // In place: truncating keeps the inode the container has bind-mounted.
      const own = Deno.readTextFileSync(`${c.dirs.etc}/hostname`).trim() || c.name;
      Deno.writeTextFileSync(`${c.dirs.etc}/hosts`, hostsFile(own, c.network?.ip, extra));
    } catch { /* container dir being removed */ }
  }
}

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
}

/** Brings the project up: networks, volumes, then services in dependency order. */
export async function composeUp(
  host: Host,
  project: ComposeProject,
  options: UpOptions,
): Promise<ComposeRecord> {
  // Config and secret files are read before anything is made: each a regular file of at most 1 MiB.
  const contents = configContents(project);
  const rec: ComposeRecord = host.store.get<ComposeRecord>("compose", project.name) ?? {
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
  rec.files = project.files;
  host.store.put("compose", rec);
  await ensureNetworks(host, project, rec);
  for (const v of project.volumes) {
    if (v.external || v.device) continue;
    const vdir = volumeDir(host, project.name, v.name);
    assertBelow(`${host.paths.root}/volumes`, vdir, `volume ${v.name}`);
    privateDir(`${host.paths.root}/volumes`);
    Deno.mkdirSync(`${vdir}/_data`, { recursive: true });
    if (!rec.volumes.includes(v.name)) rec.volumes.push(v.name);
  }
  const pdir = projectDir(host, project.name);
  for (const kind of ["configs", "secrets"] as const) {
    for (const c of project[kind]) {
      const path = `${pdir}/${kind}/${c.name}`;
      assertBelow(pdir, path, `${kind.slice(0, -1)} ${c.name}`);
      privateDir(`${pdir}/${kind}`);
      Deno.writeFileSync(path, contents.get(`${kind}/${c.name}`)!);
      Deno.chmodSync(path, kind === "secrets" ? 0o400 : 0o444);
    }
  }
  // Copies with the owner and mode a service asked for (`uid`, `gid`, `mode`).
  for (const svc of project.services) {
    for (const m of svc.mounts) {
      if (!m.owner || (m.kind !== "config" && m.kind !== "secret")) continue;
      const path = configPath(host, project.name, m);
      assertBelow(pdir, path, `${m.kind} ${m.source}`);
      privateDir(`${pdir}/${m.kind}s/.owned`);
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
      Deno.writeFileSync(path, contents.get(`${m.kind}s/${m.source}`)!);
      Deno.chownSync(path, m.owner.uid, m.owner.gid);
      Deno.chmodSync(path, m.owner.mode);
    }
  }
  host.store.put("compose", rec);

  // Orphans: services of this project no longer in the files.
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

  const wanted = options.services?.length
    ? withDependencies(project, options.services)
    : project.services;
  for (const svc of wanted) {
    for (const d of svc.dependsOn) await waitCondition(host, project, d.service, d.condition);
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
      const name = containerName(project.name, svc, n);
      const have = host.store.get<ContainerRecord>("containers", name);
      if (have && have.labels[LABEL_HASH] === hash) {
        const live = await refresh(host, have);
        if (live.status === "created") await startContainer(host, name);
        else if (live.status === "exited") {
          // compose up starts stopped containers again; ours are recreated (a new create is cheap and clean).
          await removeContainer(host, name, { force: true });
        } else continue;
        if (live.status === "created") continue;
      }
      const spec = replicaSpec(host, project, svc, name, n, hash, await replicaPorts(host, svc));
      for (const m of spec.spec.mounts) {
        if (m.source.includes("/anon/")) Deno.mkdirSync(m.source, { recursive: true });
      }
      for (const net of svc.networks) {
        if (net.aliases.length > 0) {
          spec.spec.labels[`org.rkl.compose.aliases.${rec.networks[net.name].rklName}`] = net
            .aliases.join(",");
        }
      }
      if (joined.id !== undefined) spec.spec.labels[LABEL_NETNS_OF] = joined.id;
      const nets = svc.networkMode ? [] : svc.networks.map((n) => rec.networks[n.name].rklName);
      const fixed = Object.fromEntries(
        svc.networks.filter((n) => n.ipv4Address || n.macAddress).map((n) => [
          rec.networks[n.name].rklName,
          {
            ...(n.ipv4Address ? { ips: [n.ipv4Address] } : {}),
            ...(n.macAddress ? { mac: n.macAddress } : {}),
          },
        ]),
      );
      for (const [net, want] of Object.entries(fixed)) {
        // A network made by an older rkl, or an external one, may not offer them.
        const list = await loadNetwork(net, networkOptions(host));
        const caps = list.plugins.find((p) => p.type === "bridge")?.capabilities ?? {};
        for (const [k, cap] of [["ips", "ips"], ["mac", "mac"]] as const) {
          if (want[k] !== undefined && !caps[cap]) {
            throw new ConflictError(
              `Cannot give service ${JSON.stringify(svc.name)} a fixed ${
                k === "ips" ? "address" : "MAC"
              } on network ${net}: its conflist does not offer the "${cap}" capability (run compose down and up to remake it)`,
            );
          }
        }
      }
      const c = await createContainer(host, spec, {
        network: nets[0] ?? null,
        extraNetworks: nets.slice(1),
        hostNetwork: svc.networkMode === "host" || joined.hostNetwork,
        joinNetwork: joined.join,
        fixed,
      });
      try {
        await startContainer(host, c.name);
      } catch (e) {
        await removeContainer(host, c.name, { force: true }).catch(() => {});
        throw e;
      }
      options.log?.(`started ${c.name}`);
      writeProjectHosts(host, project.name);
    }
    rec.services[svc.name] = hash;
    host.store.put("compose", rec);
  }
  writeProjectHosts(host, project.name);
  return rec;
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

/** Removes the project's containers, networks and (with `volumes`) named volumes. */
export async function composeDown(
  host: Host,
  project: ComposeProject | undefined,
  name: string,
  options: { volumes?: boolean; removeOrphans?: boolean; timeoutSec?: number },
): Promise<string[]> {
  const rec = host.store.get<ComposeRecord>("compose", name);
  const known = project ? new Set(project.services.map((s) => s.name)) : undefined;
  const members = projectContainers(host, name);
  const going = members.filter((c) =>
    !(known && !known.has(c.labels[LABEL_SERVICE]) && !options.removeOrphans)
  );
  // Stop dependents before their dependencies, each level side by side; then remove all at once.
  const depth = stopLevels(project);
  const level = (c: ContainerRecord) => depth.get(c.labels[LABEL_SERVICE]) ?? 0;
  const levels = [...new Set(going.map(level))].sort((a, b) => a - b);
  for (const l of levels) {
    await Promise.all(
      going.filter((c) => level(c) === l).map((c) => {
        const grace = options.timeoutSec ??
          project?.services.find((s) => s.name === c.labels[LABEL_SERVICE])?.stopGraceSec ?? 10;
        return stopContainer(host, c.name, grace);
      }),
    );
  }
  // Removed side by side; an idle project bridge goes beside the DELs.
  const removed = await removeContainers(host, going.map((c) => c.name));
  if (!rec) return removed;
  for (const n of Object.values(rec.networks)) {
    if (n.external) continue;
    // Names read back from the record are checked again before they reach a path.
    const conf = conflistPath(host.paths.cniConfDir, n.rklName);
    assertBelow(host.paths.cniConfDir, conf, `network ${n.rklName}`);
    try {
      Deno.removeSync(conf);
    } catch { /* gone */ }
    await releaseSubnetClaims(conf);
    removeBelow(
      `${host.paths.root}/cni/networks`,
      `${host.paths.root}/cni/networks/${n.rklName}`,
      `network ${n.rklName}`,
    );
  }
  removeBelow(`${host.paths.root}/compose`, projectDir(host, name), `project ${name}`);
  if (options.volumes) {
    for (const v of rec.volumes) {
      if (!COMPOSE_NAME.test(v)) {
        throw new RklError(
          "EPATH",
          `Refusing to remove volume ${JSON.stringify(v)} of project ${
            JSON.stringify(name)
          }: not a volume name`,
        );
      }
      removeBelow(`${host.paths.root}/volumes`, volumeDir(host, name, v), `volume ${v}`);
    }
  }
  host.store.delete("compose", name);
  return removed;
}

/**
 * Stop order for down: 0 for services nothing depends on, and one more than
 * the deepest dependent for the others, so each level can stop side by side.
 */
export function stopLevels(project: ComposeProject | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!project) return out;
  const dependents = (name: string) =>
    project.services.filter((s) => s.dependsOn.some((d) => d.service === name));
  const depthOf = (name: string, seen: Set<string>): number => {
    if (out.has(name)) return out.get(name)!;
    if (seen.has(name)) return 0; // cycles are refused at load time
    seen.add(name);
    const d = Math.max(-1, ...dependents(name).map((s) => depthOf(s.name, seen))) + 1;
    out.set(name, d);
    return d;
  };
  for (const s of project.services) depthOf(s.name, new Set());
  return out;
}

export async function composeStop(
  host: Host,
  project: ComposeProject,
  services: string[],
  options: { timeoutSec?: number } = {},
): Promise<string[]> {
  const out: string[] = [];
  for (const svc of [...project.services].reverse()) {
    if (services.length && !services.includes(svc.name)) continue;
    for (
      const c of projectContainers(host, project.name).filter((c) =>
        c.labels[LABEL_SERVICE] === svc.name
      )
    ) {
      await stopContainer(host, c.name, options.timeoutSec ?? svc.stopGraceSec, { byUser: true });
      out.push(c.name);
    }
  }
  return out;
}

export function requireProject(host: Host, name: string): ComposeRecord {
  const rec = host.store.get<ComposeRecord>("compose", name);
  if (!rec) {
    throw new NotFoundError(`Cannot find compose project ${JSON.stringify(name)}`, {
      hint: "run rkl compose up first",
    });
  }
  return rec;
}

export function serviceContainer(host: Host, project: string, service: string): ContainerRecord {
  const c = projectContainers(host, project).filter((c) => c.labels[LABEL_SERVICE] === service)
    .sort((a, b) => Number(a.labels[LABEL_NUMBER]) - Number(b.labels[LABEL_NUMBER]))[0];
  if (!c) {
    throw new NotFoundError(
      `Cannot find a container of service ${JSON.stringify(service)} in project ${
        JSON.stringify(project)
      }`,
    );
  }
  return c;
}
