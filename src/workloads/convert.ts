/**
 * `rkl compose convert`: a compose project as Kubernetes objects that
 * `rkl pod run` (and a kubelet) accept. By default a Pod per service
 * replica, with the ConfigMaps and Secrets its configs and secrets become;
 * with `workloads`, a Deployment, a Service for its ports and a
 * PersistentVolumeClaim per named volume, for a cluster.
 *
 * Names keep resolving: every Pod carries the annotations
 * {@linkcode HOSTS_GROUP} (the project) and {@linkcode HOSTS_NAMES} (the
 * service, container_name and aliases), and rkl writes each pod of a group
 * into the others' /etc/hosts, as it does for compose containers. In a
 * cluster, the Services give the same names through DNS.
 *
 * What has no Kubernetes equivalent is a warning at its line; what cannot be
 * expressed at all (network_mode service:/none) is an error at its line.
 */
import { SpecError } from "../errors.ts";
import type { ComposeMount, ComposeProject, ComposeService } from "../spec/compose.ts";
import { locate, parseYamlDocuments, type SourceDoc, type Warning } from "../spec/source.ts";
import { containerName } from "./compose.ts";
import { HOSTS_GROUP, HOSTS_NAMES } from "../spec/names.ts";
import type { HostFs } from "../sys/fs.ts";
import { MAX_INPUT_BYTES, readTextBounded } from "../sys/readfile.ts";

export { HOSTS_GROUP, HOSTS_NAMES };

export interface ConvertOptions {
  /** Where named volumes live (ROOT/volumes), so pods and compose share their data. */
  volumesDir: string;
  /** Deployment + Service + PVC instead of Pods. */
  workloads?: boolean;
  /** Reads a config/secret file (absolute path). */
  readFile(path: string): Uint8Array;
  /** The host's files: whether a bind mount's source exists. */
  fs: Pick<HostFs, "stat">;
}

export interface Converted {
  /** Per service: its objects, in apply order (ConfigMaps/Secrets first). */
  services: { name: string; docs: Record<string, unknown>[] }[];
  warnings: Warning[];
}

type Obj = Record<string, unknown>;

/** Where `services.NAME.KEY` is written (the last file that sets it). */
function locator(files: string[]): (svc: string, key: string[]) => SourceDoc | undefined {
  const docs: SourceDoc[] = [];
  for (const f of files) {
    try {
      docs.push(...parseYamlDocuments(readTextBounded(f, { max: MAX_INPUT_BYTES }), f));
    } catch { /* already loaded once; locations are a courtesy */ }
  }
  return (svc, key) =>
    [...docs].reverse().find((d) => d.doc.getIn(["services", svc, ...key], true) !== undefined);
}

const dnsName = (s: string) =>
  s.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(
    /-+$/,
    "",
  ) || "x";

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Kubernetes expands `$(VAR)` and reads `$$` as `$`; compose values mean what they say. */
const literal = (s: string) => s.split("$").join("$$");

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function convertProject(project: ComposeProject, options: ConvertOptions): Converted {
  const where = locator(project.files);
  const warnings: Warning[] = [];
  const warn = (svc: string, key: string[], message: string) => {
    const src = where(svc, key);
    const at = src ? locate(src, ["services", svc, ...key], { key: true }) : {};
    warnings.push({
      file: src?.file ?? project.files[0],
      ...at,
      path: ["services", svc, ...key].join("."),
      message,
    });
  };
  const fail = (svc: string, key: string[], message: string): never => {
    const src = where(svc, key);
    const at = src ? locate(src, ["services", svc, ...key], { key: true }) : {};
    throw new SpecError(
      { file: src?.file ?? project.files[0], ...at, path: ["services", svc, ...key].join(".") },
      message,
    );
  };
  const byName = new Map(project.services.map((s) => [s.name, s]));
  const out: Converted["services"] = [];
  for (const svc of project.services) {
    out.push({ name: svc.name, docs: convertService(project, svc, byName, options, warn, fail) });
  }
  return { services: out, warnings };
}

