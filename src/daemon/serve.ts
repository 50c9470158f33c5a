/**
 * The sockets the daemon serves while it runs: the CRI (runtime.v1) and
 * the CLI for thin clients.
 */
import type { Host } from "../workloads/host.ts";

export interface ServeOptions {
  network: string | null;
  log(message: string): void;
  /** Serve the CRI (runtime.v1) on this unix socket while the daemon runs. */
  criSocket?: string;
  /** rkl's version, as the CRI's Version reports it. */
  version?: string;
  /** The CRI sandboxes' pause image ("" for the built-in pause bundle). */
  pauseImage?: string;
  /** CRI runtime handler names run as rkl's own ("rkl" always is one). */
  runtimeHandlers?: string[];
  /**
   * Starts serving CLI commands for thin clients (cli/serve.ts), once this
   * daemon holds the run root; what it returns is closed when the daemon stops.
   */
  serveCli?: () => Promise<{ close(): Promise<void> }>;
  /** Told of every CRI call once answered (`--metrics`, src/daemon/metrics.ts). */
  onCriCall?: (method: string, code: string, seconds: number) => void;
}

/** Opens the sockets `options` asks for; close() closes them (CLI first, then CRI). */
export async function serveSockets(
  host: Host,
  options: ServeOptions,
): Promise<{ close(): Promise<void> }> {
  // The CRI: its socket now, its code at the first connection (src/cri/lazy.ts):
  // the gRPC server and the proto parser cost start-up time and memory that a
  // static-pod-only daemon need not pay.
  let cri: { close(): Promise<void> } | undefined;
  if (options.criSocket) {
    const { serveCriOnDemand } = await import("../cri/lazy.ts");
    cri = await serveCriOnDemand(options.criSocket, async () => {
      const [{ criInjector }, { criHandlers }] = await Promise.all([
        import("../cri/grpc.ts"),
        import("../cri/service.ts"),
      ]);
      const served = criInjector(
        criHandlers(host, {
          network: options.network,
          version: options.version ?? "",
          pauseImage: options.pauseImage,
          runtimeHandlers: options.runtimeHandlers,
          log: options.log,
        }),
        { log: options.log, onCall: options.onCriCall },
      );
      options.log("CRI: gRPC server loaded (first connection)");
      return served;
    }, options.log);
    options.log(`CRI serving on unix://${options.criSocket}`);
  }
  const cliServer = await options.serveCli?.();
  return {
    async close() {
      await cliServer?.close();
      await cri?.close();
    },
  };
}
