/**
 * ContainerSpec + host context → OCI config.json. Pure: every host fact it
 * needs (rlimit ceilings, paths, namespace files) comes in through the context.
 */
import type { ContainerSpec } from "../spec/container.ts";
import {
  CPU_PERIOD_US,
  milliCpuToQuota,
  milliCpuToShares,
  parseQuantity,
  quantityMilli,
  quantityValue,
} from "../spec/quantity.ts";
import type { OciConfig, OciMount, OciNamespace, OciResources } from "./spec.ts";
import { defaultSeccompProfile, type SeccompProfile } from "./seccomp.ts";
import { expandRefs, fieldValue, type PodInfo } from "../spec/downward.ts";

/** Tasks a container may have at once unless told otherwise (podman's default is 2048). */
export const DEFAULT_PIDS_LIMIT = 4096;

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The capability set runc and docker give a container by default. */
export const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9), for privileged containers. */
export const ALL_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
]; // deno-fmt-ignore

const MASKED_PATHS = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]; // deno-fmt-ignore
const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/** What a bundle's own config.json may supply, like an image config. */
export interface BundleDefaults {
  /** An image's Entrypoint (bundles have none: their args are the whole command). */
  entrypoint?: string[];
  /** The bundle's process.args, or an image's Cmd. */
  args?: string[];
  stopSignal?: string;
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
}

export interface GenerateContext {
  /** Absolute path of the container's root filesystem (its overlay view). */
  rootfs: string;
  /** `cgroupsPath` for the runtime, e.g. `/rkl/web`. */
  cgroupsPath: string;
  hostname: string;
  /** Files rkl wrote that are bind-mounted over the rootfs's. */
  etcFiles: { hosts: string; hostname: string; resolvConf: string };
  /** Namespace type → path to join; a type not listed gets a new namespace; `host` keeps the host's. */
  joinNamespaces?: Partial<Record<OciNamespace["type"], string | "host">>;
  /** Hard RLIMIT_NOFILE of this process: the container must not ask for more. */
  nofileHard: number;
  bundle: BundleDefaults;
  annotations?: Record<string, string>;
  /** The profile of a `Localhost` seccompProfile, read by the caller. */
  localhostSeccomp?: SeccompProfile;
  /** Architecture for the default seccomp profile (default: this one's). */
  arch?: string;
  /** linux.resources.pids.limit; 0 for none. Default {@linkcode DEFAULT_PIDS_LIMIT}. */
  pidsLimit?: number;
  /** The pod's downward-API fields, for env entries with a fieldRef. */
  podInfo?: PodInfo;
  /** What privileged and `add: [ALL]` mean (default: this process's bounding set). */
  availableCaps?: readonly string[];
}

let bounding: readonly string[] | undefined;

/**
 * The capabilities this process can hand on: its bounding set (CapBnd in
 * /proc/self/status). A container asking for one outside it fails capset,
 * so "all" means these (a host without CAP_SYS_RESOURCE, say).
 */
export function hostBoundingCaps(): readonly string[] {
  if (bounding) return bounding;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) {
      const mask = BigInt(`0x${m[1]}`);
      return bounding = ALL_CAPS.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
    }
  } catch { /* not Linux, or no /proc */ }
  return bounding = ALL_CAPS;
}

/** The seccomp profile a container gets: none when privileged or Unconfined. */
export function seccompFor(
  sc: ContainerSpec["securityContext"],
  caps: string[],
  ctx: Pick<GenerateContext, "localhostSeccomp" | "arch">,
): SeccompProfile | undefined {
  if (sc.privileged) return undefined; // as docker: privileged means unconfined
  switch (sc.seccompProfile?.type ?? "RuntimeDefault") {
    case "Unconfined":
      return undefined;
    case "Localhost":
      if (!ctx.localhostSeccomp) {
        throw new TypeError("seccompProfile Localhost: the caller did not read the profile");
      }
      return ctx.localhostSeccomp;
    default:
      return defaultSeccompProfile(caps, ctx.arch);
  }
}

/** Soft/hard NOFILE rkl asks for: 1048576 where the host allows, never above its hard limit. */
export function nofileLimit(hostHard: number): number {
  return Math.min(1_048_576, hostHard);
}

function normalizeCap(c: string): string {
  const up = c.toUpperCase();
  return up.startsWith("CAP_") ? up : `CAP_${up}`;
}

export function capabilitySet(
  sc: ContainerSpec["securityContext"],
  available: readonly string[] = ALL_CAPS,
): string[] {
  if (sc.privileged) return [...available];
  const drop = (sc.capabilities?.drop ?? []).map(normalizeCap);
  const add = (sc.capabilities?.add ?? []).map(normalizeCap);
  let caps = drop.includes("CAP_ALL") ? [] : DEFAULT_CAPS.filter((c) => !drop.includes(c));
  if (add.includes("CAP_ALL")) caps = [...available];
  for (const c of add) if (c !== "CAP_ALL" && !caps.includes(c)) caps.push(c);
  return caps;
}

