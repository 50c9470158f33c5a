/** The RuntimeService's runtime-wide calls: Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
import type { Handler } from "../grpc.ts";
import type { CriOptions } from "./_common.ts";

export function runtimeInfoHandlers(
  options: Pick<CriOptions, "network" | "version">,
): Record<string, Handler> {
  return {
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
  };
}
