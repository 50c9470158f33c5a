/**
 * CNI networks end to end on the FakeHost: a container on rkl's bridge
 * network with a published port, a pod on it, and a compose project with two
 * networks and a named volume. Each create step failed in turn must leave
 * the host as it was, each teardown step failed must leave a second
 * teardown able to finish, and an unrelated object must survive
 * (src/testing/sweep.ts). The conflist and subnet claim of `rkl0` are made
 * by the unrelated object's create (they outlive every container, as on a
 * real host); bridges live in the fake's /sys/class/net, leases (with their
 * forwarded ports) in its CNI, the /run/lock flocks in its lock table.
 */
import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import { loadPods } from "../spec/pod.ts";
import { loadCompose } from "../spec/compose.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { type Scenario, sweep, type SweepResult } from "../testing/sweep.ts";
import { createContainer, removeContainer, startContainer } from "./container.ts";
import { createPod, removePod } from "./pod.ts";
import { composeDown, composeUp } from "./compose.ts";
import { gc } from "./gc.ts";

const BUNDLE = "/fake/bundles/busybox";
const CLAIMS = "/var/lib/rkl-subnets";

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

const container = (name: string, extra = "") =>
  loadContainer(
    `name: ${name}\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n${extra}`,
    `/fake/${name}.yaml`,
  );

const PORT = `ports:\n  - {containerPort: 80, hostPort: 8080}\n`;

/** The bundle, and an unrelated container "other" on no network, running. */
async function withOther(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  const rec = await createContainer(host, container("other"), { network: null });
  await startContainer(host, rec.name);
}

/**
 * As withOther, after an earlier container came and went on rkl0: what that
 * leaves is the network (its conflist, subnet claim and bridge, idle) and
 * host-local's data dir, as on a real host.
 */
async function withOtherAndRkl0(host: FakeHost): Promise<void> {
  await withOther(host);
  await createContainer(host, container("earlier"), { network: "rkl0" });
  await removeContainer(host, "earlier", { force: true });
  assert.ok(host.fs.exists("/sys/class/net/rkl0/bridge"), "the idle bridge stays with rkl0");
  assert.deepEqual(host.fs.readDir("/sys/class/net/rkl0/brif"), []);
}

/** As withOtherAndRkl0, then `rkl gc`, which deletes rkl0's idle bridge (the network stays). */
async function withOtherAndRkl0NoBridge(host: FakeHost): Promise<void> {
  await withOtherAndRkl0(host);
  const r = await gc(host);
  assert.ok(r.done.includes("deleted bridge rkl0"), r.done.join("\n"));
  assert.ok(!host.fs.exists("/sys/class/net/rkl0"));
}

const ipLinkDeletes = (host: FakeHost, bridge = "rkl0") =>
  host.cmd.calls.filter((c) =>
    c.cmd === "ip" && c.args.join(" ") === `link delete ${bridge} type bridge`
  ).length;

/** The same for pods: an unrelated pod on no network, and an earlier pod on rkl0, gone. */
async function withOtherPod(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  host.addPauseBundle();
  await createPod(host, pod("other", 0), { network: null });
  await createPod(host, pod("earlier"), { network: "rkl0" });
  await removePod(host, "earlier", { force: true });
}

