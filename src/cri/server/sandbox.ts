/**
 * The RuntimeService's sandbox calls: RunPodSandbox, StopPodSandbox,
 * RemovePodSandbox, PodSandboxStatus, ListPodSandbox. A sandbox is a pod
 * record with no containers until CreateContainer adds them.
 */
import type { Host } from "../../workloads/host.ts";
import { createPod, teardownPod } from "../../workloads/pod.ts";
import { stopSandbox } from "../../workloads/sandbox_ops.ts";
import { CriError, type Handler, type Message, notFound, Status } from "../grpc.ts";
import { ListCache } from "./list_cache.ts";
import { NS, sandboxPod } from "../translate.ts";
import { Removals } from "./removals.ts";
import { markNotReady, sandboxSource } from "../metadata.ts";
import {
  type CriOptions,
  criPods,
  DEFAULT_PAUSE_IMAGE,
  findSandbox,
  ifExists,
  labelsMatch,
  nanos,
  newId,
  ready,
  sandboxInfo,
  sandboxMetadata,
} from "./_common.ts";

/**
 * The pause image, from the store (pulled once); when it cannot be had, rkl's
 * own pause bundle, and no new try for five minutes (a registry out of reach
 * must not slow every sandbox down).
 */
export function pauseImageSource(
  host: Host,
  options: Pick<CriOptions, "pauseImage" | "log">,
): () => Promise<string | undefined> {
  const pauseRef = options.pauseImage ?? DEFAULT_PAUSE_IMAGE;
  let pauseFailedAt = 0;
  return async () => {
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
}

export function sandboxHandlers(
  host: Host,
  options: CriOptions,
  removals: Removals = new Removals(host),
): Record<string, Handler> {
  const pauseImage = pauseImageSource(host, options);
  const lists = new ListCache(host, "pods", "ListPodSandboxResponse");
  return {
    RunPodSandbox: async (req) => {
      const config = req.config ?? {};
      if (
        req.runtime_handler && req.runtime_handler !== "rkl" &&
        !options.runtimeHandlers?.includes(req.runtime_handler)
      ) {
        throw notFound(`runtime handler ${JSON.stringify(req.runtime_handler)} is not configured`);
      }
      const id = newId();
      const loaded = sandboxPod(id, config);
      if (loaded.spec.shareProcessNamespace) {
        const image = await pauseImage();
        if (image) loaded.spec.pauseImage = image;
      }
      const md = config.metadata;
      const dup = criPods(host).find((p) => {
        const s = sandboxInfo(p);
        return s.name === md.name && s.namespace === md.namespace && s.uid === md.uid &&
          s.attempt === (md.attempt ?? 0);
      });
      if (dup) {
        throw new CriError(
          Status.ALREADY_EXISTS,
          `sandbox ${md.namespace}/${md.name} (uid ${md.uid}, attempt ${md.attempt}) exists: ${dup.name}`,
        );
      }
      const sysctls = config.linux?.sysctls ?? {};
      const rec = await createPod(host, loaded, {
        network: loaded.spec.hostNetwork ? null : options.network,
        source: sandboxSource({
          name: md.name,
          uid: md.uid,
          namespace: md.namespace,
          attempt: md.attempt ?? 0,
          logDirectory: config.log_directory ?? "",
          runtimeHandler: req.runtime_handler ?? "",
          ready: true,
          sysctls: Object.keys(sysctls).length > 0 ? { ...sysctls } : undefined,
        }),
      });
      return { pod_sandbox_id: rec.name };
    },

    StopPodSandbox: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const p = ifExists(() => findSandbox(host, req.pod_sandbox_id));
      if (!p) return {};
      await stopSandbox(host, p.name, {
        timeoutS: 0,
        mark: markNotReady,
      });
      return {};
    },

    RemovePodSandbox: async (req) => {
      // Gone already: done (the kubelet retries; critest's idempotence specs).
      const p = ifExists(() => findSandbox(host, req.pod_sandbox_id));
      if (!p) return {};
      // Its containers' removals under way end first; the pod's teardown
      // then takes any that failed, and those still running by force, as the CRI says.
      await removals.settled(p.name);
      await host.store.withLock(() => teardownPod(host, p));
      return {};
    },

    PodSandboxStatus: (req) => {
      const p = findSandbox(host, req.pod_sandbox_id);
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
        runtime_handler: sandboxInfo(p).runtimeHandler,
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
      return lists.answer(f, () => Promise.resolve({ answer: listPods(f) }));
    },
  };

  function listPods(f: Message): Message {
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
      runtime_handler: sandboxInfo(p).runtimeHandler,
    }));
    return { items };
  }
}
