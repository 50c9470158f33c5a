/**
 * The RuntimeService's container calls: CreateContainer, StartContainer,
 * StopContainer, RemoveContainer, ContainerStatus, ListContainers,
 * UpdateContainerResources, ReopenContainerLog. A container is a member of
 * its sandbox's pod record.
 */
import type { Host } from "../../workloads/host.ts";
import { addPodContainer } from "../../workloads/pod.ts";
import {
  exitReason,
  quickRefresh,
  startCreated,
  stopContainer,
} from "../../workloads/container.ts";
import { Removals } from "./removals.ts";
import { pathExists } from "./pidfds.ts";
import { realFs } from "../../sys/fs.ts";
import type { ContainerRecord, ExitFiles } from "../../workloads/container.ts";
import { ListCache } from "./list_cache.ts";
import { settle, StatusCache } from "./status_cache.ts";
import { type ResourceUpdate, updateContainerResources } from "../../workloads/update_resources.ts";
import { reopenLog } from "../../workloads/logrotate.ts";
import { ConflictError, SpecError } from "../../errors.ts";
import {
  CriError,
  type Handler,
  invalid,
  type Message,
  notFound,
  precondition,
  Status,
} from "../grpc.ts";
import { containerRequest } from "../translate.ts";
import { containerSource } from "../metadata.ts";
import {
  containerBrief,
  containerInfo,
  criContainers,
  filteredContainers,
  findContainer,
  findSandbox,
  ifExists,
  nanos,
  newId,
  ready,
  sandboxInfo,
} from "./_common.ts";
import { imageStore } from "./image.ts";

/** LinuxContainerResources' fields by the core's name for them. */
const RESOURCE_FIELDS: Record<keyof ResourceUpdate, string> = {
  cpuPeriod: "linux.cpu_period",
  cpuQuota: "linux.cpu_quota",
  cpuShares: "linux.cpu_shares",
  memoryLimit: "linux.memory_limit_in_bytes",
};

