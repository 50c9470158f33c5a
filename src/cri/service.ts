/**
 * The CRI's RuntimeService and ImageService over rkl's core: sandboxes are
 * pod records and containers are container records, both named by a 64-hex
 * id and marked with `cri`, so `rkl pod list` shows them while the CRI lists
 * only its own (a kubelet never sees, or garbage-collects, a user's pods).
 */
import type { Host } from "../workloads/host.ts";
import type { CgroupUsage } from "../sys/cgroups/mod.ts";
import {
  addPodContainer,
  createPod,
  forgetPodContainer,
  type PodRecord,
  releasePodNetwork,
  stopPod,
  teardownPod,
} from "../workloads/pod.ts";
import {
  type ContainerRecord,
  exitReason,
  listExitFiles,
  quickRefresh,
  removeContainer,
  startCreated,
  stopContainer,
} from "../workloads/container.ts";
import { execSync } from "../workloads/exec.ts";
import { removeImages } from "../image/manage.ts";
import { parseReference } from "../image/reference.ts";
import { decodeBasicAuth } from "../image/registries.ts";
import type { ImageRecord } from "../image/store.ts";
import { NotFoundError } from "../errors.ts";
import { reopenLog } from "../workloads/logrotate.ts";
import {
  CriError,
  type CriHandlers,
  type Handler,
  invalid,
  type Message,
  notFound,
  precondition,
  Status,
  type StreamHandler,
} from "./grpc.ts";
import { containerRequest, NS, sandboxPod } from "./translate.ts";
import { StreamError, StreamingServer } from "./streaming/server.ts";
import { streamBackend } from "./streams.ts";

export interface CriOptions {
  /** The CNI network sandboxes join (rkl's default network). */
  network: string | null;
  /** The streaming server's port on 127.0.0.1 (default: one the kernel picks). */
  streamingPort?: number;
  /**
   * The pause image for sandboxes that share a PID namespace (default
   * registry.k8s.io/pause:3.10; "" for rkl's built-in pause bundle).
   */
  pauseImage?: string;
  /** rkl's version, for Version. */
  version: string;
  /** Where notes go (the daemon's log). */
  log?: (line: string) => void;
}

/**
 * PullImage's AuthConfig as credentials for this pull, keyed by the
 * image's own registry (never a mirror's host: they were given for the
 * registry). username/password, or `auth` as base64 "user:password".
 */
export function pullAuths(
  image: string,
  a: Message | null | undefined,
): Record<string, { username: string; password: string }> | undefined {
  if (!a || !(a.username || a.password || a.auth || a.identity_token || a.registry_token)) {
    return undefined;
  }
  if (a.identity_token || a.registry_token) {
    throw new CriError(
      Status.UNIMPLEMENTED,
      "auth.identity_token and auth.registry_token are not supported; give username and password",
    );
  }
  let username: string = a.username ?? "", password: string = a.password ?? "";
  if (a.auth) {
    const c = decodeBasicAuth(a.auth);
    if (!c) throw invalid('auth.auth: not base64 of "user:password"');
    ({ username, password } = c);
  }
  if (!username) throw invalid("auth: a username is needed");
  let registry: string;
  try {
    registry = parseReference(image).registry;
  } catch (e) {
    throw invalid(`image.image: ${(e as Error).message}`);
  }
  const hosts = registry === "docker.io" ? ["docker.io", "registry-1.docker.io"] : [registry];
  return Object.fromEntries(hosts.map((h) => [h, { username, password }]));
}

export const DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10";

