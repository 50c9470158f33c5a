/**
 * The compose verbs beyond up/down/ps/logs/start/stop/restart/exec:
 * run (a one-off container), pull, kill, rm, port, images, wait, pause,
 * unpause, and the waits of `up --wait`. Each acts on the same container
 * records as `rkl container`.
 *
 * A one-off container (`compose run`) is named `<project>-<service>-run-<12 hex>`
 * as docker compose names it, and labelled `com.docker.compose.oneoff=True`
 * with its project and service under rkl's own keys, not the
 * `com.docker.compose.project` label: `up`, `ps`, `down` and the name
 * files leave it alone, as docker compose leaves one-off containers out of
 * its service's replicas. It has the service's networks, volumes,
 * environment and limits, no published ports and no restart policy; its
 * /etc/hosts lists the project's containers.
 */
import { ConflictError, NotFoundError, UsageError } from "../../errors.ts";
import { readExitCode } from "../../oci/conmon.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import { RESTART_LABEL } from "../../spec/names.ts";
import {
  type ContainerRecord,
  createContainer,
  killContainer,
  quickRefresh,
  removeContainer,
  startContainer,
} from "../container.ts";
import { hostsFile } from "../etc_files.ts";
import { ensureHealthMonitor, readHealth } from "../health.ts";
import type { Host } from "../host.ts";
import { isPaused, pauseContainer, unpauseContainer } from "../pause.ts";
import { parseSignal } from "../signals.ts";
import {
  LABEL_CONTAINER_NAME,
  LABEL_HASH,
  LABEL_NUMBER,
  LABEL_PROJECT,
  LABEL_SERVICE,
  projectContainers,
  serviceHash,
} from "./names.ts";
import { ensureNetworks, networkToJoin } from "./networks.ts";
import { replicaSpec } from "./replica.ts";
import {
  checkExternalVolumes,
  composeUp,
  configContents,
  projectRecord,
  writeProjectFiles,
} from "./up.ts";

export const LABEL_ONEOFF = "com.docker.compose.oneoff";
export const LABEL_ONEOFF_PROJECT = "org.rkl.compose.oneoff-project";
export const LABEL_ONEOFF_SERVICE = "org.rkl.compose.oneoff-service";

function findService(project: ComposeProject, name: string): ComposeService {
  const svc = project.services.find((s) => s.name === name);
  if (!svc) {
    // A name the user typed: bad input (exit 2), with what would have been right.
    throw new UsageError(
      `Cannot find service ${JSON.stringify(name)} in project ${
        JSON.stringify(project.name)
      } (its services: ${project.services.map((s) => s.name).join(", ")})`,
    );
  }
  return svc;
}

/** The project's service containers, of the named services only when some are named. */
export function membersOf(host: Host, project: string, services: string[] = []): ContainerRecord[] {
  return projectContainers(host, project).filter((c) =>
    services.length === 0 || services.includes(c.labels[LABEL_SERVICE])
  ).sort((a, b) =>
    a.labels[LABEL_SERVICE].localeCompare(b.labels[LABEL_SERVICE]) ||
    Number(a.labels[LABEL_NUMBER]) - Number(b.labels[LABEL_NUMBER])
  );
}

/** Checks that every named service is in the project (an unknown one is bad input). */
export function checkServices(project: ComposeProject, services: string[]): void {
  for (const s of services) findService(project, s);
}

/** The project's one-off containers (`compose run` without --rm). */
export function oneOffs(host: Host, project: string): ContainerRecord[] {
  return host.store.list<ContainerRecord>("containers").filter((c) =>
    c.labels[LABEL_ONEOFF_PROJECT] === project
  );
}

/** docker compose's one-off name: `<project>-<service>-run-<12 hex>`. */
export function oneOffName(project: string, service: string, random = crypto.randomUUID()): string {
  return `${project}-${service}-run-${random.replace(/-/g, "").slice(0, 12)}`;
}

export interface RunOptions {
  /** Replaces the service's command (its entrypoint stays). */
  command?: string[];
  /** -e K=V, over the service's environment. */
  env?: Record<string, string>;
  /** Name instead of the generated one (--name). */
  name?: string;
  /** Don't start the service's dependencies (--no-deps). */
  noDeps?: boolean;
  warn(message: string): void;
  log?(message: string): void;
}

/**
 * Creates and starts a one-off container of `service` (its dependencies
 * first, as `up` would start them); returns its record.
 */
