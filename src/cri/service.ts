/**
 * The CRI's RuntimeService and ImageService over rkl's core, assembled from
 * one module per RPC group under server/ (runtime, sandbox, container, exec,
 * stats, events, image), as containerd's internal/cri/server is laid out.
 */
import type { Host } from "../workloads/host.ts";
import type { CriHandlers, Handler } from "./grpc.ts";
import type { CriOptions } from "./server/_common.ts";
import { runtimeInfoHandlers } from "./server/runtime.ts";
import { sandboxHandlers } from "./server/sandbox.ts";
import { containerHandlers } from "./server/container.ts";
import { statsHandlers } from "./server/stats.ts";
import { metricsHandlers } from "./server/metrics.ts";
import { execHandlers } from "./server/exec.ts";
import { containerEvents } from "./server/events.ts";
import { imageHandlers } from "./server/image.ts";
import { Removals } from "./server/removals.ts";

export { type CriOptions, DEFAULT_PAUSE_IMAGE, nanos, newId } from "./server/_common.ts";
export { imageFsInfo, pullAuths } from "./server/image.ts";

export function criHandlers(host: Host, options: CriOptions): CriHandlers {
  const exec = execHandlers(host, options);
  const removals = new Removals(host, options.log);
  removals.resume();
  const runtime: Record<string, Handler> = {
    ...runtimeInfoHandlers(options),
    ...sandboxHandlers(host, options, removals),
    ...containerHandlers(host, removals),
    ...statsHandlers(host),
    ...metricsHandlers(host),
    ...exec.handlers,
  };
  // Wraps the container calls in `runtime` so that each publishes its event.
  const events = containerEvents(host, runtime);
  return {
    runtime,
    image: imageHandlers(host),
    streams: events.streams,
    close: async () => {
      events.close();
      await exec.close();
      await removals.settled();
    },
  };
}