/** What a service converts with: its project, every service by name, the options, where to warn or fail. */
interface ServiceConversion {
  project: ComposeProject;
  svc: ComposeService;
  byName: Map<string, ComposeService>;
  options: ConvertOptions;
  warn: (svc: string, key: string[], message: string) => void;
  fail: (svc: string, key: string[], message: string) => never;
}

/** The objects of one service: Pods (one per replica), or a Deployment, Service and claims. */
function convertService(
  project: ComposeProject,
  svc: ComposeService,
  byName: Map<string, ComposeService>,
  options: ConvertOptions,
  warn: (svc: string, key: string[], message: string) => void,
  fail: (svc: string, key: string[], message: string) => never,
): Obj[] {
  const cv: ServiceConversion = { project, svc, byName, options, warn, fail };
  const s = svc.name;
  if (svc.networkMode === "none") {
    fail(
      s,
      ["network_mode"],
      "network_mode none has no Pod equivalent: drop it and run the converted pod with `rkl pod run --network none`",
    );
  }
  if (svc.networkMode === "service" || svc.networkMode === "container") {
    fail(
      s,
      ["network_mode"],
      `network_mode ${svc.networkMode}:${svc.networkTarget} has no Pod equivalent across pods: put both containers in one Pod (they share its network namespace)`,
    );
  }
  const { objects, volumes, mounts, claims } = convertMounts(cv);
  const container = convertContainer(cv, mounts);
  warnDropped(cv);
  const inits = waitInits(cv);
  const restartPolicy = { no: "Never", always: "Always", "on-failure": "OnFailure" }[
    svc.restart as "no"
  ] ?? "Always";
  const { labels, annotations } = labelsOf(cv);
  const podSpec = (hostname: string): Obj => ({
    ...(svc.networkMode === "host" ? { hostNetwork: true } : {}),
    ...(svc.hostname ? { hostname: dnsName(svc.hostname) } : { hostname }),
    ...(inits.length > 0 ? { initContainers: inits } : {}),
    containers: [container],
    restartPolicy: options.workloads ? "Always" : restartPolicy,
    terminationGracePeriodSeconds: svc.stopGraceSec,
    ...(volumes.length > 0 ? { volumes } : {}),
  });
  if (options.workloads) {
    if (restartPolicy !== "Always") {
      warn(s, ["restart"], "a Deployment's pods always restart; the restart policy is dropped");
    }
    return [...objects, ...workloadObjects(cv, { labels, annotations, claims, podSpec })];
  }
  return [...objects, ...podObjects(cv, { labels, annotations, podSpec })];
}

