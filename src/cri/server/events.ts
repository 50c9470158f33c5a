/**
 * GetContainerEvents: what the CRI's own calls do (create, start, stop,
 * remove), and exits seen in the exit dir (conmon writes a container's exit
 * code there when it ends), each sent with the sandbox's and its containers'
 * statuses, as the kubelet's evented PLEG reads them.
 */
import type { Host } from "../../workloads/host.ts";
import type { Handler, Message, StreamHandler } from "../grpc.ts";
import { containerInfo, criContainers, findContainer, ifExists } from "./_common.ts";

export interface EventsGroup {
  streams: Record<string, StreamHandler>;
  /** Stops watching the exit dir. */
  close(): void;
}

/** The calls that publish an event, and its type. */
const PUBLISHERS: [string, string][] = [
  ["CreateContainer", "CONTAINER_CREATED_EVENT"],
  ["StartContainer", "CONTAINER_STARTED_EVENT"],
  ["StopContainer", "CONTAINER_STOPPED_EVENT"],
  ["RemoveContainer", "CONTAINER_DELETED_EVENT"],
];

/**
 * Serves GetContainerEvents, and wraps `runtime`'s container calls (in
 * place) so that each one publishes its event. `runtime` must hold
 * PodSandboxStatus and ContainerStatus, which fill the events in.
 */
export function containerEvents(host: Host, runtime: Record<string, Handler>): EventsGroup {
  const subscribers = new Set<(e: Message) => void>();
  let exitWatch: Deno.FsWatcher | undefined;
  const never = { cancelled: () => false };
  const eventFor = async (type: string, id: string, sandboxId: string): Promise<Message> => {
    let podStatus: Message | null = null;
    try {
      podStatus = (await runtime.PodSandboxStatus({ pod_sandbox_id: sandboxId }, never)).status;
    } catch { /* the sandbox is gone too */ }
    const statuses: Message[] = [];
    for (const c of criContainers(host).filter((c) => containerInfo(c).sandboxId === sandboxId)) {
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
          if (c) publish("CONTAINER_STOPPED_EVENT", c.name, containerInfo(c).sandboxId);
        }
      }
    })().catch(() => {});
  };
  for (const [name, type] of PUBLISHERS) {
    const h = runtime[name];
    runtime[name] = async (req, call) => {
      const before = subscribers.size > 0 && name !== "CreateContainer"
        ? ifExists(() => findContainer(host, req.container_id))
        : undefined;
      const res = await h(req, call);
      const c = name === "CreateContainer"
        ? (subscribers.size > 0 ? ifExists(() => findContainer(host, res.container_id)) : undefined)
        : before;
      if (c) publish(type, c.name, containerInfo(c).sandboxId);
      return res;
    };
  }
  const close = () => {
    exitWatch?.close();
    exitWatch = undefined;
  };
  return {
    streams: {
      GetContainerEvents: (_req, send, signal) =>
        new Promise<void>((resolve) => {
          const sub = (e: Message) => send(e);
          subscribers.add(sub);
          watchExits();
          signal.addEventListener("abort", () => {
            subscribers.delete(sub);
            if (subscribers.size === 0) close();
            resolve();
          }, { once: true });
        }),
    },
    close,
  };
}
