import assert from "node:assert/strict";
import type { ContainerSpec } from "../spec/container.ts";
import { podLimits, podPhase } from "./pod.ts";

function c(
  limits: { cpu?: string; memory?: string },
  requests: { cpu?: string } = {},
): ContainerSpec {
  return {
    name: "c",
    image: "/b",
    env: [],
    ports: [],
    resources: { limits, requests },
    mounts: [],
    securityContext: {},
    tty: false,
    labels: {},
  };
}

Deno.test("podLimits() sums the containers' limits when every container has one", () => {
  assert.deepEqual(
    podLimits([c({ cpu: "200m", memory: "64Mi" }), c({ cpu: "300m", memory: "32Mi" })]),
    {
      cpuQuota: 50_000,
      cpuPeriod: 100_000,
      memoryLimit: 96 * 1024 * 1024,
      cpuShares: 512,
    },
  );
});

Deno.test("podLimits() sets no pod limit for a resource some container leaves unlimited", () => {
  const l = podLimits([c({ cpu: "200m" }), c({ memory: "32Mi" })]);
  assert.equal(l.cpuQuota, undefined);
  assert.equal(l.memoryLimit, undefined);
  assert.equal(l.cpuShares, 204);
});

Deno.test("podLimits() takes shares from requests, and 2 shares for best effort", () => {
  assert.equal(podLimits([c({}, { cpu: "1" })]).cpuShares, 1024);
  assert.equal(podLimits([c({})]).cpuShares, 2);
});

Deno.test("podPhase() follows the Kubernetes pod phases", () => {
  assert.equal(podPhase(false, []), "Creating");
  assert.equal(podPhase(true, ["created", "created"]), "Pending");
  assert.equal(podPhase(true, ["running", "exited"]), "Running");
  assert.equal(podPhase(true, ["exited", "exited"]), "Succeeded");
});