/** A fresh object id: 64 hex digits from 32 random bytes. */
export function newId(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Nanoseconds since the epoch, as the int64 string the proto codec takes. */
export function nanos(iso: string | undefined): string {
  if (!iso) return "0";
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? (BigInt(ms) * 1_000_000n).toString() : "0";
}

function criPods(host: Host): PodRecord[] {
  return host.store.list<PodRecord>("pods").filter((p) => p.cri);
}

function criContainers(host: Host): ContainerRecord[] {
  return host.store.list<ContainerRecord>("containers").filter((c) => c.cri);
}

/** The one CRI object whose id is `id` or starts with it (crictl's prefixes). */
function byId<T extends { name: string }>(all: T[], id: string, what: string): T | undefined {
  if (!id) throw invalid(`${what} id must be set`);
  const exact = all.find((r) => r.name === id);
  if (exact) return exact;
  const hits = all.filter((r) => r.name.startsWith(id));
  if (hits.length > 1) throw invalid(`${what} id prefix ${id} is ambiguous`);
  return hits[0];
}

function sandbox(host: Host, id: string): PodRecord {
  const p = byId(criPods(host), id, "sandbox");
  if (!p) throw notFound(`sandbox ${id} is not found`);
  return p;
}

function container(host: Host, id: string): ContainerRecord {
  const c = byId(criContainers(host), id, "container");
  if (!c) throw notFound(`container ${id} is not found`);
  return c;
}

/** `find()`'s object, or undefined when it answers NOT_FOUND. */
function ifExists<T>(find: () => T): T | undefined {
  try {
    return find();
  } catch (e) {
    if (e instanceof CriError && e.code === Status.NOT_FOUND) return undefined;
    throw e;
  }
}

/** The CRI containers a ContainerFilter / ContainerStatsFilter selects (state aside), refreshed. */
function filteredContainers(host: Host, f: Message): Promise<ContainerRecord[]> {
  const hits = criContainers(host).filter((c) =>
    (!f.id || c.name.startsWith(f.id)) &&
    (!f.pod_sandbox_id || c.cri!.sandboxId.startsWith(f.pod_sandbox_id)) &&
    labelsMatch(c.cri!.labels, f.label_selector)
  );
  const exits = listExitFiles(hits.map((c) => c.dirs.exitDir));
  return Promise.all(hits.map((c) => quickRefresh(host, c, exits)));
}

function ready(p: PodRecord): boolean {
  return p.created && p.cri!.ready;
}

function labelsMatch(labels: Record<string, string>, selector: Record<string, string> | null) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

function sandboxMetadata(p: PodRecord) {
  const c = p.cri!;
  return { name: c.name, uid: c.uid, namespace: c.namespace, attempt: c.attempt };
}

const STATE: Record<string, string> = {
  creating: "CONTAINER_UNKNOWN",
  created: "CONTAINER_CREATED",
  running: "CONTAINER_RUNNING",
  exited: "CONTAINER_EXITED",
  unknown: "CONTAINER_UNKNOWN",
};

function containerBrief(c: ContainerRecord) {
  return {
    id: c.name,
    pod_sandbox_id: c.cri!.sandboxId,
    metadata: { name: c.cri!.name, attempt: c.cri!.attempt },
    image: { image: c.cri!.image },
    image_ref: c.imageId ?? c.image,
    state: STATE[c.status] ?? "CONTAINER_UNKNOWN",
    created_at: nanos(c.createdAt),
    labels: c.cri!.labels,
    annotations: c.cri!.annotations,
  };
}

function imageMessage(host: Host, rec: ImageRecord) {
  const tags = host.images!.store.tagsOf(rec.id);
  const user = rec.config?.User ?? "";
  const name = user.split(":")[0];
  const uid = /^\d+$/.test(name) ? { uid: { value: name } } : name ? { username: name } : {};
  return {
    id: rec.id,
    repo_tags: tags,
    repo_digests: rec.repoDigests,
    size: String(rec.size),
    ...uid,
    spec: { image: rec.id },
    pinned: false,
  };
}

const wrap = (v: number | undefined) => v === undefined ? null : { value: String(v) };

/** Bytes and inodes under `dir`, not following links (a writable layer's use). */
function diskUse(dir: string): { bytes: number; inodes: number } {
  let bytes = 0;
  let inodes = 0;
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      inodes++;
      const p = `${d}/${e.name}`;
      if (e.isDirectory) walk(p);
      else {
        try {
          bytes += Deno.lstatSync(p).size;
        } catch { /* gone */ }
      }
    }
  };
  walk(dir);
  return { bytes, inodes };
}

/**
 * ImageFsInfo's answer: the image store's use, under a mountpoint that
 * exists. The store's root is made on the first pull; the kubelet stats the
 * mountpoint it is given (cadvisor's GetDirFsInfo) and, for one that is not
 * there, logs "Image garbage collection failed" at every GC period until a
 * pull makes it. So the root is made here (mode 0700, as the store makes it).
 */