/** Volumes and mounts; configs and secrets become ConfigMaps and Secrets (`objects`). */
function convertMounts(cv: ServiceConversion) {
  const { project, svc, options } = cv;
  const objects: Obj[] = [];
  const volumes: Obj[] = [];
  const mounts: Obj[] = [];
  const claims: string[] = [];
  const addObject = (kind: "configs" | "secrets", m: ComposeMount, i: number) => {
    const def = project[kind].find((c) => c.name === m.source);
    const objName = dnsName(
      `${project.name}-${kind === "configs" ? "config" : "secret"}-${m.source}`,
    );
    const key = m.source.replace(/[^-._a-zA-Z0-9]/g, "_");
    const bytes = def?.file
      ? options.readFile(def.file)
      : new TextEncoder().encode(def?.content ?? "");
    if (!objects.some((o) => (o.metadata as Obj).name === objName)) {
      objects.push(
        kind === "configs"
          ? {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: objName },
            data: { [key]: new TextDecoder().decode(bytes) },
          }
          : {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: objName },
            type: "Opaque",
            data: { [key]: btoa(String.fromCharCode(...bytes)) },
          },
      );
    }
    const vol = `${kind === "configs" ? "config" : "secret"}-${i}`;
    volumes.push(
      kind === "configs"
        ? { name: vol, configMap: { name: objName, items: [{ key, path: key }] } }
        : {
          name: vol,
          secret: { secretName: objName, items: [{ key, path: key }], defaultMode: 0o400 },
        },
    );
    mounts.push({ name: vol, mountPath: m.target, subPath: key, readOnly: true });
  };
  svc.mounts.forEach((m, i) => {
    const vol = `vol-${i}`;
    switch (m.kind) {
      case "bind": {
        let type = "";
        try {
          options.fs.stat(m.source);
        } catch {
          if (m.createHostPath) type = "DirectoryOrCreate";
        }
        volumes.push({ name: vol, hostPath: { path: m.source, ...(type ? { type } : {}) } });
        break;
      }
      case "volume":
        if (options.workloads) {
          const claim = dnsName(`${project.name}-${m.source}`);
          claims.push(claim);
          volumes.push({ name: vol, persistentVolumeClaim: { claimName: claim } });
        } else {
          const device = project.volumes.find((v) => v.name === m.source)?.device;
          volumes.push({
            name: vol,
            hostPath: device ? { path: device, type: "Directory" } : {
              path: `${options.volumesDir}/${project.name}_${m.source}/_data`,
              type: "DirectoryOrCreate",
            },
          });
        }
        break;
      case "anonymous":
        volumes.push({ name: vol, emptyDir: {} });
        break;
      case "tmpfs": {
        // A memory-backed emptyDir; its size, if any, is the limit.
        const size = m.options?.find((o) => o.startsWith("size="))?.slice(5);
        volumes.push({
          name: vol,
          emptyDir: { medium: "Memory", ...(size ? { sizeLimit: size } : {}) },
        });
        break;
      }
      default:
        addObject(m.kind === "config" ? "configs" : "secrets", m, i);
        return;
    }
    mounts.push({ name: vol, mountPath: m.target, ...(m.readOnly ? { readOnly: true } : {}) });
  });
  return { objects, volumes, mounts, claims };
}

/** The container: command, environment, ports, limits, securityContext, probes, hooks. */
function convertContainer(cv: ServiceConversion, mounts: Obj[]): Obj {
  const { svc, options, fail } = cv;
  const s = svc.name;
  const container: Obj = { name: dnsName(s), image: svc.image };
  if (svc.entrypoint) container.command = svc.entrypoint.map(literal);
  if (svc.command) container.args = svc.command.map(literal);
  if (svc.workingDir) container.workingDir = svc.workingDir;
  const env = Object.entries(svc.environment).map(([name, value]) => ({
    name,
    value: literal(value),
  }));
  if (env.length > 0) container.env = env;
  if (svc.ports.length > 0) {
    container.ports = svc.ports.map((p) => ({
      containerPort: p.containerPort,
      ...(p.hostPort && !options.workloads ? { hostPort: p.hostPort } : {}),
      ...(p.hostIP && !options.workloads ? { hostIP: p.hostIP } : {}),
      ...(p.protocol === "udp" ? { protocol: "UDP" } : {}),
    }));
  }
  const limits: Obj = {};
  if (svc.cpus) limits.cpu = svc.cpus;
  if (svc.memory) limits.memory = svc.memory;
  if (Object.keys(limits).length > 0) container.resources = { limits };
  const sc: Obj = {};
  if (svc.privileged) sc.privileged = true;
  const caps = (l: string[]) => l.map((c) => c.toUpperCase().replace(/^CAP_/, ""));
  if (svc.capAdd.length || svc.capDrop.length) {
    sc.capabilities = {
      ...(svc.capAdd.length ? { add: caps(svc.capAdd) } : {}),
      ...(svc.capDrop.length ? { drop: caps(svc.capDrop) } : {}),
    };
  }
  if (svc.user?.uid !== undefined) sc.runAsUser = svc.user.uid;
  if (svc.user?.gid !== undefined) sc.runAsGroup = svc.user.gid;
  else if (svc.user?.uid !== undefined && !svc.user.name) sc.runAsGroup = 0;
  if (svc.user?.name || svc.user?.group) {
    fail(
      s,
      ["user"],
      "a Pod takes numeric ids (runAsUser/runAsGroup): write `user: UID[:GID]` (see the image's /etc/passwd)",
    );
  }
  if (svc.readOnly) sc.readOnlyRootFilesystem = true;
  if (Object.keys(sc).length > 0) container.securityContext = sc;
  if (svc.tty) container.tty = true;
  if (svc.stopSignal && svc.stopSignal !== "SIGTERM") {
    container.lifecycle = { stopSignal: svc.stopSignal }; // Kubernetes 1.33+ ContainerStopSignals
  }
  if (svc.healthcheck) {
    const h = svc.healthcheck;
    const probe = {
      exec: { command: h.test },
      periodSeconds: seconds(h.intervalMs),
      timeoutSeconds: seconds(h.timeoutMs),
      failureThreshold: Math.max(1, h.retries),
      ...(h.startPeriodMs > 0 ? { initialDelaySeconds: Math.ceil(h.startPeriodMs / 1000) } : {}),
    };
    container.readinessProbe = probe;
    container.livenessProbe = probe;
  }
  if (mounts.length > 0) container.volumeMounts = mounts;
  if (svc.hooks.postStart || svc.hooks.preStop) {
    container.lifecycle = {
      ...(svc.hooks.postStart ? { postStart: { exec: { command: svc.hooks.postStart } } } : {}),
      ...(svc.hooks.preStop ? { preStop: { exec: { command: svc.hooks.preStop } } } : {}),
    };
  }
  return container;
}