export async function composeRunCreate(
  host: Host,
  project: ComposeProject,
  service: string,
  options: RunOptions,
): Promise<ContainerRecord> {
  const svc = findService(project, service);
  const deps = svc.dependsOn.map((d) => d.service);
  if (deps.length > 0 && !options.noDeps) {
    await composeUp(host, project, { services: deps, warn: options.warn, log: options.log });
  }
  // The networks, volumes, configs and secrets `up` makes, without any service.
  const contents = configContents(project);
  checkExternalVolumes(host, project);
  const rec = projectRecord(host, project);
  host.store.put("compose", rec);
  await ensureNetworks(host, project, rec);
  writeProjectFiles(host, project, rec, contents);
  host.store.put("compose", rec);

  const name = options.name ?? oneOffName(project.name, service);
  if (host.store.get("containers", name)) {
    throw new ConflictError(`Cannot run ${JSON.stringify(name)}: a container has that name`);
  }
  const hash = await serviceHash(project, svc);
  const spec = replicaSpec(host, project, svc, name, 1, hash, []);
  const s = spec.spec;
  if (options.command?.length) s.args = options.command;
  const env = new Map(s.env?.map((e) => [e.name, e]) ?? []);
  for (const [k, v] of Object.entries(options.env ?? {})) env.set(k, { name: k, value: v });
  s.env = [...env.values()];
  for (
    const k of [LABEL_PROJECT, LABEL_SERVICE, LABEL_NUMBER, LABEL_HASH, LABEL_CONTAINER_NAME]
  ) delete s.labels[k];
  delete s.labels[RESTART_LABEL];
  s.labels[LABEL_ONEOFF] = "True";
  s.labels[LABEL_ONEOFF_PROJECT] = project.name;
  s.labels[LABEL_ONEOFF_SERVICE] = svc.name;
  // A healthcheck would start the monitor for a container nobody waits on.
  delete s.healthcheck;
  for (const m of s.mounts) {
    if (m.source.includes("/anon/")) host.fs.mkdir(m.source, { recursive: true });
  }
  const nets = svc.networkMode ? [] : svc.networks.map((n) => rec.networks[n.name].rklName);
  const joined = networkToJoin(host, project, svc);
  const c = await createContainer(host, spec, {
    network: nets[0] ?? null,
    extraNetworks: nets.slice(1),
    // No fixed ipv4_address: that one is the service's own replica's.
    hostNetwork: svc.networkMode === "host" || joined.hostNetwork,
    // network_mode service:/container: the one-off joins that container's netns and /etc files.
    joinNetwork: joined.join,
  });
  try {
    if (!joined.join) writeOneOffHosts(host, project.name, c);
    await startContainer(host, c.name);
  } catch (e) {
    await removeContainer(host, c.name, { force: true }).catch(() => {});
    throw e;
  }
  return (await quickRefresh(host, host.store.get<ContainerRecord>("containers", c.name)!));
}

/** The one-off's /etc/hosts: every project container by service and name (first address). */
function writeOneOffHosts(host: Host, project: string, c: ContainerRecord): void {
  if (c.hostNetwork) return;
  const extra: { ip: string; names: string[] }[] = [];
  for (const o of projectContainers(host, project)) {
    const ip = o.network?.ip ?? o.extraNetworks?.find((x) => x.ip)?.ip;
    if (!ip) continue;
    extra.push({ ip, names: [...new Set([o.labels[LABEL_SERVICE], o.name])] });
  }
  try {
    const own = host.fs.readTextFile(`${c.dirs.etc}/hostname`).trim() || c.name;
    host.fs.writeTextFile(`${c.dirs.etc}/hosts`, hostsFile(own, c.network?.ip, extra));
  } catch { /* no managed hosts file */ }
}

/** Waits for a container's exit code (conmon's exit file). */
export async function waitExit(host: Host, c: ContainerRecord, signal?: AbortSignal) {
  for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
    const code = readExitCode(c.dirs.exitDir, c.id, host.fs);
    if (code !== undefined) return code;
    if (signal?.aborted) return undefined;
    if (!host.store.get("containers", c.name)) return undefined;
    await host.sleep(delay);
  }
}

/** Sends `signal` to every running container of the services; the names it reached. */
export async function composeKill(
  host: Host,
  project: string,
  services: string[],
  signal = "SIGKILL",
): Promise<string[]> {
  const sig = parseSignal(signal, "--signal");
  const done: string[] = [];
  for (const m of membersOf(host, project, services)) {
    const live = await quickRefresh(host, m);
    if (live.status !== "running") continue;
    await killContainer(host, live.name, sig);
    done.push(live.name);
  }
  return done;
}

/**
 * Removes the services' stopped containers (`-s`: stops them first; a
 * running one is otherwise left, as docker compose leaves it), and with
 * `volumes` their anonymous volumes. Returns the names removed.
 */
export async function composeRm(
  host: Host,
  project: string,
  services: string[],
  options: { stop?: boolean; volumes?: boolean; stopFn?: (names: string[]) => Promise<unknown> },
): Promise<string[]> {
  const members = await Promise.all(
    membersOf(host, project, services).map((m) => quickRefresh(host, m)),
  );
  if (options.stop) {
    const running = members.filter((m) => m.status === "running").map((m) => m.name);
    if (running.length) await options.stopFn?.(running);
  }
  const removed: string[] = [];
  for (const m of members) {
    const live = await quickRefresh(host, m);
    if (live.status === "running") continue;
    const anon = options.volumes ? anonymousVolumes(host, live) : [];
    await removeContainer(host, live.name, { force: true });
    for (const dir of anon) host.fs.remove(dir, { recursive: true });
    removed.push(live.name);
  }
  return removed;
}

