/**
 * `rkl generate kube NAME…`: Pod YAML for what runs, read from the records
 * and each container's config.json (what the runtime was given), not from
 * the file it came from, which may have changed since. `rkl pod run` of the
 * output recreates the pod: same command lines, environment, working
 * directories, users, capabilities, limits, ports and volumes.
 *
 * A configMap/secret/downwardAPI volume is written out as a ConfigMap with
 * the files as they are; an emptyDir comes back empty.
 */
import { NotFoundError } from "../errors.ts";
import type { OciConfig } from "../oci/spec.ts";
import { DEFAULT_CAPS } from "../oci/generate.ts";
import { type ContainerRecord, getContainer } from "./container.ts";
import type { HostFs } from "../sys/fs.ts";
import { claimDir, type Host } from "./host.ts";
import type { PodRecord } from "./pod.ts";
import { HOSTS_GROUP, HOSTS_NAMES } from "../spec/names.ts";
import { LABEL_PROJECT, LABEL_SERVICE } from "./compose.ts";

type Obj = Record<string, unknown>;

/** Files rkl bind-mounts into every container. */
const ETC = new Set(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);

function readConfig(host: Host, rec: ContainerRecord): OciConfig {
  return JSON.parse(host.fs.readTextFile(rec.dirs.config)) as OciConfig;
}

interface VolumeCollector {
  volumes: Obj[];
  objects: Obj[];
  byPath: Map<string, string>;
}

