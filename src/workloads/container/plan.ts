/** Planning a container: pure, no I/O; the plan says what create will make. */
import { SpecError } from "../../errors.ts";
import type { PortMapping } from "../../net/cni.ts";
import { generateConfig, processArgs } from "../../oci/generate.ts";
import type { ContainerSpec, LoadedContainer } from "../../spec/container.ts";
import { claimDir, containerDirs, type RklPaths } from "../host.ts";
import type { ContainerPlan, PlanOptions, StagedSubPath } from "./types.ts";

/** The pod's volumes as host paths: per-pod dirs, and claims under the volumes dir. */
function withPodVolumes(spec: ContainerSpec, dirs: Record<string, string>, paths: RklPaths) {
  return {
    ...spec,
    mounts: spec.mounts.map((m) => {
      if (m.kind === "emptyDir" || m.kind === "files" || m.kind === "image") {
        return { ...m, source: dirs[m.volume!] };
      }
      if (m.kind === "claim") return { ...m, source: claimDir(paths, m.volume!) };
      return m;
    }),
  };
}

/** Port mappings for portmap from the spec's ports (hostPort 0 is not published). */
export function portMappings(ports: LoadedContainer["spec"]["ports"]): PortMapping[] {
  return ports.filter((p) => (p.hostPort ?? 0) > 0).map((p) => ({
    hostPort: p.hostPort!,
    containerPort: p.containerPort,
    protocol: (p.protocol || "TCP").toLowerCase() as "tcp" | "udp",
    ...(p.hostIP ? { hostIP: p.hostIP } : {}),
  }));
}

/** Pure: what the container will be, with no I/O. */
export function planContainer(loaded: LoadedContainer, options: PlanOptions): ContainerPlan {
  const sb = options.sandbox;
  const spec = sb ? withPodVolumes(loaded.spec, sb.emptyDirs, options.host.paths) : loaded.spec;
  const name = sb?.recordName ?? spec.name;
  const id = sb ? name : options.id ?? name;
  const dirs = containerDirs(options.host.paths, id);
  const cgroupPath = sb?.cgroupPath ?? `${options.host.cgroupParent}/${id}`;
  const join = options.joinNetwork;
  const etc = sb?.etcDir ?? join?.etcDir ?? dirs.etc;
  if (!processArgs(spec, options.bundle)) {
    throw new SpecError(
      loaded.source.at(["args"]),
      "no command: set command or args (the bundle's config.json has no process.args)",
    );
  }
  const config = generateConfig(spec, {
    rootfs: dirs.rootfs,
    cgroupsPath: `/${cgroupPath}`,
    hostname: sb?.hostname ?? join?.hostname ?? spec.hostname ?? spec.name,
    etcFiles: {
      hosts: `${etc}/hosts`,
      hostname: `${etc}/hostname`,
      resolvConf: `${etc}/resolv.conf`,
    },
    joinNamespaces: sb?.join ??
      { network: options.hostNetwork ? "host" : join?.netns ?? dirs.netns },
    nofileHard: options.host.nofileHard,
    ...(spec.pidsLimit !== undefined ? { pidsLimit: spec.pidsLimit } : {}),
    bundle: options.bundle,
    annotations: sb
      ? { "org.rkl.kind": "pod-container", "org.rkl.pod": sb.pod, "org.rkl.name": spec.name }
      : { "org.rkl.kind": "container", "org.rkl.name": spec.name },
    localhostSeccomp: options.localhostSeccomp,
    podInfo: sb?.podInfo ?? options.podInfo,
  });
  // A subPath mount's source is its staging path, bind-mounted at create.
  const subPaths: StagedSubPath[] = [];
  spec.mounts.forEach((m, i) => {
    if (!m.subPath) return;
    const target = `${dirs.subPaths}/${i}`;
    subPaths.push({ root: m.source, subPath: m.subPath, target, mount: i });
    const cm = config.mounts.find((c) => c.destination === m.destination && c.type === "bind");
    if (cm) cm.source = target;
  });
  for (const [i, u] of (spec.ulimits ?? []).entries()) {
    // Without CAP_SYS_RESOURCE nothing may raise a hard limit above this process's own.
    const ceiling = options.host.hardLimits?.[u.type];
    if (ceiling !== undefined && u.hard > ceiling) {
      const at = loaded.source.at(["ulimits", i]);
      throw new SpecError(
        at,
        `${u.type.slice(7).toLowerCase()} hard limit ${u.hard} is above this host's ${ceiling}`,
      );
    }
  }
  if (spec.securityContext.runAsNonRoot && config.process.user.uid === 0) {
    // The kubelet's check: the uid the process will have, from the spec or the image.
    throw new SpecError(
      loaded.source.at(["securityContext", "runAsNonRoot"]),
      "runAsNonRoot is set but the container would run as root (uid 0): set runAsUser to a non-zero uid",
    );
  }
  return {
    name,
    id,
    network: sb ? null : options.network,
    portMappings: !sb && options.network ? portMappings(spec.ports) : [],

    dirs,
    cgroupPath,
    config,
    subPaths,
  };
}