/** UpdateContainerResources' `linux` as the core's update: 0 leaves a setting as it is. */
export function resourceUpdateOf(r: Message | null | undefined): ResourceUpdate {
  const out: ResourceUpdate = {};
  for (const [k, field] of Object.entries(RESOURCE_FIELDS) as [keyof ResourceUpdate, string][]) {
    const v = r?.[field.slice("linux.".length)];
    const n = Number(v ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw invalid(`linux: ${String(v)} is not a count`);
    if (n > 0) out[k] = n;
  }
  return out;
}

/**
 * The image a container's status names (ContainerStatus and ListContainers'
 * `image.image`, the pod status's `image`): the name the pod gave
 * (`user_specified_image`: the kubelet sends the image id as `image` and the
 * pod's image there), else the request's reference, else for an id the image's
 * first tag. As containerd and CRI-O answer: a name, not an id (the node e2e
 * suite's "update during the kubelet restart" spec waits for the new name).
 */
export function statusImage(
  spec: { image?: string; user_specified_image?: string } | undefined,
  imageId: string,
  tagsOf: (id: string) => string[],
): string {
  const asked = spec?.image ?? "";
  if (spec?.user_specified_image) return spec.user_specified_image;
  if (asked !== imageId && !/^(sha256:)?[a-f0-9]{64}$/.test(asked)) return asked;
  return tagsOf(imageId)[0] ?? asked;
}

/**
 * `c`'s exit file as quickRefresh takes it (its exit dir's files, as far as
 * they matter: this one), asked by access(2) rather than by reading it: a
 * running container has none, and a failed read is an exception. Undefined
 * (quickRefresh reads the file) where access(2) cannot be asked, or the
 * store is not on the real file system (the unit tests' in-memory tree).
 */
export function exitFileOf(host: Host, c: ContainerRecord): ExitFiles | undefined {
  if (host.fs !== realFs) return undefined;
  const exists = pathExists(`${c.dirs.exitDir}/${c.id}`);
  if (exists === undefined) return undefined;
  return new Map([[c.dirs.exitDir, new Set(exists ? [c.id] : [])]]);
}

/** ContainerStatus's answer for `c`, brought up to date. */
export function statusAnswer(host: Host, c: ContainerRecord, verbose: boolean): Message {
  const exited = c.status === "exited";
  const status = {
    ...containerBrief(c),
    started_at: nanos(c.startedAt),
    finished_at: exited ? nanos(c.finishedAt) : "0",
    exit_code: exited ? c.exitCode ?? 0 : 0,
    reason: exitReason(host, c) ?? "",
    message: "",
    mounts: containerInfo(c).mounts ?? [],
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
  const info = verbose
    ? {
      info: JSON.stringify({ pid: c.pid ?? 0, runtime: c.runtime.name, bundle: c.dirs.bundle }),
    }
    : {};
  return { status, info };
}

export function containerHandlers(
  host: Host,
  removals: Removals = new Removals(host),
  statuses: StatusCache = new StatusCache(host),
): Record<string, Handler> {
  const lists = new ListCache(host, "containers", "ListContainersResponse");
  /**
   * The status answer of a container whose record this process has just
   * written (StartContainer, CreateContainer), made and kept now, so that
   * the ContainerStatus that follows is answered from memory. The record is
   * taken as written, so its process is checked here: kept only when its
   * pidfd opens on the record's process, alive.
   */
  const warm = (id: string) => {
    const text = statuses.version(id);
    if (text === undefined) return;
    try {
      const c = JSON.parse(text) as ContainerRecord;
      statuses.keep(id, text, c, c, statusAnswer(host, c, false), true);
    } catch { /* answered anew by the next call */ }
  };
  return {
    CreateContainer: async (req) => {
      const p = findSandbox(host, req.pod_sandbox_id);
      if (!ready(p)) throw precondition(`sandbox ${p.name} is not ready`);
      const config = req.config ?? {};
      const imageText: string = config.image?.image ?? "";
      if (!imageText) throw invalid("config.image.image: must be set");
      const images = imageStore(host).store;
      const img = images.find(imageText);
      if (!img) throw notFound(`image ${JSON.stringify(imageText)} is not present`);
      const sb = sandboxInfo(p);
      const { loaded, logPath, mounts } = containerRequest(config, {
        image: img.id,
        logDirectory: sb.logDirectory,
        sysctls: sb.sysctls,
      });
      const md = config.metadata;
      const taken = criContainers(host).find((c) => {
        const m = containerInfo(c);
        return m.sandboxId === p.name && m.name === md.name && m.attempt === (md.attempt ?? 0);
      });
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
        // As containerd: the rootfs mount, conmon and the runtime's create
        // are StartContainer's (a created container runs nothing either way).
        deferLaunch: true,
        source: containerSource({
          sandboxId: p.name,
          name: md.name,
          attempt: md.attempt ?? 0,
          labels: { ...config.labels },
          annotations: { ...config.annotations },
          image: statusImage(config.image, img.id, (id) => images.tagsOf(id)),
          mounts,
        }),
      });
      warm(id);
      return { container_id: id };
    },

    UpdateContainerResources: async (req) => {
      const c = findContainer(host, req.container_id);
      const update = resourceUpdateOf(req.linux);
      try {
        await updateContainerResources(host, c.name, update);
      } catch (e) {
        if (e instanceof SpecError) {
          throw invalid(
            `${RESOURCE_FIELDS[e.path as keyof ResourceUpdate] ?? "linux"}: ${e.detail}`,
          );
        }
        if (e instanceof ConflictError) throw precondition(`container ${c.name} has exited`);
        throw e;
      }
      return {};
    },

    StartContainer: async (req) => {
      const c = findContainer(host, req.container_id);
      await host.store.withLock(async () => {
        const now = await quickRefresh(host, c);
        if (now.status !== "created") {
          throw precondition(`container ${c.name} is ${now.status}, not created`);
        }
        await startCreated(host, now);
      });
      warm(c.name);
      return {};
    },

    StopContainer: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const c = ifExists(() => findContainer(host, req.container_id));
      if (!c) return {};
      await stopContainer(host, c.name, Math.max(0, Number(req.timeout ?? 0)), {
        stopSignalToInitOnly: true,
      });
      return {};
    },

    RemoveContainer: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const c = ifExists(() => findContainer(host, req.container_id));
      if (!c) return {};
      statuses.drop(c.name);
      // Gone from every later call once marked; torn down after the answer.
      await removals.remove(c.name, containerInfo(c).sandboxId);
      return {};
    },

    ListContainers: (req) => {
      const f = req.filter ?? {};
      return lists.answer(f, async () => {
        const all = await filteredContainers(host, f);
        const containers = all.map(containerBrief).filter((c) =>
          !f.state || c.state === f.state.state
        );
        return { answer: { containers }, containers: all };
      });
    },

    ContainerStatus: async (req) => {
      const id = String(req.container_id ?? "");
      const kept = req.verbose ? { ended: false } : statuses.answer(id);
      if ("answer" in kept) return kept.answer;
      const text = req.verbose ? undefined : statuses.version(id);
      const found = findContainer(host, id);
      // Its process just ended: the answer waits for conmon's exit code.
      if (kept.ended) await settle(host, found);
      const was = { status: found.status, pid: found.pid };
      const c = await quickRefresh(host, found, exitFileOf(host, found));
      const answer = statusAnswer(host, c, !!req.verbose);
      return req.verbose ? answer : statuses.keep(c.name, text, was, c, answer);
    },

    ReopenContainerLog: async (req) => {
      const c = await quickRefresh(host, findContainer(host, req.container_id));
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
  };
}