function listFiles(
  fs: HostFs,
  dir: string,
  prefix = "",
): { path: string; full: string; mode: number }[] {
  const out: { path: string; full: string; mode: number }[] = [];
  for (const e of fs.readDir(dir)) {
    const full = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...listFiles(fs, full, `${prefix}${e.name}/`));
    else if (e.isFile) {
      out.push({ path: `${prefix}${e.name}`, full, mode: fs.stat(full).mode! & 0o777 });
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** The volume a bind mount's source is, named once per source. */
function volumeFor(
  host: Host,
  source: string,
  pod: PodRecord | undefined,
  c: VolumeCollector,
): string {
  const known = c.byPath.get(source);
  if (known) return known;
  const name = `vol-${c.volumes.length}`;
  c.byPath.set(source, name);
  const podVolume = pod && Object.entries(pod.emptyDirs).find(([, dir]) => dir === source)?.[0];
  const claim = source.startsWith(`${host.paths.root}/volumes/pvc-`)
    ? source.slice(`${host.paths.root}/volumes/pvc-`.length)
    : undefined;
  if (claim && claimDir(host.paths, claim) === source) {
    c.volumes.push({ name, persistentVolumeClaim: { claimName: claim } });
  } else if (podVolume && pod) {
    // An emptyDir is world-writable (0777); a files volume is what rkl wrote.
    const mode = host.fs.stat(source).mode! & 0o777;
    if (mode === 0o777) c.volumes.push({ name, emptyDir: {} });
    else {
      const cm = `${pod.name}-${podVolume}`.slice(0, 63).replace(/-+$/, "");
      const files = listFiles(host.fs, source);
      const key = (p: string) => p.replace(/[^-._a-zA-Z0-9]/g, "_");
      c.objects.push({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: cm },
        binaryData: Object.fromEntries(
          files.map((f) => [key(f.path), btoa(String.fromCharCode(...host.fs.readFile(f.full)))]),
        ),
      });
      c.volumes.push({
        name,
        configMap: {
          name: cm,
          items: files.map((f) => ({ key: key(f.path), path: f.path, mode: f.mode })),
        },
      });
    }
  } else {
    c.volumes.push({ name, hostPath: { path: source } });
  }
  return name;
}

function containerYaml(
  host: Host,
  rec: ContainerRecord,
  name: string,
  pod: PodRecord | undefined,
  vols: VolumeCollector,
): Obj {
  const cfg = readConfig(host, rec);
  const p = cfg.process;
  // Written as run: `$` doubled so that Kubernetes' `$(VAR)` expansion leaves it as it is.
  const out: Obj = { name, image: rec.image, command: p.args.map((a) => a.split("$").join("$$")) };
  const env = (p.env ?? []).map((kv) => {
    const i = kv.indexOf("=");
    return { name: kv.slice(0, i), value: kv.slice(i + 1).split("$").join("$$") };
  }).filter((e) => e.name !== "HOSTNAME" && !(p.terminal && e.name === "TERM"));
  if (env.length > 0) out.env = env;
  if (p.cwd && p.cwd !== "/") out.workingDir = p.cwd;
  const sc: Obj = {};
  if (p.user.uid !== 0) sc.runAsUser = p.user.uid;
  if (p.user.gid !== 0 || p.user.uid !== 0) sc.runAsGroup = p.user.gid;
  const caps = p.capabilities?.bounding ?? [];
  const add = caps.filter((x) => !DEFAULT_CAPS.includes(x)).map((x) => x.slice(4));
  const drop = DEFAULT_CAPS.filter((x) => !caps.includes(x)).map((x) => x.slice(4));
  if (add.length > 30) sc.privileged = true;
  else if (add.length || drop.length) {
    sc.capabilities = { ...(add.length ? { add } : {}), ...(drop.length ? { drop } : {}) };
  }
  if (cfg.root.readonly) sc.readOnlyRootFilesystem = true;
  if (p.noNewPrivileges) sc.allowPrivilegeEscalation = false;
  if (Object.keys(sc).length > 0) out.securityContext = sc;
  if (p.terminal) out.tty = true;
  if (rec.hooks?.postStart || rec.hooks?.preStop || rec.stopSignal) {
    out.lifecycle = {
      ...(rec.hooks?.postStart ? { postStart: rec.hooks.postStart } : {}),
      ...(rec.hooks?.preStop ? { preStop: rec.hooks.preStop } : {}),
      ...(rec.stopSignal && rec.stopSignal !== "SIGTERM" ? { stopSignal: rec.stopSignal } : {}),
    };
  }
  const limits: Obj = {};
  const requests: Obj = {};
  const l = rec.limits;
  if (l.cpuQuota && l.cpuPeriod) limits.cpu = `${Math.round((l.cpuQuota / l.cpuPeriod) * 1000)}m`;
  if (l.memoryLimit) limits.memory = String(l.memoryLimit);
  if (l.cpuShares && l.cpuShares !== 2 && l.cpuShares !== 1024) {
    requests.cpu = `${Math.round((l.cpuShares * 1000) / 1024)}m`;
  }
  if (Object.keys(limits).length || Object.keys(requests).length) {
    out.resources = {
      ...(Object.keys(limits).length ? { limits } : {}),
      ...(Object.keys(requests).length ? { requests } : {}),
    };
  }
  const mounts: Obj[] = [];
  const defaults = new Set([
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
  ]);
  cfg.mounts.forEach((m, i) => {
    if (m.type === "tmpfs" && !defaults.has(m.destination)) {
      // A compose tmpfs: a memory-backed emptyDir, its size the limit.
      const size = m.options?.find((o) => o.startsWith("size="))?.slice(5);
      const vol = `vol-${vols.volumes.length}`;
      vols.volumes.push({
        name: vol,
        emptyDir: { medium: "Memory", ...(size ? { sizeLimit: size } : {}) },
      });
      mounts.push({ name: vol, mountPath: m.destination });
      return;
    }
    if (m.type !== "bind" || ETC.has(m.destination) || defaults.has(m.destination)) return;
    const staged = rec.subPaths?.find((s) => s.mount === i - firstSpecMount(cfg));
    const source = staged ? staged.root : m.source ?? "";
    const composeDir = `${host.paths.root}/compose/`;
    if (!staged && source.startsWith(composeDir)) {
      // A compose config, secret or anonymous volume: it goes with `down`, so it is carried here.
      const rest = source.slice(composeDir.length).split("/");
      const vol = `vol-${vols.volumes.length}`;
      if (rest[1] === "anon") {
        vols.volumes.push({ name: vol, emptyDir: {} });
        mounts.push({ name: vol, mountPath: m.destination });
        return;
      }
      const key = rest[rest.length - 1].replace(/[^-._a-zA-Z0-9]/g, "_");
      const cm = `${rest[0]}-${rest[1]}-${key}`.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(
        0,
        63,
      )
        .replace(/-+$/, "");
      if (!vols.objects.some((o) => (o.metadata as Obj).name === cm)) {
        vols.objects.push({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: cm },
          binaryData: { [key]: btoa(String.fromCharCode(...host.fs.readFile(source))) },
        });
      }
      const mode = host.fs.stat(source).mode! & 0o777;
      vols.volumes.push({ name: vol, configMap: { name: cm, items: [{ key, path: key, mode }] } });
      mounts.push({ name: vol, mountPath: m.destination, subPath: key, readOnly: true });
      return;
    }
    const vol = volumeFor(host, source, pod, vols);
    mounts.push({
      name: vol,
      mountPath: m.destination,
      ...(staged ? { subPath: staged.subPath } : {}),
      ...((m.options ?? []).includes("ro") ? { readOnly: true } : {}),
    });
  });
  if (mounts.length > 0) out.volumeMounts = mounts;
  const mappings = pod ? [] : rec.network?.portMappings ?? [];
  if (mappings.length > 0) {
    out.ports = mappings.map((m) => ({
      containerPort: m.containerPort,
      hostPort: m.hostPort,
      ...(m.protocol === "udp" ? { protocol: "UDP" } : {}),
    }));
  }
  return out;
}