/** The anonymous volume dirs a container mounts (below ROOT/compose/…/anon/ only). */
function anonymousVolumes(host: Host, c: ContainerRecord): string[] {
  let mounts: { source?: string }[] = [];
  try {
    mounts = JSON.parse(host.fs.readTextFile(c.dirs.config)).mounts ?? [];
  } catch {
    return [];
  }
  const prefix = `${host.paths.root}/`;
  return mounts.map((m) => m.source ?? "").filter((s) =>
    s.startsWith(prefix) && s.includes("/anon/") && !s.split("/").includes("..")
  );
}

/** `compose port SERVICE PORT`: the host address of a published port, or undefined. */
export function composePort(
  host: Host,
  project: string,
  service: string,
  port: number,
  options: { protocol?: string; index?: number } = {},
): string | undefined {
  const protocol = (options.protocol ?? "tcp").toLowerCase();
  const members = membersOf(host, project, [service]);
  const m = members.find((c) => Number(c.labels[LABEL_NUMBER]) === (options.index ?? 1)) ??
    (options.index === undefined ? members[0] : undefined);
  if (!m) {
    throw new NotFoundError(
      `Cannot find a container of service ${JSON.stringify(service)} in project ${
        JSON.stringify(project)
      }`,
    );
  }
  const p = (m.network?.portMappings ?? []).find((x) =>
    x.containerPort === port && x.protocol.toLowerCase() === protocol
  );
  return p ? `${p.hostIP || "0.0.0.0"}:${p.hostPort}` : undefined;
}

/** The status `compose ps` shows: paused for a frozen running container. */
export function composeStatus(host: Host, c: ContainerRecord): string {
  return isPaused(host, c) ? "paused" : c.status;
}

/** Pauses (or unpauses) every running (paused) container of the services; the names done. */
export async function composePause(
  host: Host,
  project: string,
  services: string[],
  on: boolean,
): Promise<string[]> {
  const done: string[] = [];
  for (const m of membersOf(host, project, services)) {
    const live = await quickRefresh(host, m);
    if (live.status !== "running" || isPaused(host, live) === on) continue;
    if (on) await pauseContainer(host, live.name);
    else await unpauseContainer(host, live.name);
    done.push(live.name);
  }
  return done;
}

/**
 * `up --wait`: until every container of the services runs, and each with a
 * healthcheck is healthy. A container that exits, or turns unhealthy, or the
 * time running out, is an error naming it.
 */
export async function waitReady(
  host: Host,
  project: string,
  services: string[],
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const members = membersOf(host, project, services);
  if (members.some((m) => m.healthcheck)) ensureHealthMonitor(host);
  for (const m of members) {
    for (;;) {
      const live = await quickRefresh(host, m);
      if (live.status === "exited" || live.status === "unknown") {
        throw new ConflictError(
          `container ${live.name} is ${live.status}${
            live.exitCode !== undefined ? ` (exit code ${live.exitCode})` : ""
          }`,
        );
      }
      if (live.status === "running") {
        if (!live.healthcheck) break;
        const h = readHealth(host, live).status;
        if (h === "healthy") break;
        if (h === "unhealthy") throw new ConflictError(`container ${live.name} is unhealthy`);
      }
      if (Date.now() > deadline) {
        throw new ConflictError(
          `container ${live.name} is not ${live.healthcheck ? "healthy" : "running"} after ${
            timeoutMs / 1000
          } s`,
        );
      }
      await host.sleep(100);
    }
  }
}

/**
 * `up --abort-on-container-exit`: resolves with the first of `members` to
 * exit and its code (undefined when `signal` aborts first).
 */
export async function firstExit(
  host: Host,
  members: ContainerRecord[],
  signal?: AbortSignal,
): Promise<{ name: string; code: number } | undefined> {
  for (let delay = 10; !signal?.aborted; delay = Math.min(delay * 2, 200)) {
    for (const c of members) {
      const code = readExitCode(c.dirs.exitDir, c.id, host.fs);
      if (code !== undefined) return { name: c.name, code };
    }
    await host.sleep(delay);
  }
  return undefined;
}

/** An image reference split as `compose images` shows it; a local bundle path stays whole. */
export function splitImage(ref: string): { repository: string; tag: string } {
  if (ref.startsWith("/") || ref.startsWith(".")) return { repository: ref, tag: "-" };
  const at = ref.indexOf("@");
  if (at >= 0) return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash
    ? { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) }
    : { repository: ref, tag: "latest" };
}