/** The command line: `command` replaces the bundle's args; `args` alone replace them too. */
export function processArgs(spec: ContainerSpec, bundle: BundleDefaults): string[] | undefined {
  if (spec.command && spec.command.length > 0) return [...spec.command, ...(spec.args ?? [])];
  // Kubernetes' rules: args alone keep the image's Entrypoint and replace its Cmd.
  const entrypoint = bundle.entrypoint ?? [];
  if (spec.args && spec.args.length > 0) return [...entrypoint, ...spec.args];
  const all = [...entrypoint, ...(bundle.args ?? [])];
  return all.length > 0 ? all : undefined;
}

/** Limits and requests → OCI linux.resources, the kubelet's way. */
export function ociResources(r: ContainerSpec["resources"]): OciResources {
  const out: OciResources = { devices: [{ allow: false, access: "rwm" }] };
  const cpuLimit = r.limits?.cpu;
  const cpuRequest = r.requests?.cpu ?? cpuLimit;
  if (cpuLimit !== undefined || cpuRequest !== undefined) {
    out.cpu = {};
    if (cpuLimit !== undefined) {
      const milli = Number(quantityMilli(parseQuantity(cpuLimit)));
      if (milli > 0) {
        out.cpu.quota = milliCpuToQuota(milli);
        out.cpu.period = CPU_PERIOD_US;
      }
    }
    if (cpuRequest !== undefined) {
      out.cpu.shares = milliCpuToShares(Number(quantityMilli(parseQuantity(cpuRequest))));
    }
  }
  const mem = r.limits?.memory;
  if (mem !== undefined) {
    const bytes = Number(quantityValue(parseQuantity(mem)));
    if (bytes > 0) out.memory = { limit: bytes };
  }
  return out;
}

export function defaultMounts(privileged: boolean, shmBytes = 64 * 1024 * 1024): OciMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", `size=${Math.ceil(shmBytes / 1024)}k`],
    },
    {
      destination: "/dev/mqueue",
      type: "mqueue",
      source: "mqueue",
      options: ["nosuid", "noexec", "nodev"],
    },
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: ["nosuid", "noexec", "nodev", privileged ? "rw" : "ro"],
    },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"],
    },
  ];
}

/** Where `init` is mounted: docker's path for its own init, so scripts that look for it find it. */
export const INIT_PATH = "/sbin/docker-init";