/** Warnings for what a Pod cannot carry. */
function warnDropped(cv: ServiceConversion): void {
  const { svc, warn } = cv;
  const s = svc.name;
  for (
    const [key, why] of [
      ["shm_size", "no Pod field sets /dev/shm's size; dropped"],
      ["ulimits", "no Pod field sets rlimits; dropped"],
    ] as const
  ) {
    if ((key === "shm_size" && svc.shmSize) || (key === "ulimits" && svc.ulimits.length)) {
      warn(s, [key], why);
    }
  }
  if (svc.links.some((l) => l.alias !== l.service)) {
    warn(
      s,
      ["links"],
      "link aliases have no Pod equivalent (service names still resolve); dropped",
    );
  }
  if (Object.keys(svc.securityOpt).length > 0) {
    warn(s, ["security_opt"], "not carried into the Pod's securityContext; dropped");
  }
  if (svc.mounts.some((m) => m.owner)) {
    warn(s, [], "configs/secrets uid, gid and mode are not carried into the Pod; dropped");
  }
  if (svc.init) {
    warn(s, ["init"], "no Pod field runs an init in front of the process; dropped");
  }
  svc.ports.forEach((p) => {
    if (p.hostPortEnd !== undefined) {
      warn(
        s,
        ["ports"],
        `host port range ${p.hostPort}-${p.hostPortEnd}: a Pod names one hostPort; ${p.hostPort} is used`,
      );
    }
  });
  if (Object.keys(svc.sysctls).length > 0) {
    warn(s, ["sysctls"], "moved to spec.securityContext.sysctls, which rkl pods do not apply");
  }
}

