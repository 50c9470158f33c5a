import assert from "node:assert/strict";
import { runtimeInfoHandlers } from "./runtime.ts";

const never = { cancelled: () => false };

Deno.test("Version names rkl, its version and CRI v1", async () => {
  const h = runtimeInfoHandlers({ network: "rkl0", version: "9.9.9" });
  assert.deepEqual(await h.Version({}, never), {
    version: "0.1.0",
    runtime_name: "rkl",
    runtime_version: "9.9.9",
    runtime_api_version: "v1",
  });
});

Deno.test("Status reports both conditions ready and names the CNI network, or the host's", async () => {
  const withNet = await runtimeInfoHandlers({ network: "rkl0", version: "x" }).Status({}, never);
  assert.deepEqual(
    withNet.status.conditions.map((c: { type: string; status: boolean }) => [c.type, c.status]),
    [["RuntimeReady", true], ["NetworkReady", true]],
  );
  assert.equal(withNet.status.conditions[1].message, "CNI network rkl0");
  const hostOnly = await runtimeInfoHandlers({ network: null, version: "x" }).Status({}, never);
  assert.equal(hostOnly.status.conditions[1].message, "host network only");
});

Deno.test("RuntimeConfig says cgroupfs; UpdateRuntimeConfig accepts and ignores a pod CIDR", async () => {
  const h = runtimeInfoHandlers({ network: null, version: "x" });
  assert.deepEqual(await h.RuntimeConfig({}, never), { linux: { cgroup_driver: "CGROUPFS" } });
  assert.deepEqual(
    await h.UpdateRuntimeConfig(
      { runtime_config: { network_config: { pod_cidr: "10.0.0.0/24" } } },
      never,
    ),
    {},
  );
});
