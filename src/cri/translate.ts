/**
 * CRI requests → rkl's core request types. Pure: no I/O, so every rule is
 * unit-tested. A bad field becomes INVALID_ARGUMENT naming the field by its
 * proto path (`config.mounts[1].host_path`), the gRPC counterpart of the
 * file:line the YAML front end gives.
 */
import type {
  ContainerSpec,
  DeviceSpec,
  LoadedContainer,
  ResolvedMount,
} from "../spec/container.ts";
import type { CriMount } from "./metadata.ts";
import type { LoadedPod, PodSpec } from "../spec/pod.ts";
import type { PortMapping } from "../net/cni.ts";
import { invalid, type Message } from "./grpc.ts";
import { CONTAINER_FIELDS, requestSource, SANDBOX_FIELDS } from "./fields.ts";
import {
  CONTROL_CHARS,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  envNameError,
  escapeControl,
  qualifiedNameError,
} from "../spec/names.ts";

/** The CRI's NamespaceMode. */
export const NS = { POD: "POD", CONTAINER: "CONTAINER", NODE: "NODE", TARGET: "TARGET" };

const SEGMENT = /^[A-Za-z0-9_.:@-]+$/;

/** A cgroup parent as the kubelet's cgroupfs driver gives it (`/kubepods/besteffort/podUID`). */
export function cgroupParentOf(text: string, field: string): string | undefined {
  if (!text) return undefined;
  const parts = text.split("/").filter((p) => p !== "");
  if (parts.length === 0 || parts.some((p) => p === "." || p === ".." || !SEGMENT.test(p))) {
    throw invalid(`${field}: ${JSON.stringify(text)} is not a cgroup path`);
  }
  if (parts.some((p) => p.endsWith(".slice"))) {
    throw invalid(`${field}: ${JSON.stringify(text)} is a systemd slice; rkl's driver is cgroupfs`);
  }
  return parts.join("/");
}

function ports(list: Message[]): PortMapping[] {
  return list.map((p, i) => {
    const at = `config.port_mappings[${i}]`;
    if (p.protocol === "SCTP") throw invalid(`${at}.protocol: SCTP is not supported`);
    const hostPort = Number(p.host_port);
    const containerPort = Number(p.container_port);
    if (!(containerPort >= 1 && containerPort <= 65535)) {
      throw invalid(`${at}.container_port: ${p.container_port} is not a port`);
    }
    if (!(hostPort >= 0 && hostPort <= 65535)) {
      throw invalid(`${at}.host_port: ${p.host_port} is not a port`);
    }
    return {
      hostPort,
      containerPort,
      protocol: p.protocol === "UDP" ? "udp" : "tcp",
      ...(p.host_ip ? { hostIP: p.host_ip } : {}),
    } as PortMapping;
  }).filter((m) => m.hostPort > 0);
}

/** DNS labels joined by dots, an optional trailing dot. */
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$/;

/** A DNS label made of a name: lower case, other characters as '-', at most 63. */
export function labelFrom(name: string): string {
  const l = name.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63).replace(/^-+|-+$/g, "");
  return l || "pod";
}

/**
 * A CRI name or namespace, checked as the API server checks a pod's (a
 * DNS-1123 subdomain, a namespace a DNS-1123 label), except that upper case
 * passes: critest names its sandboxes "NamespaceOption-PodSandbox-…". What
 * matters here is that no newline or escape reaches a record or a table.
 */
function criName(field: string, s: string, max: 63 | 253): void {
  const rule = max === 63 ? DNS1123_LABEL : DNS1123_SUBDOMAIN;
  if (s.length <= max && rule.test(s.toLowerCase())) return;
  throw invalid(
    `${field}: ${escapeControl(JSON.stringify(s))} is not a DNS-1123 ${
      max === 63 ? "label" : "subdomain"
    } (letters, digits, '-'${
      max === 63 ? "" : " and '.'"
    }, starting and ending with a letter or digit, at most ${max} characters)`,
  );
}

/**
 * Labels and annotations as the kubelet sends them: keys are qualified names,
 * label values hold no control character (the kubelet adds values longer than
 * a label's 63, such as pod names), annotation values are free.
 */