export function imageFsInfo(root: string, nowMs: number) {
  Deno.mkdirSync(root, { recursive: true, mode: 0o700 });
  const use = diskUse(root);
  return {
    image_filesystems: [{
      timestamp: (BigInt(nowMs) * 1_000_000n).toString(),
      fs_id: { mountpoint: root },
      used_bytes: { value: String(use.bytes) },
      inodes_used: { value: String(use.inodes) },
    }],
    container_filesystems: [],
  };
}

/**
 * Container and sandbox stats from cgroupfs. usage_nano_cores needs two
 * samples: the previous one per object is kept (and dropped once the object
 * is gone), as the kubelet's cAdvisor does.
 */
function statsReader(host: Host) {
  const last = new Map<string, { ns: number; at: bigint }>();
  const cpu = (key: string, rel: string, now: bigint) => {
    const u = host.cgroups.usage(rel);
    const ns = u?.cpuNs;
    let nanoCores: number | undefined;
    const prev = last.get(key);
    if (ns !== undefined) {
      if (prev && now > prev.at && ns >= prev.ns) {
        nanoCores = Math.round((ns - prev.ns) * 1e9 / Number(now - prev.at));
      }
      last.set(key, { ns, at: now });
    }
    return {
      u,
      cpu: {
        timestamp: now.toString(),
        usage_core_nano_seconds: wrap(ns),
        usage_nano_cores: wrap(nanoCores),
      },
    };
  };
  const memory = (u: CgroupUsage | undefined, now: bigint) => ({
    timestamp: now.toString(),
    working_set_bytes: wrap(u?.workingSetBytes),
    available_bytes: wrap(
      u?.memoryLimit !== undefined && u.workingSetBytes !== undefined
        ? Math.max(0, u.memoryLimit - u.workingSetBytes)
        : undefined,
    ),
    usage_bytes: wrap(u?.memoryBytes),
    rss_bytes: wrap(u?.rssBytes),
    page_faults: wrap(u?.pageFaults),
    major_page_faults: wrap(u?.majorPageFaults),
  });
  const forgetGone = () => {
    if (last.size < 256) return;
    const live = new Set([
      ...criContainers(host).map((c) => c.name),
      ...criPods(host).map((p) => p.name),
    ]);
    for (const k of last.keys()) if (!live.has(k)) last.delete(k);
  };
  const container = (c: ContainerRecord) => {
    forgetGone();
    const now = BigInt(Date.now()) * 1_000_000n;
    const { u, cpu: c1 } = cpu(c.name, c.cgroupPath, now);
    const disk = diskUse(c.dirs.upper);
    return {
      attributes: {
        id: c.name,
        metadata: { name: c.cri!.name, attempt: c.cri!.attempt },
        labels: c.cri!.labels,
        annotations: c.cri!.annotations,
      },
      cpu: c1,
      memory: memory(u, now),
      writable_layer: {
        timestamp: now.toString(),
        fs_id: { mountpoint: c.dirs.upper },
        used_bytes: { value: String(disk.bytes) },
        inodes_used: { value: String(disk.inodes) },
      },
    };
  };
  const sandbox = (p: PodRecord) => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const { u, cpu: c1 } = cpu(p.name, p.cgroupPath, now);
    const members = criContainers(host).filter((c) => c.cri!.sandboxId === p.name);
    return {
      attributes: {
        id: p.name,
        metadata: sandboxMetadata(p),
        labels: p.labels,
        annotations: p.annotations,
      },
      linux: {
        cpu: c1,
        memory: memory(u, now),
        process: {
          timestamp: now.toString(),
          // The pod's processes live in its members' cgroups, below its own.
          process_count: wrap(
            u ? members.reduce((n, c) => n + host.cgroups.pids(c.cgroupPath).length, 0) : undefined,
          ),
        },
        containers: members.map(container),
      },
    };
  };
  return { container, sandbox };
}