/** depends_on: init containers that wait for the dependency's name (and port). */
function waitInits(cv: ServiceConversion): Obj[] {
  const { svc, byName, warn } = cv;
  const s = svc.name;
  const inits: Obj[] = [];
  svc.dependsOn.forEach((d, i) => {
    const dep = byName.get(d.service);
    if (!dep) return; // a disabled (profile) dependency
    if (d.condition === "service_completed_successfully") {
      warn(
        s,
        ["depends_on", d.service],
        `condition service_completed_successfully on ${d.service}: a Pod cannot watch another pod finish; it waits for ${d.service} to exist instead`,
      );
    }
    const port = dep.ports[0]?.containerPort;
    const name = dnsName(d.service);
    const check = port !== undefined && d.condition === "service_healthy"
      ? `nc -w 1 ${name} ${port} </dev/null`
      : `grep -qw ${name} /etc/hosts || nslookup ${name} >/dev/null 2>&1`;
    inits.push({
      name: dnsName(`wait-for-${d.service}`).slice(0, 63),
      image: svc.image,
      command: [
        "sh",
        "-c",
        literal(`until ${check}; do echo waiting for ${name}; sleep 1; done`),
      ],
    });
    void i;
  });

  return inits;
}

/** Labels Kubernetes takes as labels; the others as annotations. */
function labelsOf(cv: ServiceConversion): { labels: Obj; annotations: Obj } {
  const { project, svc } = cv;
  const s = svc.name;
  const labels: Obj = {
    "com.docker.compose.project": dnsName(project.name),
    "com.docker.compose.service": dnsName(s),
  };
  const annotations: Obj = {};
  for (const [k, v] of Object.entries(svc.labels)) {
    if (LABEL_KEY.test(k) && LABEL_VALUE.test(v) && v.length <= 63) labels[k] = v;
    else annotations[k] = v;
  }
  return { labels, annotations };
}

/** --workloads: claims, a Deployment and (with ports) a Service. */
function workloadObjects(
  cv: ServiceConversion,
  p: { labels: Obj; annotations: Obj; claims: string[]; podSpec: (hostname: string) => Obj },
): Obj[] {
  const { svc } = cv;
  const { labels, annotations, claims, podSpec } = p;
  const s = svc.name;
  const objects: Obj[] = [];
  const selector = {
    "com.docker.compose.project": labels["com.docker.compose.project"],
    "com.docker.compose.service": labels["com.docker.compose.service"],
  };
  for (const claim of claims) {
    objects.push({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claim },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    });
  }
  objects.push({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: dnsName(s), labels },
    spec: {
      replicas: svc.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels, ...(Object.keys(annotations).length ? { annotations } : {}) },
        spec: podSpec(dnsName(s)),
      },
    },
  });
  if (svc.ports.length > 0) {
    objects.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: dnsName(s), labels },
      spec: {
        selector,
        ports: svc.ports.map((p) => ({
          name: `${p.protocol}-${p.containerPort}`,
          port: p.hostPort || p.containerPort,
          targetPort: p.containerPort,
          ...(p.protocol === "udp" ? { protocol: "UDP" } : {}),
        })),
      },
    });
  }
  return objects;
}

/** One Pod per replica, each in the project's hosts group. */
function podObjects(
  cv: ServiceConversion,
  p: { labels: Obj; annotations: Obj; podSpec: (hostname: string) => Obj },
): Obj[] {
  const { project, svc, fail } = cv;
  const { labels, annotations, podSpec } = p;
  const s = svc.name;
  const objects: Obj[] = [];
  const names = (pod: string) =>
    [
      ...new Set([
        s,
        pod,
        ...(svc.containerName ? [svc.containerName] : []),
        ...svc.networks.flatMap((n) => n.aliases),
      ]),
    ].join(",");

  for (let n = 1; n <= svc.replicas; n++) {
    const pod = containerName(project.name, svc, n);
    if (n > 1 && svc.ports.some((p) => p.hostPort)) {
      fail(
        s,
        ["ports"],
        `replica ${n} would publish the same host ports: drop the host side or the replicas`,
      );
    }
    objects.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: pod,
        labels,
        annotations: {
          ...annotations,
          [HOSTS_GROUP]: dnsName(project.name),
          [HOSTS_NAMES]: names(pod),
        },
      },
      spec: podSpec(pod),
    });
  }
  return objects;
}