function criMetadataMaps(config: Message): void {
  for (const [kind, map] of [["labels", config.labels], ["annotations", config.annotations]]) {
    for (const [k, v] of Object.entries((map ?? {}) as Record<string, string>)) {
      const bad = qualifiedNameError(kind === "labels" ? k : k.toLowerCase()) ??
        (kind === "labels" && CONTROL_CHARS.test(v)
          ? `value ${escapeControl(JSON.stringify(v))} has control characters`
          : undefined);
      if (bad) throw invalid(`config.${kind}[${escapeControl(JSON.stringify(k))}]: ${bad}`);
    }
  }
}

/** RunPodSandbox's config → a pod with no containers yet (they come by CreateContainer). */
export function sandboxPod(id: string, config: Message): LoadedPod {
  const md = config.metadata;
  if (!md || !md.name) throw invalid("config.metadata.name: must be set");
  if (!md.namespace) throw invalid("config.metadata.namespace: must be set");
  if (!md.uid) throw invalid("config.metadata.uid: must be set");
  criName("config.metadata.name", md.name, 253);
  criName("config.metadata.namespace", md.namespace, 63);
  if (md.uid.length > 253 || CONTROL_CHARS.test(md.uid)) {
    throw invalid(`config.metadata.uid: ${escapeControl(JSON.stringify(md.uid))} is not a uid`);
  }
  criMetadataMaps(config);
  const linux = config.linux ?? {};
  const sc = linux.security_context ?? {};
  const nso = sc.namespace_options ?? {};
  const hostNetwork = nso.network === NS.NODE;
  // A hostname given must be a DNS name the kernel takes (64 bytes at most):
  // the kubelet sends FQDNs too (setHostnameAsFQDN, with a trailing dot when
  // its cluster domain is empty; a hostnameOverride subdomain). Without one
  // the pod's name is made into a label. On the host network the UTS
  // namespace is the host's anyway.
  const hostname = config.hostname || labelFrom(md.name);
  if (hostname.length > 64 || !HOSTNAME.test(hostname)) {
    throw invalid(
      `config.hostname: ${JSON.stringify(hostname)} is not a DNS name of 64 bytes at most`,
    );
  }
  const dns = config.dns_config;
  const parent = cgroupParentOf(linux.cgroup_parent ?? "", "config.linux.cgroup_parent");
  const spec: PodSpec = {
    name: id,
    namespace: md.namespace,
    labels: { ...config.labels },
    annotations: { ...config.annotations },
    containers: [],
    initContainers: [],
    // The kubelet restarts containers itself: rkl must not.
    restartPolicy: "Never",
    hostNetwork,
    shareProcessNamespace: nso.pid === NS.POD,
    hostPID: nso.pid === NS.NODE,
    hostIPC: nso.ipc === NS.NODE,
    hostname,
    terminationGracePeriodSeconds: 0,
    emptyDirs: [],
    fileVolumes: {},
    claims: [],
    hostAliases: [],
    uid: md.uid,
    dns: dns && (dns.servers.length + dns.searches.length + dns.options.length > 0)
      ? { servers: dns.servers, searches: dns.searches, options: dns.options }
      : undefined,
    portMappings: hostNetwork ? [] : ports(config.port_mappings ?? []),
    cgroupParent: parent ? `${parent}/${id}` : undefined,
  };
  return { spec, source: requestSource("RunPodSandbox", "config", SANDBOX_FIELDS), warnings: [] };
}

