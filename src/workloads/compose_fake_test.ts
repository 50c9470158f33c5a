/**
 * compose up and down end to end on the FakeHost: each step of `up` failed
 * in turn (and each step of `down`), with the host's census checked after
 * each (src/testing/sweep.ts). The services use `network_mode: none` (their
 * own network namespace, no CNI network).
 */
import assert from "node:assert/strict";
import { loadCompose } from "../spec/compose.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { type Scenario, sweep, type SweepResult } from "../testing/sweep.ts";
import { composeDown, composeUp } from "./compose.ts";

const BUNDLE = "/fake/bundles/busybox";

function project(name: string) {
  const text = `services:
  web:
    image: ${BUNDLE}
    command: ["sleep", "1000"]
    network_mode: none
    depends_on: [db]
  db:
    image: ${BUNDLE}
    command: ["sleep", "1000"]
    network_mode: none
    volumes: [data:/data]
volumes:
  data: {}
`;
  return loadCompose([{ file: `/fake/${name}/compose.yaml`, text }], {
    env: {},
    dir: `/fake/${name}`,
    projectName: name,
  }).project;
}

const up = (host: FakeHost, name: string) =>
  composeUp(host, project(name), { warn: (m) => host.warn(m) });
const down = (host: FakeHost, name: string) =>
  composeDown(host, project(name), name, { volumes: true, timeoutSec: 1 });

/** The bundle and an unrelated project "other", up, that must survive. */
async function withOther(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  await up(host, "other");
}

function report(what: string, r: SweepResult): void {
  console.log(
    `${what}: ${r.steps.length} create steps failed in turn (${r.tolerated.length} survived), ` +
      `${r.teardownSteps.length} teardown steps (${r.teardownTolerated.length} survived), ${r.ms} ms`,
  );
  if (r.tolerated.length) console.log(`  up survived: ${r.tolerated.join(", ")}`);
  if (r.teardownTolerated.length) console.log(`  down survived: ${r.teardownTolerated.join(", ")}`);
}

Deno.test("composeUp() + composeDown(--volumes) on the FakeHost: down undoes exactly what up made", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  await up(host, "app");
  const made = diffSnapshots(before, host.snapshot());
  assert.ok(made.some((d) => d.startsWith("+ records compose/app")), made.join("\n"));
  assert.equal(made.filter((d) => d.startsWith("+ runtime fakert/")).length, 2, made.join("\n"));
  assert.ok(made.some((d) => d.includes("/volumes/")), made.join("\n"));
  await down(host, "app");
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

const scenario: Scenario = {
  setup: withOther,
  create: (host) => up(host, "app"),
  teardown: (host) => down(host, "app"),
};

Deno.test("composeUp(): each step failed in turn leaves nothing behind once down ran; each step of down failed leaves a retry that finishes", async () => {
  const r = await sweep(scenario, { teardownSweep: true, downAfterFailedCreate: true });
  report("compose up (2 services, a volume)", r);
  // A named volume is listed in the project record before its directory is
  // made, so a failed save (or rkl dying) in between leaves `down -v` knowing it.
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.length >= 20, `${r.steps.length} steps`);
});
