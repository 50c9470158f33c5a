/** One service replica as a container spec: its mounts, ports, security settings and labels. */
import { ConflictError, NotFoundError, type SourceLocation } from "../../errors.ts";
import { natTable } from "../../net/hostnet.ts";
import { which } from "../../oci/runtime.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import type { LoadedContainer, ResolvedMount } from "../../spec/container.ts";
import type { PathSegment } from "../../spec/source.ts";
import { RESTART_LABEL } from "../../spec/names.ts";
import type { Host } from "../host.ts";
import { portConflict } from "../ports.ts";
import {
  LABEL_CONTAINER_NAME,
  LABEL_HASH,
  LABEL_LINKS,
  LABEL_NUMBER,
  LABEL_PROJECT,
  LABEL_SERVICE,
  projectDir,
  projectVolumeDir,
} from "./names.ts";

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
export async function replicaPorts(
  host: Host,
  svc: ComposeService,
): Promise<ComposeService["ports"]> {
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
export function configPath(
  host: Host,
  project: string,
  m: ComposeService["mounts"][number],
): string {
  const dir = `${projectDir(host, project)}/${m.kind}s`;
  if (!m.owner) return `${dir}/${m.source}`;
  return `${dir}/.owned/${m.owner.uid}.${m.owner.gid}.${m.owner.mode.toString(8)}/${m.source}`;
}

/**
 * The mounts of one replica: binds, named volumes, tmpfs, anonymous volumes,
 * configs and secrets. A checked hostPath has the field path `["volumes", i]`,
 * which `places` maps to its compose key and line.
 */
function replicaMounts(
  host: Host,
  project: ComposeProject,
  svc: ComposeService,
  name: string,
  places: Places,
): ResolvedMount[] {
  return svc.mounts.map((m, i) => {
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
          path: places.put(["volumes", i], {
            ...(m.loc ?? { file: project.files[0] }),
            path: `services.${svc.name}.volumes[${i}]`,
          }),
        };
      case "volume": {
        // driver_opts bind: the directory named by device, which must exist (as docker's local driver).
        const pv = project.volumes.find((v) => v.name === m.source);
        const device = pv?.device;
        return device
          ? {
            source: device,
            destination: m.target,
            readOnly: m.readOnly,
            kind: "hostPath",
            hostPathType: "Directory",
            path: places.put(["volumes", i], {
              file: project.files[0],
              path: `volumes.${m.source}.driver_opts.device`,
            }),
          }
          : {
            source: `${projectVolumeDir(host, project.name, pv ?? { name: m.source })}/_data`,
            destination: m.target,
            readOnly: m.readOnly,
            kind: "hostPath",
            // Its own name: the container's record names it (no removal while it is mounted).
            ...(pv?.volumeName !== undefined ? { namedVolume: pv.volumeName } : {}),
            // docker's copy of the image's files into it when empty, unless `volume.nocopy`.
            populate: !m.nocopy,
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
}

/** The container spec of one replica. */
export function replicaSpec(
  host: Host,
  project: ComposeProject,
  svc: ComposeService,
  name: string,
  n: number,
  hash: string,
  ports: ComposeService["ports"] = svc.ports,
): LoadedContainer {
  const places = new Places();
  const mounts = replicaMounts(host, project, svc, name, places);
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
      ...(svc.pidsLimit !== undefined ? { pidsLimit: svc.pidsLimit } : {}),
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
      ...(svc.stdinOpen ? { stdin: true } : {}),
      init: initBinary(svc),
      ...(svc.hooks.postStart || svc.hooks.preStop ? { execHooks: svc.hooks } : {}),
      hostname: svc.hostname,
      userNames: svc.user && (svc.user.name || svc.user.group)
        ? {
          user: svc.user.name,
          group: svc.user.group,
          ...(svc.user.loc ? { path: places.put(["user"], { path: "", ...svc.user.loc }) } : {}),
        }
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
    // The compose front end's locator: a field the replica names by path is at its compose
    // key (and line, where the file gives one).
    source: {
      file,
      at: (path) => places.get(path) ?? { file, path: `services.${svc.name}.${path.join(".")}` },
    },
  };
}

/** Field paths of a replica's request and where each is in the compose files. */
class Places {
  #at = new Map<string, SourceLocation & { path: string }>();
  put(path: PathSegment[], where: SourceLocation & { path: string }): PathSegment[] {
    this.#at.set(JSON.stringify(path), where);
    return path;
  }
  get(path: readonly PathSegment[]): (SourceLocation & { path: string }) | undefined {
    return this.#at.get(JSON.stringify(path));
  }
}