Deno.test("a container on rkl0 with a published port: the bridge, lease, port and /etc files, and rm takes all back but the bridge, which gc deletes", async () => {
  const host = new FakeHost();
  await withOtherAndRkl0NoBridge(host);
  const before = host.snapshot();
  const rec = await createContainer(host, container("web", PORT), { network: "rkl0" });
  assert.equal(rec.network?.ip, "10.89.0.2");
  const made = diffSnapshots(before, host.snapshot());
  for (
    const want of [
      "+ leases rkl0 10.89.0.2 c_web/eth0 ports 8080:80/tcp",
      "+ files /sys/class/net/rkl0/brif/vethc_web0: ",
      "+ files /fake/var/lib/rkl/containers/web/etc/hosts: ",
      "+ records containers/web created",
    ]
  ) assert.ok(made.some((d) => d.startsWith(want)), `${want}\n${made.join("\n")}`);
  assert.equal(
    host.fs.readTextFile(`${CLAIMS}/10.89.0.0_24`),
    "/fake/etc/rkl/net.d/rkl0.conflist\n",
  );
  assert.ok(made.includes("+ files /sys/class/net/rkl0/bridge: dir 0755 0:0"), made.join("\n"));
  const deletes = ipLinkDeletes(host);
  await removeContainer(host, "web", { force: true });
  // The bridge is the network's: rm leaves it, idle; gc deletes it.
  assert.deepEqual(diffSnapshots(before, host.snapshot()), [
    "+ files /sys/class/net/rkl0: dir 0755 0:0",
    "+ files /sys/class/net/rkl0/bridge: dir 0755 0:0",
    "+ files /sys/class/net/rkl0/brif: dir 0755 0:0",
  ]);
  assert.equal(ipLinkDeletes(host), deletes);
  assert.ok((await gc(host)).done.includes("deleted bridge rkl0"));
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  assert.deepEqual(host.lock.list(), []);
});

Deno.test("a container on rkl0 with no bridge before: each create step failed in turn leaves no bridge (the rollback deletes the one its ADD made)", async () => {
  const r = await sweep({
    setup: withOtherAndRkl0NoBridge,
    create: (host) => createContainer(host, container("web", PORT), { network: "rkl0" }),
    // rm leaves the network's bridge; gc takes it back here.
    teardown: async (host) => {
      await removeContainer(host, "web", { force: true });
      await gc(host);
    },
  });
  report("container on rkl0, no bridge before", r);
  assert.deepEqual(r.problems, []);
  // Some failed steps came after the ADD had made the bridge.
  const add = r.steps.findIndex((p) => p.op === "cni.add");
  assert.ok(add >= 0 && add < r.steps.length - 1, r.steps.map((p) => p.op).join(" "));
  assert.ok(r.made.includes("+ files /sys/class/net/rkl0/bridge: dir 0755 0:0"), r.made.join("\n"));
});