function int(v: unknown): number | undefined {
  if (v === null || v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** The kubelet's CPU period when it sets none (100 ms). */
const CPU_PERIOD = 100_000;

/** LinuxContainerResources → the spec's limits/requests (as quantities the generator reads). */
export function resourcesOf(r: Message | null | undefined): ContainerSpec["resources"] {
  if (!r) return {};
  const quota = int(r.cpu_quota) ?? 0;
  const period = int(r.cpu_period) || CPU_PERIOD;
  const shares = int(r.cpu_shares) ?? 0;
  const memory = int(r.memory_limit_in_bytes) ?? 0;
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (quota > 0) limits.cpu = `${Math.max(1, Math.round((quota * 1000) / period))}m`;
  if (memory > 0) limits.memory = String(memory);
  // shares = milli * 1024 / 1000, the kubelet's conversion, inverted.
  if (shares > 0) requests.cpu = `${Math.max(1, Math.round((shares * 1000) / 1024))}m`;
  return {
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(Object.keys(requests).length > 0 ? { requests } : {}),
  };
}

const PROPAGATION: Record<string, ResolvedMount["propagation"]> = {
  PROPAGATION_PRIVATE: "rprivate",
  PROPAGATION_HOST_TO_CONTAINER: "rslave",
  PROPAGATION_BIDIRECTIONAL: "rshared",
};

/**
 * A CRI Device: the host path must name a character or block device (a
 * symlink to one is followed, as /dev/disk/by-id names are); the node is
 * made at container_path with the host node's type, numbers and mode.
 */
export function deviceOf(d: Message, i: number): DeviceSpec {
  const field = `config.devices[${i}]`;
  const host = absolute(d.host_path ?? "", `${field}.host_path`);
  const path = absolute(d.container_path ?? "", `${field}.container_path`);
  const access = d.permissions || "rwm";
  if (!/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length) {
    throw invalid(`${field}.permissions: ${JSON.stringify(access)} is not some of "rwm"`);
  }
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(host);
  } catch {
    throw invalid(`${field}.host_path: ${host} does not exist`);
  }
  if (!st.isCharDevice && !st.isBlockDevice) {
    throw invalid(`${field}.host_path: ${host} is not a device`);
  }
  const rdev = BigInt(st.rdev ?? 0);
  // glibc's gnu_dev_major/minor.
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return {
    path,
    type: st.isCharDevice ? "c" : "b",
    major,
    minor,
    fileMode: (st.mode ?? 0o666) & 0o777,
    access,
  };
}

function absolute(path: string, field: string): string {
  if (!path.startsWith("/")) throw invalid(`${field}: ${JSON.stringify(path)} is not absolute`);
  if (path.split("/").includes("..")) throw invalid(`${field}: ${JSON.stringify(path)} has ".."`);
  return path;
}

function seccompOf(sc: Message, field: string) {
  const s = sc.seccomp;
  if (s && s.profile_type) {
    if (s.profile_type === "RuntimeDefault") return { type: "RuntimeDefault" as const };
    if (s.profile_type === "Unconfined") return { type: "Unconfined" as const };
    if (s.profile_type === "Localhost") {
      return {
        type: "Localhost" as const,
        localhostProfile: absolute(s.localhost_ref ?? "", `${field}.seccomp.localhost_ref`),
      };
    }
  }
  // The deprecated string form: "", "unconfined", "runtime/default", "localhost/PATH".
  const p: string = sc.seccomp_profile_path ?? "";
  if (p === "" || p === "unconfined") return { type: "Unconfined" as const };
  if (p === "runtime/default" || p === "docker/default") return { type: "RuntimeDefault" as const };
  if (p.startsWith("localhost/")) {
    return {
      type: "Localhost" as const,
      localhostProfile: absolute(p.slice(10), `${field}.seccomp_profile_path`),
    };
  }
  throw invalid(`${field}.seccomp_profile_path: ${JSON.stringify(p)} is not a profile`);
}

export interface ContainerRequest {
  loaded: LoadedContainer;
  /** Absolute log file, or undefined for rkl's own log dir. */
  logPath?: string;
  /** The mounts as asked for (ContainerStatus reports them). */
  mounts: CriMount[];
}

/**
 * CreateContainer's config → a container spec for the core. `image` is what
 * the image store resolved (an image id); `sysctls` come from the sandbox.
 */
export function containerRequest(
  config: Message,
  options: { image: string; logDirectory: string; sysctls?: Record<string, string> },
): ContainerRequest {
  const md = config.metadata;
  if (!md || !md.name) throw invalid("config.metadata.name: must be set");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/.test(md.name)) {
    throw invalid(
      `config.metadata.name: ${escapeControl(JSON.stringify(md.name))} is not a container name`,
    );
  }
  criMetadataMaps(config);
  const linux = config.linux ?? {};
  const sc = linux.security_context ?? {};
  const field = "config.linux.security_context";
  const nso = sc.namespace_options ?? {};
  // The sandbox decides POD/NODE; a container's own TARGET (ephemeral containers) is not done.
  if (nso.pid === NS.TARGET) {
    throw invalid(`${field}.namespace_options.pid: ${nso.pid} is not supported`);
  }
  const mounts: ResolvedMount[] = (config.mounts ?? []).map((m: Message, i: number) => ({
    source: absolute(m.host_path ?? "", `config.mounts[${i}].host_path`),
    destination: absolute(m.container_path ?? "", `config.mounts[${i}].container_path`),
    readOnly: !!m.readonly,
    kind: "hostPath" as const,
    hostPathType: "" as const,
    // containerd's CRI makes a missing host path a directory (MkdirAll, 0755) before the mount.
    createMissingDir: true,
    propagation: PROPAGATION[m.propagation] ?? "rprivate",
    path: ["mounts", i, "source"], // CONTAINER_FIELDS: config.mounts[i].host_path
  }));
  const devices = (config.devices ?? []).map((d: Message, i: number) => deviceOf(d, i));
  const caps = sc.capabilities ?? {};
  if (sc.run_as_group && !sc.run_as_user && !sc.run_as_username) {
    throw invalid(`${field}.run_as_group: needs run_as_user or run_as_username`);
  }
  const uid = sc.run_as_user ? int(sc.run_as_user.value) : undefined;
  const gid = sc.run_as_group ? int(sc.run_as_group.value) : undefined;
  const env = (config.envs ?? []).map((e: Message, i: number) => {
    if (!e.key) throw invalid(`config.envs[${i}].key: must be set`);
    const bad = envNameError(e.key);
    if (bad) throw invalid(`config.envs[${i}].key: ${bad}`);
    return { name: e.key, value: envValue(e.value) };
  });
  let logPath: string | undefined;
  if (config.log_path) {
    if (!options.logDirectory) {
      throw invalid("config.log_path: the sandbox has no log_directory");
    }
    const rel: string = config.log_path;
    if (rel.startsWith("/") || rel.split("/").some((p) => p === ".." || p === "")) {
      throw invalid(`config.log_path: ${JSON.stringify(rel)} must be relative, with no ".."`);
    }
    logPath = `${options.logDirectory.replace(/\/+$/, "")}/${rel}`;
  }
  const spec: ContainerSpec = {
    name: md.name,
    image: options.image,
    imagePullPolicy: "Never",
    command: config.command?.length ? [...config.command] : undefined,
    args: config.args?.length ? [...config.args] : undefined,
    env,
    workingDir: config.working_dir || undefined,
    ports: [],
    resources: resourcesOf(linux.resources),
    mounts,
    securityContext: {
      privileged: !!sc.privileged || undefined,
      capabilities: (caps.add_capabilities?.length || caps.drop_capabilities?.length)
        ? { add: [...caps.add_capabilities], drop: [...caps.drop_capabilities] }
        : undefined,
      runAsUser: uid,
      runAsGroup: gid,
      readOnlyRootFilesystem: !!sc.readonly_rootfs || undefined,
      allowPrivilegeEscalation: sc.no_new_privs ? false : undefined,
      seccompProfile: sc.privileged ? undefined : seccompOf(sc, field),
    },
    tty: !!config.tty,
    ...(devices.length > 0 ? { devices } : {}),
    ...(config.stdin ? { stdin: true, stdinOnce: !!config.stdin_once } : {}),
    labels: {},
    userNames: sc.run_as_username
      ? { user: sc.run_as_username, path: ["userNames"] } // CONTAINER_FIELDS: run_as_username
      : undefined,
    supplementalGroups: (sc.supplemental_groups ?? []).map(Number),
    sysctls: options.sysctls,
    // None given: rkl's defaults, never nothing (the safe reading of an empty list).
    maskedPaths: sc.masked_paths?.length ? [...sc.masked_paths] : undefined,
    readonlyPaths: sc.readonly_paths?.length ? [...sc.readonly_paths] : undefined,
  };
  return {
    loaded: {
      spec,
      source: requestSource("CreateContainer", "config", CONTAINER_FIELDS),
      warnings: [],
    },
    logPath,
    mounts: (config.mounts ?? []).map((m: Message) => ({
      container_path: m.container_path,
      host_path: m.host_path,
      readonly: !!m.readonly,
      propagation: m.propagation ?? "PROPAGATION_PRIVATE",
      ...(m.recursive_read_only ? { recursive_read_only: true } : {}),
    })),
  };
}

const utf8 = new TextDecoder();

/**
 * An env value: KeyValue.value is `bytes` in the CRI's proto (a string from a
 * caller that builds the object itself), read as UTF-8 as the kubelet writes it.
 */
export function envValue(v: unknown): string {
  if (v instanceof Uint8Array) return utf8.decode(v);
  return typeof v === "string" ? v : "";
}