export function generateConfig(spec: ContainerSpec, ctx: GenerateContext): OciConfig {
  let args = processArgs(spec, ctx.bundle);
  if (!args) {
    throw new TypeError(
      "no command: the spec sets neither command nor args and the bundle has none",
    );
  }
  const sc = spec.securityContext;
  const envMap = new Map<string, string>();
  for (const kv of ctx.bundle.env ?? [`PATH=${DEFAULT_PATH}`]) {
    const i = kv.indexOf("=");
    if (i > 0) envMap.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!envMap.has("PATH")) envMap.set("PATH", DEFAULT_PATH);
  envMap.set("HOSTNAME", ctx.hostname);
  if (spec.tty) envMap.set("TERM", "xterm");
  // The spec's own variables, in order: `$(VAR)` sees those defined before it.
  const specVars = new Map<string, string>();
  for (const e of spec.env) {
    let v: string;
    if (e.fieldRef !== undefined) {
      if (!ctx.podInfo) throw new TypeError(`env ${e.name}: fieldRef outside a pod`);
      v = fieldValue(e.fieldRef, ctx.podInfo);
    } else v = e.expand ? expandRefs(e.value ?? "", specVars) : e.value ?? "";
    specVars.set(e.name, v);
    envMap.set(e.name, v);
  }
  if (spec.kubernetes && (spec.command?.length || spec.args?.length)) {
    args = args.map((a) => expandRefs(a, specVars));
  }
  // docker --init: the init reaps zombies and forwards signals to the process.
  if (spec.init) args = [INIT_PATH, "--", ...args];

  const caps = capabilitySet(sc, ctx.availableCaps ?? hostBoundingCaps());
  const nofile = nofileLimit(ctx.nofileHard);
  const mounts = defaultMounts(sc.privileged ?? false, spec.shmSize);
  const bind = (
    destination: string,
    source: string,
    ro: boolean,
    propagation = "rprivate",
  ): OciMount => ({
    destination,
    type: "bind",
    source,
    options: ["rbind", propagation, ro ? "ro" : "rw"],
  });
  mounts.push(bind("/etc/hosts", ctx.etcFiles.hosts, false));
  mounts.push(bind("/etc/hostname", ctx.etcFiles.hostname, false));
  mounts.push(bind("/etc/resolv.conf", ctx.etcFiles.resolvConf, false));
  for (const m of spec.mounts) {
    if (m.kind === "tmpfs") {
      mounts.push({
        destination: m.destination,
        type: "tmpfs",
        source: "tmpfs",
        options: [...(m.tmpfsOptions ?? []), m.readOnly ? "ro" : "rw"],
      });
      continue;
    }
    const b = bind(m.destination, m.source, m.readOnly, m.propagation);
    // An image volume is read-only and noexec, as the kubelet mounts it.
    if (m.kind === "image") b.options!.push("nosuid", "nodev", "noexec");
    mounts.push(b);
  }
  if (spec.init) mounts.push(bind(INIT_PATH, spec.init, true));

  // cgroup: the container sees its own cgroup as the root of /sys/fs/cgroup.
  const order: OciNamespace["type"][] = ["pid", "network", "ipc", "uts", "mount", "cgroup"];
  const namespaces: OciNamespace[] = [];
  for (const type of order) {
    const join = ctx.joinNamespaces?.[type];
    if (join === "host") continue;
    namespaces.push(join ? { type, path: join } : { type });
  }

  const resources = ociResources(spec.resources);
  // The kubelet's minimum: a container without a CPU request gets 2 shares.
  if (spec.kubernetes && resources.cpu?.shares === undefined) {
    resources.cpu = { ...resources.cpu, shares: 2 };
  }
  for (const d of spec.devices ?? []) {
    resources.devices!.push({
      allow: true,
      type: d.type,
      major: d.major,
      minor: d.minor,
      access: d.access,
    });
  }
  const pids = ctx.pidsLimit ?? DEFAULT_PIDS_LIMIT;
  if (pids > 0) resources.pids = { limit: pids };
  const seccomp = seccompFor(sc, caps, ctx);

  return {
    ociVersion: "1.0.2",
    process: {
      terminal: spec.tty,
      user: {
        uid: sc.runAsUser ?? ctx.bundle.uid ?? 0,
        gid: sc.runAsGroup ?? ctx.bundle.gid ?? 0,
        ...(spec.supplementalGroups?.length
          ? { additionalGids: [...spec.supplementalGroups] }
          : {}),
      },
      args,
      env: [...envMap].map(([k, v]) => `${k}=${v}`),
      cwd: spec.workingDir ?? ctx.bundle.cwd ?? "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: rlimits(spec, nofile),
      // Only when true: youki 0.7 reads an explicit `false` as set and then
      // loads seccomp after dropping CAP_SYS_ADMIN, which the kernel refuses.
      ...(sc.allowPrivilegeEscalation === false ? { noNewPrivileges: true } : {}),
    },
    root: { path: ctx.rootfs, readonly: sc.readOnlyRootFilesystem ?? false },
    hostname: ctx.joinNamespaces?.uts ? undefined : ctx.hostname,
    mounts,
    annotations: ctx.annotations,
    linux: {
      resources,
      cgroupsPath: ctx.cgroupsPath,
      namespaces,
      // A mount that propagates back to the host (rshared) needs the whole
      // tree shared (the runtime makes it recursive): a slave copy of the
      // host's mount would start a peer group of its own. The OCI values
      // are "shared", "slave", "private", "unbindable".
      ...(spec.mounts.some((m) => m.propagation === "rshared")
        ? { rootfsPropagation: "shared" as const }
        : {}),
      ...(spec.devices?.length
        ? {
          devices: spec.devices.map((d) => ({
            path: d.path,
            type: d.type,
            major: d.major,
            minor: d.minor,
            fileMode: d.fileMode,
            uid: 0,
            gid: 0,
          })),
        }
        : {}),
      ...(seccomp ? { seccomp } : {}),
      ...(spec.sysctls && Object.keys(spec.sysctls).length > 0 ? { sysctl: spec.sysctls } : {}),
      ...(sc.privileged ? {} : {
        maskedPaths: spec.maskedPaths ?? MASKED_PATHS,
        readonlyPaths: spec.readonlyPaths ?? READONLY_PATHS,
      }),
    },
  };
}

/** rkl's NOFILE default, replaced or joined by the spec's own ulimits. */
function rlimits(
  spec: ContainerSpec,
  nofile: number,
): { type: string; hard: number; soft: number }[] {
  const out = new Map([["RLIMIT_NOFILE", { type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }]]);
  for (const u of spec.ulimits ?? []) out.set(u.type, { type: u.type, hard: u.hard, soft: u.soft });
  return [...out.values()];
}

/** Reads what matters from a bundle's own config.json (already parsed). */
export function bundleDefaults(config: unknown): BundleDefaults {
  const p = (config as { process?: Record<string, unknown> } | null)?.process;
  if (!p || typeof p !== "object") return {};
  const strings = (v: unknown) =>
    Array.isArray(v) && v.every((s) => typeof s === "string") ? v as string[] : undefined;
  const user = p.user as { uid?: unknown; gid?: unknown } | undefined;
  return {
    args: strings(p.args),
    env: strings(p.env),
    cwd: typeof p.cwd === "string" ? p.cwd : undefined,
    uid: typeof user?.uid === "number" ? user.uid : undefined,
    gid: typeof user?.gid === "number" ? user.gid : undefined,
  };
}