Deno.test("a container on rkl0 with a published port: each create step failed in turn leaves nothing; each rm -f step failed leaves a retry that finishes", async () => {
  const r = await sweep({
    setup: withOtherAndRkl0,
    create: (host) => createContainer(host, container("web", PORT), { network: "rkl0" }),
    teardown: (host) => removeContainer(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("container on rkl0, port 8080", r);
  assert.deepEqual(r.problems, []);
  for (const op of ["cni.add", "lock.hold"]) {
    assert.ok(r.steps.some((p) => p.op === op), `${op} in ${r.steps.map((p) => p.op).join(" ")}`);
  }
  assert.ok(r.made.some((d) => d.includes("/sys/class/net/rkl0")), r.made.join("\n"));
});

Deno.test("the first container on rkl0 writes its conflist and claim: each step failed leaves no half-made network (a whole one may stay, as a network does)", async () => {
  const conflist = "/fake/etc/rkl/net.d/rkl0.conflist";
  const claim = `${CLAIMS}/10.89.0.0_24`;
  const r = await sweep({
    setup: async (host) => {
      await withOther(host);
      // What a host has before rkl's first network: the conf and claims dirs, host-local's data dir.
      for (const d of ["/fake/etc/rkl/net.d", CLAIMS, "/fake/var/lib/rkl/cni/networks/rkl0"]) {
        host.fs.mkdir(d, { recursive: true, mode: 0o755 });
      }
    },
    create: (host) => createContainer(host, container("web"), { network: "rkl0" }),
    // The network outlives the container: rm, then the network itself (its
    // idle bridge, as gc deletes it, then its files) is taken back here.
    teardown: async (host) => {
      await removeContainer(host, "web", { force: true });
      await gc(host);
      host.fs.quietly(() => {
        for (const p of [conflist, claim]) {
          if (host.fs.exists(p)) host.fs.remove(p);
        }
      });
    },
  });
  report("first container on rkl0 (conflist + claim)", r);
  // A failed create may leave the network it made whole (conflist, claim and their dirs), never a part.
  const byStep = new Map<string, string[]>();
  for (const p of r.problems) {
    const m = /^(.*?): left \+ files (\S+): /.exec(p);
    if (!m) continue;
    byStep.set(m[1], [...byStep.get(m[1]) ?? [], m[2]]);
  }
  const whole = [claim, conflist].sort();
  for (const [step, left] of byStep) assert.deepEqual(left.sort(), whole, step);
  assert.deepEqual(r.problems.filter((p) => !/: left \+ files /.test(p)), []);
  assert.ok(byStep.size > 0, "some failed step came after the network was made");
  assert.ok(r.steps.some((p) => p.op === "fs.rename" && p.detail.includes("rkl0.conflist")));
});

const pod = (name: string, port = 8081) =>
  loadPods(
    `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  containers:
  - name: app
    image: ${BUNDLE}
    args: ["sleep", "1000"]
${port ? `    ports: [{containerPort: 80, hostPort: ${port}}]\n` : ""}`,
    `/fake/${name}.yaml`,
  )[0];

Deno.test("a pod on rkl0 with a published port: each create step failed in turn leaves nothing; each rm -f step failed leaves a retry that finishes", async () => {
  const host = new FakeHost();
  await withOtherPod(host);
  const before = host.snapshot();
  await createPod(host, pod("web"), { network: "rkl0" });
  const made = diffSnapshots(before, host.snapshot());
  assert.ok(made.includes("+ leases rkl0 10.89.0.2 p_web/eth0 ports 8081:80/tcp"), made.join("\n"));
  await removePod(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);

  const r = await sweep({
    setup: withOtherPod,
    create: (host) => createPod(host, pod("web"), { network: "rkl0" }),
    teardown: (host) => removePod(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("pod on rkl0, port 8081", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.some((p) => p.op === "cni.add"));
});

Deno.test("a pod on rkl0 with no bridge before: each create step failed in turn leaves no bridge; rm leaves it, gc deletes it", async () => {
  const noBridge = async (host: FakeHost) => {
    await withOtherPod(host);
    assert.ok(host.fs.exists("/sys/class/net/rkl0/bridge"), "the idle bridge stays with rkl0");
    await gc(host);
    assert.ok(!host.fs.exists("/sys/class/net/rkl0"));
  };
  const host = new FakeHost();
  await noBridge(host);
  const before = host.snapshot();
  await createPod(host, pod("web"), { network: "rkl0" });
  await removePod(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), [
    "+ files /sys/class/net/rkl0: dir 0755 0:0",
    "+ files /sys/class/net/rkl0/bridge: dir 0755 0:0",
    "+ files /sys/class/net/rkl0/brif: dir 0755 0:0",
  ]);
  const r = await sweep({
    setup: noBridge,
    create: (host) => createPod(host, pod("web"), { network: "rkl0" }),
    teardown: async (host) => {
      await removePod(host, "web", { force: true });
      await gc(host);
    },
  });
  report("pod on rkl0, no bridge before", r);
  assert.deepEqual(r.problems, []);
  const add = r.steps.findIndex((p) => p.op === "cni.add");
  assert.ok(add >= 0 && add < r.steps.length - 1, r.steps.map((p) => p.op).join(" "));
});

function project(name: string, port = 8082) {
  const text = `services:
  web:
    image: ${BUNDLE}
    command: ["sleep", "1000"]
    networks: [front, back]
    ports: ["${port}:80"]
    depends_on: [db]
  db:
    image: ${BUNDLE}
    command: ["sleep", "1000"]
    networks: [back]
    volumes: [data:/data]
networks:
  front: {}
  back: {}
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

/** The bundle and an unrelated project "other" with networks of its own, up. */
async function withOtherProject(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  await composeUp(host, project("other", 8090), { warn: (m) => host.warn(m) });
}

Deno.test("compose up of two services on two networks with a volume, and down -v: conflists, claims, bridges, leases and the volume all go", async () => {
  const host = new FakeHost();
  await withOtherProject(host);
  const before = host.snapshot();
  await up(host, "app");
  const made = diffSnapshots(before, host.snapshot());
  assert.equal(made.filter((d) => /^\+ files \/fake\/etc\/rkl\/net\.d\/cmp-/.test(d)).length, 2);
  assert.equal(made.filter((d) => d.startsWith(`+ files ${CLAIMS}/`)).length, 2);
  assert.equal(made.filter((d) => d.startsWith("+ leases ")).length, 3, made.join("\n"));
  assert.ok(made.some((d) => / ports 8082:80\/tcp$/.test(d)), made.join("\n"));
  assert.ok(made.some((d) => d.includes("/volumes/app_data")), made.join("\n"));
  // The two projects' networks got subnets apart.
  const subnets = host.fs.readDir(CLAIMS).map((e) => e.name).sort();
  assert.equal(new Set(subnets).size, 4, subnets.join(" "));
  await down(host, "app");
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

Deno.test("compose up with two networks and a volume: each step failed in turn leaves nothing once down ran; each step of down failed leaves a retry that finishes", async () => {
  const scenario: Scenario = {
    setup: withOtherProject,
    create: (host) => up(host, "app"),
    teardown: (host) => down(host, "app"),
  };
  const r = await sweep(scenario, { teardownSweep: true, downAfterFailedCreate: true });
  report("compose up (2 services, 2 networks, a volume, a port)", r);
  assert.deepEqual(r.problems, []);
  // The record that lists the volume and the networks is saved before either is made.
  assert.ok(r.steps.some((p) => p.op === "store.put" && p.detail === "compose/app"));
  assert.ok(r.steps.filter((p) => p.op === "cni.add").length >= 3);
});

Deno.test("another root's rkl0 gets its own bridge and the first subnet nothing on the host uses: a route, another root's claim; a stale claim is pruned", async () => {
  const host = new FakeHost();
  host.paths.tag = "rdeadbeef-";
  await withOther(host);
  host.fs.mkdir("/proc/net", { recursive: true });
  host.fs.writeTextFile(
    "/proc/net/route",
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
      "eth9\t0001590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
  );
  host.fs.mkdir("/srv/b/net.d", { recursive: true });
  host.fs.writeTextFile(
    "/srv/b/net.d/rkl0.conflist",
    JSON.stringify({
      name: "rkl0",
      plugins: [{ ipam: { ranges: [[{ subnet: "10.89.2.0/24" }]] } }],
    }),
  );
  host.fs.mkdir(CLAIMS, { recursive: true });
  host.fs.writeTextFile(`${CLAIMS}/10.89.2.0_24`, "/srv/b/net.d/rkl0.conflist\n");
  host.fs.writeTextFile(`${CLAIMS}/10.89.3.0_24`, "/srv/gone/net.d/rkl0.conflist\n");
  const rec = await createContainer(host, container("web"), { network: "rkl0" });
  assert.equal(rec.network?.ip, "10.89.3.2");
  assert.ok(host.fs.exists("/sys/class/net/rkl0-deadbeef/brif"));
  assert.deepEqual(host.fs.readDir(CLAIMS).map((e) => e.name).sort(), [
    "10.89.2.0_24",
    "10.89.3.0_24",
  ]);
  assert.equal(
    host.fs.readTextFile(`${CLAIMS}/10.89.3.0_24`),
    "/fake/etc/rkl/net.d/rkl0.conflist\n",
  );
  assert.deepEqual(host.cni.list(), ["rkl0 10.89.3.2 rdeadbeef-c_web/eth0"]);
  await removeContainer(host, "web", { force: true });
  assert.ok(
    host.fs.exists("/sys/class/net/rkl0-deadbeef/bridge"),
    "rm leaves the network's bridge",
  );
  await gc(host);
  assert.ok(!host.fs.exists("/sys/class/net/rkl0-deadbeef"));
});