export function criHandlers(host: Host, options: CriOptions): CriHandlers {
  const stats = statsReader(host);
  // The streaming server listens from the first Exec, Attach or PortForward on.
  let streaming: StreamingServer | undefined;
  const streams = () =>
    streaming ??= StreamingServer.start(
      streamBackend(host, {
        container: async (id) => {
          let c: ContainerRecord;
          try {
            c = await quickRefresh(host, container(host, id));
          } catch (e) {
            throw new StreamError((e as Error).message, "NotFound");
          }
          if (c.status !== "running") {
            throw new StreamError(`container ${c.name} is ${c.status}, not running`, "BadRequest");
          }
          return c;
        },
        sandbox: (id) => {
          try {
            return sandbox(host, id);
          } catch (e) {
            throw new StreamError((e as Error).message, "NotFound");
          }
        },
      }),
      { port: options.streamingPort ?? 0, log: options.log },
    );
  // The pause image, from the store (pulled once); when it cannot be had, rkl's
  // own pause bundle, and no new try for five minutes (a registry out of
  // reach must not slow every sandbox down).
  const pauseRef = options.pauseImage ?? DEFAULT_PAUSE_IMAGE;
  let pauseFailedAt = 0;
  const pauseImage = async (): Promise<string | undefined> => {
    if (!pauseRef || !host.images) return undefined;
    if (host.images.store.find(pauseRef)) return pauseRef;
    if (Date.now() - pauseFailedAt < 5 * 60_000) return undefined;
    try {
      await host.images.pull(pauseRef, { quiet: true });
      return pauseRef;
    } catch (e) {
      pauseFailedAt = Date.now();
      options.log?.(
        `cri: pause image ${pauseRef}: ${(e as Error).message}; using the built-in pause`,
      );
      return undefined;
    }
  };
  /** The running container an Exec or Attach names, checked before a URL is given out. */
  const streamTarget = async (req: Message) => {
    const c = await quickRefresh(host, container(host, req.container_id));
    if (c.status !== "running") {
      throw precondition(`container ${c.name} is ${c.status}, not running`);
    }
    if (!req.stdin && !req.stdout && !req.stderr) {
      throw invalid("one of stdin, stdout and stderr must be set");
    }
    return c;
  };
  const images = () => {
    if (!host.images) throw precondition("this host has no image store");
    return host.images;
  };
  const runtime: Record<string, Handler> = {
    Version: () =>
      Promise.resolve({
        version: "0.1.0",
        runtime_name: "rkl",
        runtime_version: options.version,
        runtime_api_version: "v1",
      }),

    Status: () =>
      Promise.resolve({
        status: {
          conditions: [
            { type: "RuntimeReady", status: true, reason: "", message: "" },
            {
              type: "NetworkReady",
              status: true,
              reason: "",
              message: options.network ? `CNI network ${options.network}` : "host network only",
            },
          ],
        },
        info: {},
      }),

    RuntimeConfig: () => Promise.resolve({ linux: { cgroup_driver: "CGROUPFS" } }),

    // The pod CIDR the kubelet may push: rkl's networks carry their own subnets.
    UpdateRuntimeConfig: () => Promise.resolve({}),

    RunPodSandbox: async (req) => {
      const config = req.config ?? {};
      if (req.runtime_handler && req.runtime_handler !== "rkl") {
        throw notFound(`runtime handler ${JSON.stringify(req.runtime_handler)} is not configured`);
      }
      const id = newId();
      const loaded = sandboxPod(id, config);
      if (loaded.spec.shareProcessNamespace) {
        const image = await pauseImage();
        if (image) loaded.spec.pauseImage = image;
      }
      const md = config.metadata;
      const dup = criPods(host).find((p) =>
        p.cri!.name === md.name && p.cri!.namespace === md.namespace &&
        p.cri!.uid === md.uid && p.cri!.attempt === (md.attempt ?? 0)
      );
      if (dup) {
        throw new CriError(
          Status.ALREADY_EXISTS,
          `sandbox ${md.namespace}/${md.name} (uid ${md.uid}, attempt ${md.attempt}) exists: ${dup.name}`,
        );
      }
      const sysctls = config.linux?.sysctls ?? {};
      const rec = await createPod(host, loaded, {
        network: loaded.spec.hostNetwork ? null : options.network,
        cri: {
          name: md.name,
          uid: md.uid,
          namespace: md.namespace,
          attempt: md.attempt ?? 0,
          logDirectory: config.log_directory ?? "",
          runtimeHandler: req.runtime_handler ?? "",
          ready: true,
          sysctls: Object.keys(sysctls).length > 0 ? { ...sysctls } : undefined,
        },
      });
      return { pod_sandbox_id: rec.name };
    },

    StopPodSandbox: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const p = ifExists(() => sandbox(host, req.pod_sandbox_id));
      if (!p) return {};
      await stopPod(host, p.name, 0);
      await host.store.withLock(async () => {
        const now = host.store.get<PodRecord>("pods", p.name);
        if (!now) return;
        await releasePodNetwork(host, now);
        now.cri!.ready = false;
        host.store.put("pods", now);
      });
      return {};
    },

    RemovePodSandbox: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const p = ifExists(() => sandbox(host, req.pod_sandbox_id));
      if (!p) return {};
      // Containers still running are removed by force, as the CRI says.
      await host.store.withLock(() => teardownPod(host, p));
      return {};
    },

    PodSandboxStatus: (req) => {
      const p = sandbox(host, req.pod_sandbox_id);
      const status = {
        id: p.name,
        metadata: sandboxMetadata(p),
        state: ready(p) ? "SANDBOX_READY" : "SANDBOX_NOTREADY",
        created_at: nanos(p.createdAt),
        network: { ip: ready(p) ? p.network?.ip ?? "" : "", additional_ips: [] },
        linux: {
          namespaces: {
            options: {
              network: p.hostNetwork ? NS.NODE : NS.POD,
              pid: p.hostPID ? NS.NODE : p.shareProcessNamespace ? NS.POD : NS.CONTAINER,
              ipc: p.hostIPC ? NS.NODE : NS.POD,
            },
          },
        },
        labels: p.labels,
        annotations: p.annotations,
        runtime_handler: p.cri!.runtimeHandler,
      };
      const info = req.verbose
        ? {
          info: JSON.stringify({
            netns: p.netns ?? "",
            cgroupPath: p.cgroupPath,
            nsPins: p.nsPins ?? {},
            containers: p.containers,
          }),
        }
        : {};
      return Promise.resolve({ status, info, containers_statuses: [], timestamp: "0" });
    },

    ListPodSandbox: (req) => {
      const f = req.filter ?? {};
      const items = criPods(host).filter((p) =>
        (!f.id || p.name.startsWith(f.id)) &&
        (!f.state || (f.state.state === "SANDBOX_READY") === ready(p)) &&
        labelsMatch(p.labels, f.label_selector)
      ).map((p) => ({
        id: p.name,
        metadata: sandboxMetadata(p),
        state: ready(p) ? "SANDBOX_READY" : "SANDBOX_NOTREADY",
        created_at: nanos(p.createdAt),
        labels: p.labels,
        annotations: p.annotations,
        runtime_handler: p.cri!.runtimeHandler,
      }));
      return Promise.resolve({ items });
    },

    CreateContainer: async (req) => {
      const p = sandbox(host, req.pod_sandbox_id);
      if (!ready(p)) throw precondition(`sandbox ${p.name} is not ready`);
      const config = req.config ?? {};
      const imageText: string = config.image?.image ?? "";
      if (!imageText) throw invalid("config.image.image: must be set");
      const img = images().store.find(imageText);
      if (!img) throw notFound(`image ${JSON.stringify(imageText)} is not present`);
      const { loaded, logPath, mounts } = containerRequest(config, {
        image: img.id,
        logDirectory: p.cri!.logDirectory,
        sysctls: p.cri!.sysctls,
      });
      const md = config.metadata;
      const taken = criContainers(host).find((c) =>
        c.cri!.sandboxId === p.name && c.cri!.name === md.name &&
        c.cri!.attempt === (md.attempt ?? 0)
      );
      if (taken) {
        throw new CriError(
          Status.ALREADY_EXISTS,
          `container ${md.name} (attempt ${
            md.attempt ?? 0
          }) exists in sandbox ${p.name}: ${taken.name}`,
        );
      }
      const id = newId();
      await addPodContainer(host, p.name, loaded, {
        recordName: id,
        logPath,
        cri: {
          sandboxId: p.name,
          name: md.name,
          attempt: md.attempt ?? 0,
          labels: { ...config.labels },
          annotations: { ...config.annotations },
          image: imageText,
          mounts,
        },
      });
      return { container_id: id };
    },

    UpdateContainerResources: async (req) => {
      const c = container(host, req.container_id);
      const r: Message = req.linux ?? {};
      const num = (v: unknown) => {
        const n = Number(v ?? 0);
        if (!Number.isSafeInteger(n) || n < 0) throw invalid(`linux: ${String(v)} is not a count`);
        return n;
      };
      const quota = num(r.cpu_quota), period = num(r.cpu_period), shares = num(r.cpu_shares);
      const memory = num(r.memory_limit_in_bytes);
      if (period > 0 && (period < 1000 || period > 1_000_000)) {
        throw invalid("linux.cpu_period: must be from 1000 to 1000000 µs");
      }
      if (memory > 0 && memory < 4 * 1024 * 1024) {
        throw invalid("linux.memory_limit_in_bytes: must be at least 4 MiB");
      }
      await host.store.withLock(async () => {
        const now = await quickRefresh(host, c);
        if (now.status === "exited") {
          throw precondition(`container ${c.name} has exited`);
        }
        // 0 leaves a setting as it is, as the kubelet means it.
        const limits = {
          ...now.limits,
          ...(period > 0 ? { cpuPeriod: period } : {}),
          ...(quota > 0 ? { cpuQuota: quota } : {}),
          ...(shares > 0 ? { cpuShares: shares } : {}),
          ...(memory > 0 ? { memoryLimit: memory } : {}),
        };
        host.cgroups.apply(now.cgroupPath, {
          ...(period > 0 ? { cpuPeriod: period } : {}),
          ...(quota > 0 ? { cpuQuota: quota } : {}),
          ...(shares > 0 ? { cpuShares: shares } : {}),
          ...(memory > 0 ? { memoryLimit: memory } : {}),
        });
        host.store.put("containers", { ...now, limits });
      });
      return {};
    },

    StartContainer: async (req) => {
      const c = container(host, req.container_id);
      await host.store.withLock(async () => {
        const now = await quickRefresh(host, c);
        if (now.status !== "created") {
          throw precondition(`container ${c.name} is ${now.status}, not created`);
        }
        await startCreated(host, now);
      });
      return {};
    },

    StopContainer: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const c = ifExists(() => container(host, req.container_id));
      if (!c) return {};
      await stopContainer(host, c.name, Math.max(0, Number(req.timeout ?? 0)));
      return {};
    },

    RemoveContainer: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const c = ifExists(() => container(host, req.container_id));
      if (!c) return {};
      await removeContainer(host, c.name, { force: true });
      await forgetPodContainer(host, c.cri!.sandboxId, c.name);
      return {};
    },

    ListContainers: async (req) => {
      const f = req.filter ?? {};
      const all = await filteredContainers(host, f);
      const containers = all.map(containerBrief).filter((c) =>
        !f.state || c.state === f.state.state
      );
      return { containers };
    },

    ContainerStatus: async (req) => {
      const c = await quickRefresh(host, container(host, req.container_id));
      const exited = c.status === "exited";
      const status = {
        ...containerBrief(c),
        started_at: nanos(c.startedAt),
        finished_at: exited ? nanos(c.finishedAt) : "0",
        exit_code: exited ? c.exitCode ?? 0 : 0,
        reason: exitReason(host, c) ?? "",
        message: "",
        mounts: c.cri!.mounts ?? [],
        log_path: c.dirs.log,
        resources: {
          linux: {
            cpu_period: String(c.limits.cpuPeriod ?? 0),
            cpu_quota: String(c.limits.cpuQuota ?? 0),
            cpu_shares: String(c.limits.cpuShares ?? 0),
            memory_limit_in_bytes: String(c.limits.memoryLimit ?? 0),
          },
        },
      };
      const info = req.verbose
        ? {
          info: JSON.stringify({ pid: c.pid ?? 0, runtime: c.runtime.name, bundle: c.dirs.bundle }),
        }
        : {};
      return { status, info };
    },

    ReopenContainerLog: async (req) => {
      const c = await quickRefresh(host, container(host, req.container_id));
      if (c.status !== "running") {
        throw precondition(`container ${c.name} is ${c.status}, not running`);
      }
      if (!reopenLog(host.sys, `${c.dirs.bundle}/ctl`)) {
        throw new CriError(Status.UNAVAILABLE, `container ${c.name}: its conmon does not answer`);
      }
      // conmon reopens when it reads the FIFO: answer once the new file is there,
      // as the kubelet (which rotates the old one away first) expects.
      const until = Date.now() + 2_000;
      for (;;) {
        try {
          Deno.statSync(c.dirs.log);
          break;
        } catch {
          if (Date.now() > until) {
            throw new CriError(Status.UNAVAILABLE, `container ${c.name}: its log was not reopened`);
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      return {};
    },

    ContainerStats: async (req) => {
      const c = await quickRefresh(host, container(host, req.container_id));
      return { stats: stats.container(c) };
    },

    ListContainerStats: async (req) => {
      const f = req.filter ?? {};
      const all = await filteredContainers(host, f);
      // Like containerd: the containers that have a cgroup (created or running).
      return {
        stats: all.filter((c) => c.status === "running" || c.status === "created")
          .map((c) => stats.container(c)),
      };
    },

    PodSandboxStats: (req) => {
      const p = sandbox(host, req.pod_sandbox_id);
      return Promise.resolve({ stats: stats.sandbox(p) });
    },

    ListPodSandboxStats: (req) => {
      const f = req.filter ?? {};
      const items = criPods(host).filter((p) =>
        (!f.id || p.name.startsWith(f.id)) && labelsMatch(p.labels, f.label_selector)
      );
      return Promise.resolve({ stats: items.map((p) => stats.sandbox(p)) });
    },

    ExecSync: async (req) => {
      const c = await quickRefresh(host, container(host, req.container_id));
      if (c.status !== "running") {
        throw precondition(`container ${c.name} is ${c.status}, not running`);
      }
      const cmd: string[] = req.cmd ?? [];
      if (cmd.length === 0) throw invalid("cmd: must not be empty");
      const timeoutS = Number(req.timeout ?? 0);
      const res = await execSync(host, {
        container: c,
        argv: cmd,
        timeoutMs: timeoutS > 0 ? timeoutS * 1000 : undefined, // 0: no limit
      });
      if (res.timedOut) {
        throw new CriError(
          Status.DEADLINE_EXCEEDED,
          `command ${JSON.stringify(cmd)} timed out after ${timeoutS}s`,
        );
      }
      const enc = new TextEncoder();
      return {
        stdout: enc.encode(res.stdout),
        stderr: enc.encode(res.stderr),
        exit_code: res.code,
      };
    },
  };

  Object.assign(
    runtime,
    {
      Exec: async (req: Message) => {
        const c = await streamTarget(req);
        const cmd: string[] = req.cmd ?? [];
        if (cmd.length === 0) throw invalid("cmd: must not be empty");
        return {
          url: streams().exec({
            containerId: c.name,
            cmd,
            tty: !!req.tty,
            stdin: !!req.stdin,
            stdout: !!req.stdout,
            stderr: !!req.stderr,
          }),
        };
      },
      Attach: async (req: Message) => {
        const c = await streamTarget(req);
        if (!!req.tty !== !!c.terminal) {
          throw invalid(`tty: container ${c.name} was created with tty ${!!c.terminal}`);
        }
        return {
          url: streams().attach({
            containerId: c.name,
            tty: !!req.tty,
            stdin: !!req.stdin,
            stdout: !!req.stdout,
            stderr: !!req.stderr,
          }),
        };
      },
      PortForward: (req: Message) => {
        const p = sandbox(host, req.pod_sandbox_id);
        if (!ready(p)) throw precondition(`sandbox ${p.name} is not ready`);
        const ports = (req.port ?? []).map(Number);
        if (ports.some((n: number) => !Number.isInteger(n) || n < 1 || n > 65535)) {
          throw invalid("port: every port must be from 1 to 65535");
        }
        return Promise.resolve({ url: streams().portForward({ sandboxId: p.name, ports }) });
      },
    } satisfies Record<string, Handler>,
  );

  // GetContainerEvents: what the CRI's own calls do, and exits seen in the
  // exit dir (conmon writes a container's exit code there when it ends).
  const subscribers = new Set<(e: Message) => void>();
  let exitWatch: Deno.FsWatcher | undefined;
  const never = { cancelled: () => false };
  const eventFor = async (type: string, id: string, sandboxId: string): Promise<Message> => {
    let podStatus: Message | null = null;
    try {
      podStatus = (await runtime.PodSandboxStatus({ pod_sandbox_id: sandboxId }, never)).status;
    } catch { /* the sandbox is gone too */ }
    const statuses: Message[] = [];
    for (const c of criContainers(host).filter((c) => c.cri!.sandboxId === sandboxId)) {
      try {
        statuses.push((await runtime.ContainerStatus({ container_id: c.name }, never)).status);
      } catch { /* removed meanwhile */ }
    }
    return {
      container_id: id,
      container_event_type: type,
      created_at: (BigInt(Date.now()) * 1_000_000n).toString(),
      pod_sandbox_status: podStatus,
      containers_statuses: statuses,
    };
  };
  const publish = (type: string, id: string, sandboxId: string) => {
    if (subscribers.size === 0) return;
    void eventFor(type, id, sandboxId).then((e) => {
      for (const s of subscribers) s(e);
    }).catch(() => {});
  };
  const watchExits = () => {
    if (exitWatch) return;
    const dir = `${host.paths.root}/exits`;
    Deno.mkdirSync(dir, { recursive: true });
    const w = exitWatch = Deno.watchFs(dir, { recursive: false });
    void (async () => {
      for await (const ev of w) {
        if (ev.kind !== "create" && ev.kind !== "modify") continue;
        for (const path of ev.paths) {
          const id = path.slice(path.lastIndexOf("/") + 1);
          const c = criContainers(host).find((c) => c.id === id);
          if (c) publish("CONTAINER_STOPPED_EVENT", c.name, c.cri!.sandboxId);
        }
      }
    })().catch(() => {});
  };
  const withEvent = (name: string, type: string) => {
    const h = runtime[name];
    runtime[name] = async (req, call) => {
      const before = subscribers.size > 0 && name !== "CreateContainer"
        ? ifExists(() => container(host, req.container_id))
        : undefined;
      const res = await h(req, call);
      const c = name === "CreateContainer"
        ? (subscribers.size > 0 ? ifExists(() => container(host, res.container_id)) : undefined)
        : before;
      if (c) publish(type, c.name, c.cri!.sandboxId);
      return res;
    };
  };
  withEvent("CreateContainer", "CONTAINER_CREATED_EVENT");
  withEvent("StartContainer", "CONTAINER_STARTED_EVENT");
  withEvent("StopContainer", "CONTAINER_STOPPED_EVENT");
  withEvent("RemoveContainer", "CONTAINER_DELETED_EVENT");
  const streamsTable: Record<string, StreamHandler> = {
    GetContainerEvents: (_req, send, signal) =>
      new Promise<void>((resolve) => {
        const sub = (e: Message) => send(e);
        subscribers.add(sub);
        watchExits();
        signal.addEventListener("abort", () => {
          subscribers.delete(sub);
          if (subscribers.size === 0) {
            exitWatch?.close();
            exitWatch = undefined;
          }
          resolve();
        }, { once: true });
      }),
  };

  const image: Record<string, Handler> = {
    ListImages: (req) => {
      const want: string = req.filter?.image?.image ?? "";
      const store = images().store;
      const recs = want
        ? [store.find(want)].filter((r): r is ImageRecord => !!r)
        : store.listImages();
      return Promise.resolve({ images: recs.map((r) => imageMessage(host, r)) });
    },

    ImageStatus: (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const rec = images().store.find(text);
      if (!rec) return Promise.resolve({ image: null, info: {} });
      const info = req.verbose
        ? {
          info: JSON.stringify({
            config: rec.config,
            layers: rec.layers.length,
            os: rec.os,
            architecture: rec.architecture,
          }),
        }
        : {};
      return Promise.resolve({ image: imageMessage(host, rec), info });
    },

    PullImage: async (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const auths = pullAuths(text, req.auth);
      try {
        const rec = await images().pull(text, { quiet: true, auths });
        return { image_ref: rec.id };
      } catch (e) {
        if (e instanceof NotFoundError) throw notFound((e as Error).message);
        throw e;
      }
    },

    RemoveImage: async (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const rec = images().store.find(text);
      if (!rec) return {}; // removing what is gone is done
      try {
        await removeImages(host, [rec.id], false);
      } catch (e) {
        // Another RemoveImage got there first.
        if (!(e instanceof NotFoundError)) throw e;
      }
      return {};
    },

    ImageFsInfo: () => Promise.resolve(imageFsInfo(images().store.root, Date.now())),
  };
  return {
    runtime,
    image,
    streams: streamsTable,
    close: async () => {
      exitWatch?.close();
      exitWatch = undefined;
      await streaming?.close();
    },
  };
}
