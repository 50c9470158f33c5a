import assert from "node:assert/strict";
import { SpecError } from "../../errors.ts";
import { loadContainer } from "../../spec/container.ts";
import { limitFields, rootlessPlan } from "./rootless.ts";
import type { ContainerPlan } from "./types.ts";

const RL = {
  unprivilegedPortStart: 1024,
  createNetns: () => {},
  limitsReason: "this host has cgroup v1",
};

function planOf(): ContainerPlan {
  return {
    config: {
      linux: {
        resources: { memory: { limit: 67108864 }, pids: { limit: 4096 } },
        cgroupsPath: "/rkl/c",
      },
    },
  } as unknown as ContainerPlan;
}

function setUp(yaml: string) {
  const warnings: string[] = [];
  const loaded = loadContainer(yaml, "/w/c.yaml");
  const host = { warn: (m: string) => warnings.push(m), rootless: RL };
  return { loaded, host, warnings };
}

const LIMITED =
  "name: c\nimage: busybox\nargs: [sh]\nresources:\n  limits:\n    memory: 64Mi\n    cpu: 500m\n";

Deno.test("rootlessPlan() warns once naming each limit with its line, and drops cgroupsPath and resources", () => {
  const { loaded, host, warnings } = setUp(LIMITED);
  const plan = planOf();
  rootlessPlan(host, loaded, { plan });
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0],
    /^\/w\/c\.yaml:7:10: resources\.limits\.cpu, resources\.limits\.memory not applied: a rootless rkl cannot write cgroups \(this host has cgroup v1\)/,
  );
  assert.deepEqual(plan.config.linux.resources, {});
  assert.equal((plan.config.linux as { cgroupsPath?: string }).cgroupsPath, undefined);
});

Deno.test("rootlessPlan() refuses limits under strict, with the field's place", () => {
  const { loaded, host, warnings } = setUp(LIMITED);
  assert.throws(
    () => rootlessPlan(host, loaded, { plan: planOf(), strict: true }),
    (e) => e instanceof SpecError && /cannot be applied rootless/.test(e.message),
  );
  assert.deepEqual(warnings, []);
});

Deno.test("rootlessPlan() is silent for a spec without limits (rkl's default pids limit goes quietly)", () => {
  const { loaded, host, warnings } = setUp("name: c\nimage: busybox\nargs: [sh]\n");
  const plan = planOf();
  rootlessPlan(host, loaded, { plan, strict: true });
  assert.deepEqual(warnings, []);
  assert.deepEqual(plan.config.linux.resources, {});
  assert.deepEqual(limitFields(loaded), []);
});

Deno.test("rootlessPlan() refuses a host port below ip_unprivileged_port_start", () => {
  const { loaded, host } = setUp(
    "name: c\nimage: busybox\nargs: [sh]\nports:\n  - containerPort: 80\n    hostPort: 80\n",
  );
  assert.throws(
    () => rootlessPlan(host, loaded, { plan: planOf() }),
    (e) =>
      e instanceof SpecError &&
      /host port 80 is below net\.ipv4\.ip_unprivileged_port_start \(1024\)/.test(e.message),
  );
  const ok = setUp(
    "name: c\nimage: busybox\nargs: [sh]\nports:\n  - containerPort: 80\n    hostPort: 8080\n",
  );
  rootlessPlan(ok.host, ok.loaded, { plan: planOf() });
});
