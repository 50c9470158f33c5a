/** A compose project's record, its labels, and the names derived from the project's. */
import { NotFoundError } from "../../errors.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import type { StoredRecord } from "../../store/store.ts";
import type { ContainerRecord } from "../container.ts";
import type { Host } from "../host.ts";
import { sha256Hex } from "../../base/hex.ts";

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
  /** The project's own volumes, by key (`PROJECT_KEY` under ROOT/volumes). */
  volumes: string[];
  /** Volumes with a `name:` of their own that up made (by that name): `down -v` removes them. */
  namedVolumes?: string[];
  /** Service → config hash of what is running. */
  services: Record<string, string>;
  /** Older records kept the last healthcheck result here; now RUN_ROOT/health has it. */
  health?: Record<string, string>;
  createdAt: string;
}

export function projectDir(host: Host, project: string): string {
  return `${host.paths.root}/compose/${project}`;
}

export function volumeDir(host: Host, project: string, volume: string): string {
  return `${host.paths.root}/volumes/${project}_${volume}`;
}

/** A project volume's dir: by its own name (`name:`, external) or as the project's `PROJECT_KEY`. */
export function projectVolumeDir(
  host: Host,
  project: string,
  v: { name: string; volumeName?: string },
): string {
  return v.volumeName !== undefined
    ? `${host.paths.root}/volumes/${v.volumeName}`
    : volumeDir(host, project, v.name);
}

/** A DNS-1123 label from a compose name (`my_app-web-1`). */
export function containerName(project: string, svc: ComposeService, n: number): string {
  const raw = svc.containerName ?? `${project}-${svc.name}-${n}`;
  return raw.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(
    /-+$/,
    "",
  );
}

/**
 * The service's config hash: recreate on up only when this changes. A
 * dependency with `restart: true` is part of it, so a recreated dependency
 * recreates the service too (docker compose restarts it after it).
 */
export function serviceHash(project: ComposeProject, svc: ComposeService): Promise<string> {
  const restartWith = (s: ComposeService, seen: Set<string>): ComposeService[] =>
    s.dependsOn.filter((d) => d.restart && !seen.has(d.service)).flatMap((d) => {
      const dep = project.services.find((x) => x.name === d.service);
      if (!dep) return [];
      seen.add(dep.name);
      return [dep, ...restartWith(dep, seen)];
    });
  const deps = restartWith(svc, new Set([svc.name]));
  // Where things are written (`loc`) is not configuration: moving a line recreates nothing.
  return sha256Hex(JSON.stringify(
    { svc, configs: project.configs, secrets: project.secrets, ...(deps.length ? { deps } : {}) },
    (k, v) => k === "loc" ? undefined : v,
  ));
}

/**
 * `restart SERVICES`: those (as given: an unknown one is refused later) and
 * the services that depend on one of them with `restart: true` or run in its
 * network namespace (`network_mode: service:`), transitively. No services:
 * all of them.
 */
export function withRestartDependents(project: ComposeProject, services: string[]): string[] {
  if (services.length === 0) return services;
  const out = new Set(services);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of project.services) {
      // rkl's restart recreates a container, netns included: one in its namespace goes along.
      const joined = s.networkMode === "service" && out.has(s.networkTarget!);
      if (
        !out.has(s.name) && (joined || s.dependsOn.some((d) => d.restart && out.has(d.service)))
      ) {
        out.add(s.name);
        grew = true;
      }
    }
  }
  return [...out];
}

/** Members of a project, from the container store. */
export function projectContainers(host: Host, project: string): ContainerRecord[] {
  return host.store.list<ContainerRecord>("containers").filter((c) =>
    c.labels[LABEL_PROJECT] === project
  );
}

/** Label listing a service's `links` as SERVICE:ALIAS,… for its /etc/hosts. */
export const LABEL_LINKS = "org.rkl.compose.links";

/** Label naming the container (id@createdAt) whose network namespace a replica joined. */
export const LABEL_NETNS_OF = "org.rkl.compose.netns-of";

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