/** Index in config.mounts of the spec's first mount (after the defaults and /etc files). */
function firstSpecMount(cfg: OciConfig): number {
  let last = -1;
  cfg.mounts.forEach((m, i) => {
    if (ETC.has(m.destination)) last = i;
  });
  return last + 1;
}

/** The hostAliases section rkl wrote into a pod's /etc/hosts. */
function hostAliasesOf(host: Host, path: string): { ip: string; hostnames: string[] }[] {
  let text = "";
  try {
    text = host.fs.readTextFile(path);
  } catch {
    return [];
  }
  const start = text.indexOf("# Entries added by HostAliases.\n");
  if (start < 0) return [];
  const out: { ip: string; hostnames: string[] }[] = [];
  for (const line of text.slice(start).split("\n").slice(1)) {
    if (!line || line.startsWith("#")) break;
    const [ip, ...hostnames] = line.split(/\s+/).filter(Boolean);
    if (ip && hostnames.length) out.push({ ip, hostnames });
  }
  return out;
}

function podYaml(host: Host, pod: PodRecord): Obj[] {
  const vols: VolumeCollector = { volumes: [], objects: [], byPath: new Map() };
  const sidecars = new Set(pod.sidecars ?? []);
  const member = (m: string) => m.slice(pod.name.length + 1);
  const inits = pod.initContainers.map((m) => {
    const c = containerYaml(host, getContainer(host, m), member(m), pod, vols);
    return sidecars.has(m) ? { ...c, restartPolicy: "Always" } : c;
  });
  const containers = pod.containers.map((m) =>
    containerYaml(host, getContainer(host, m), member(m), pod, vols)
  );
  const ports = pod.network?.portMappings ?? [];
  if (ports.length > 0 && containers.length > 0) {
    // Published per pod: given to the first container that lists none.
    containers[0].ports = ports.map((m) => ({
      containerPort: m.containerPort,
      hostPort: m.hostPort,
      ...(m.protocol === "udp" ? { protocol: "UDP" } : {}),
    }));
  }
  // Pod-level fields the members carry.
  const groups = new Set<number>();
  for (const m of [...pod.initContainers, ...pod.containers]) {
    for (const g of readConfig(host, getContainer(host, m)).process.user.additionalGids ?? []) {
      groups.add(g);
    }
  }
  // fsGroup: the group rkl gave the pod's own volume dirs.
  let fsGroup: number | undefined;
  for (const dir of Object.values(pod.emptyDirs)) {
    try {
      const gid = host.fs.stat(dir).gid;
      if (gid) fsGroup = gid;
    } catch { /* gone */ }
  }
  if (fsGroup !== undefined) groups.delete(fsGroup);
  const podSc: Obj = {
    ...(fsGroup !== undefined ? { fsGroup } : {}),
    ...(groups.size ? { supplementalGroups: [...groups] } : {}),
  };
  const aliases = hostAliasesOf(host, `${pod.dirs.etc}/hosts`);
  const sum = (k: "cpuQuota" | "memoryLimit") =>
    pod.containers.reduce((n, m) => n + (getContainer(host, m).limits[k] ?? NaN), 0);
  const podResources: Obj = {};
  if (pod.limits.cpuQuota && pod.limits.cpuQuota !== sum("cpuQuota")) {
    podResources.cpu = `${
      Math.round((pod.limits.cpuQuota / (pod.limits.cpuPeriod ?? 100_000)) * 1000)
    }m`;
  }
  if (pod.limits.memoryLimit && pod.limits.memoryLimit !== sum("memoryLimit")) {
    podResources.memory = String(pod.limits.memoryLimit);
  }
  return [...vols.objects, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      ...(Object.keys(pod.labels).length ? { labels: pod.labels } : {}),
      ...(Object.keys(pod.annotations).length ? { annotations: pod.annotations } : {}),
    },
    spec: {
      ...(pod.hostNetwork ? { hostNetwork: true } : {}),
      ...(pod.shareProcessNamespace ? { shareProcessNamespace: true } : {}),
      hostname: pod.hostname,
      ...(Object.keys(podSc).length ? { securityContext: podSc } : {}),
      ...(aliases.length ? { hostAliases: aliases } : {}),
      ...(Object.keys(podResources).length ? { resources: { limits: podResources } } : {}),
      ...(inits.length ? { initContainers: inits } : {}),
      containers,
      restartPolicy: pod.restartPolicy,
      terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
      ...(vols.volumes.length ? { volumes: vols.volumes } : {}),
    },
  }];
}

