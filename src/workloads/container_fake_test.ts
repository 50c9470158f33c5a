/**
 * Single containers end to end on the FakeHost: create and teardown without
 * root, each step of the create failed in turn (and each step of rm -f),
 * with the host's census checked after each (src/testing/sweep.ts).
 */
import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { type Scenario, sweep, type SweepResult } from "../testing/sweep.ts";
import { ConflictError } from "../errors.ts";
import { eventLogPath } from "./event_log.ts";
import {
  createContainer,
  killContainer,
  removeContainer,
  runContainer,
  startContainer,
  stopContainer,
} from "./container.ts";

const BUNDLE = "/fake/bundles/busybox";

function yaml(name: string, extra = ""): string {
  return `name: ${name}\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n${extra}`;
}

const load = (name: string, extra = "") => loadContainer(yaml(name, extra), `/fake/${name}.yaml`);

/**
 * A bundle and an unrelated container "other", created the same way and
 * running, that must survive. It also makes the directories every container
 * of its kind shares and no teardown removes (containers/, exits/, netns/…).
 */
async function withOther(host: FakeHost, options: { hostNetwork?: boolean } = {}): Promise<void> {
  host.addBundle(BUNDLE);
  const rec = await createContainer(host, load("other"), { network: null, ...options });
  await startContainer(host, rec.name);
}

function report(what: string, r: SweepResult): void {
  console.log(
    `${what}: ${r.steps.length} create steps failed in turn (${r.tolerated.length} survived), ` +
      `${r.teardownSteps.length} teardown steps (${r.teardownTolerated.length} survived), ${r.ms} ms`,
  );
  if (r.tolerated.length) console.log(`  create survived: ${r.tolerated.join(", ")}`);
  if (r.teardownTolerated.length) {
    console.log(`  teardown survived: ${r.teardownTolerated.join(", ")}`);
  }
}

Deno.test("createContainer() + rm -f on the FakeHost: rm undoes exactly what create made", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  const rec = await createContainer(host, load("web"), { network: null });
  assert.equal(rec.status, "created");
  const made = diffSnapshots(before, host.snapshot());
  for (
    const want of [
      "+ records containers/web created",
      "+ runtime fakert/web created",
      "+ processes container web",
      "+ processes conmon web",
    ]
  ) assert.ok(made.includes(want), `${want}\n${made.join("\n")}`);
  for (const part of ["mounts", "cgroups"]) {
    assert.ok(
      made.some((d) => d.startsWith(`+ ${part} `)),
      `a ${part} line in\n${made.join("\n")}`,
    );
  }
  await removeContainer(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

Deno.test("run, stop, rm on the FakeHost: each step of the life cycle, and rm leaves the host as it was", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  const rec = await runContainer(host, load("web"), { network: null });
  assert.equal(rec.status, "running");
  await assert.rejects(removeContainer(host, "web"), /it is running/);
  const stopped = await stopContainer(host, "web", 1);
  assert.equal(stopped.status, "exited");
  assert.equal(stopped.exitCode, 143);
  await startContainer(host, "web").catch(() => {}); // an exited container may be started again or refused
  await stopContainer(host, "web", 1);
  await removeContainer(host, "web");
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

/** The event log's lines, parsed. */
function logged(host: FakeHost): Record<string, string>[] {
  let text = "";
  try {
    text = host.fs.quietly(() => host.fs.readTextFile(eventLogPath(host.paths)));
  } catch { /* no event yet */ }
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

Deno.test("stop and kill log docker's events: kill with the signal's number, then stop; a refused kill logs none", async () => {
  const host = new FakeHost();
  await withOther(host);
  await runContainer(host, load("web"), { network: null });
  const mine = () =>
    logged(host).filter((e) => e.container === "web").map((e) =>
      [e.action, e.signal, e.image].filter(Boolean).join(" ")
    );
  await stopContainer(host, "web", 1);
  assert.deepEqual(mine(), [`kill 15 ${BUNDLE}`, `stop ${BUNDLE}`]);
  await assert.rejects(killContainer(host, "web", "SIGKILL"), ConflictError);
  assert.equal(mine().length, 2, "an exited container is not signalled");
  // A stop of what is stopped sends nothing and logs nothing.
  await stopContainer(host, "web", 1);
  assert.equal(mine().length, 2);
  await runContainer(host, load("web2"), { network: null });
  await killContainer(host, "web2", "SIGKILL");
  const k = logged(host).filter((e) => e.container === "web2");
  assert.deepEqual(k.map((e) => `${e.action} ${e.signal}`), ["kill 9"]);
  await removeContainer(host, "web2", { force: true });
  await removeContainer(host, "web", { force: true });
});

Deno.test("rm logs docker's die (at the exit's time, with its code) before destroy; a container never started logs no die", async () => {
  const host = new FakeHost();
  await withOther(host);
  await runContainer(host, load("web"), { network: null });
  const stopped = await stopContainer(host, "web", 1);
  await removeContainer(host, "web");
  const web = logged(host).filter((e) => e.container === "web");
  assert.deepEqual(web.map((e) => e.action), ["kill", "stop", "die", "destroy"]);
  const die = web[2];
  assert.equal(die.exitCode, stopped.exitCode);
  assert.equal(die.time, stopped.finishedAt, "the exit's own time, not the removal's");
  // rm -f of a running one: docker's kill (SIGKILL), its die, destroy.
  await runContainer(host, load("forced"), { network: null });
  await removeContainer(host, "forced", { force: true });
  assert.deepEqual(
    logged(host).filter((e) => e.container === "forced").map((e) =>
      `${e.action}${e.signal ? ` ${e.signal}` : ""}`
    ),
    ["kill 9", "die", "destroy"],
  );
  await createContainer(host, load("made"), { network: null });
  await removeContainer(host, "made", { force: true });
  assert.deepEqual(logged(host).filter((e) => e.container === "made").map((e) => e.action), [
    "destroy",
  ]);
});

const single: Scenario = {
  setup: withOther,
  create: (host) => createContainer(host, load("web"), { network: null }),
  teardown: (host) => removeContainer(host, "web", { force: true }),
};

Deno.test("createContainer(): each step failed in turn leaves nothing; each step of rm -f failed leaves a retry that finishes", async () => {
  const r = await sweep(single, { teardownSweep: true });
  report("container create (own netns, no network)", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.length >= 10, `${r.steps.length} steps: ${r.steps.map((p) => p.op).join(" ")}`);
});

Deno.test("runContainer(): each step of create + start failed in turn leaves nothing", async () => {
  const r = await sweep({
    setup: withOther,
    create: (host) => runContainer(host, load("web"), { network: null }),
    teardown: (host) => removeContainer(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("container run", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.some((p) => p.op === "runtime.start"));
});

Deno.test("createContainer() with hostNetwork: each step failed in turn leaves nothing", async () => {
  const r = await sweep({
    setup: (host) => {
      host.fs.mkdir("/etc"); // the host's /etc files a host-network container copies
      host.fs.writeTextFile("/etc/hosts", "127.0.0.1 localhost\n");
      return withOther(host, { hostNetwork: true });
    },
    create: (host) => createContainer(host, load("web"), { network: null, hostNetwork: true }),
    teardown: (host) => removeContainer(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("container create (host network)", r);
  assert.deepEqual(r.problems, []);
});