function containerPod(host: Host, rec: ContainerRecord, group?: string): Obj[] {
  const vols: VolumeCollector = { volumes: [], objects: [], byPath: new Map() };
  const c = containerYaml(host, rec, rec.name.replace(/[^a-z0-9-]/g, "-"), undefined, vols);
  const hostname = readConfig(host, rec).hostname ?? rec.name;
  const annotations: Obj = group
    ? {
      [HOSTS_GROUP]: group,
      [HOSTS_NAMES]: [rec.labels[LABEL_SERVICE], rec.name].filter(Boolean).join(","),
    }
    : {};
  return [...vols.objects, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: rec.name,
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: {
      ...(rec.hostNetwork ? { hostNetwork: true } : {}),
      hostname,
      containers: [c],
      restartPolicy: "Never",
      ...(vols.volumes.length ? { volumes: vols.volumes } : {}),
    },
  }];
}

/** Objects for each name: a pod, a container, or a compose project (a pod per container). */
export function generateKube(host: Host, names: string[]): Obj[] {
  const out: Obj[] = [];
  for (const n of names) {
    const pod = host.store.get<PodRecord>("pods", n);
    if (pod) {
      out.push(...podYaml(host, pod));
      continue;
    }
    const project = host.store.list<ContainerRecord>("containers").filter((c) =>
      !c.pod && c.labels[LABEL_PROJECT] === n
    );
    if (host.store.get("compose", n) && project.length > 0) {
      for (const c of project.sort((a, b) => a.name.localeCompare(b.name))) {
        out.push(...containerPod(host, c, n));
      }
      continue;
    }
    const c = host.store.get<ContainerRecord>("containers", n);
    if (c && !c.pod) {
      out.push(...containerPod(host, c));
      continue;
    }
    throw new NotFoundError(
      `Cannot generate ${JSON.stringify(n)}: no pod, container or compose project has this name`,
    );
  }
  return out;
}
