/**
 * Two state roots on one host, side by side, through the CLI against the
 * real runtime, conmon, CNI plugins and iptables (issue 29, item 2): the
 * same container names and host ports, the default network rkl writes
 * itself (no conflist from the test), compose projects of the same name,
 * and a bridge shared on purpose. Each test ends with a census of both roots
 * equal to the one taken before.
 */
import assert from "node:assert/strict";
import { type Census, census } from "../_helpers/census.ts";
import { makeEnv, removeAll, rkl, type RklEnv, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { shortHash } from "../../src/workloads/host.ts";
import { bridgeConflist, conflistPath } from "../../src/net/network.ts";
import { SUBNET_CLAIMS_DIR } from "../../src/net/hostnet.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const BUSYBOX = `${REPO}/bundles/busybox`;
/** Host ports of this file: 18917-18919. */
const PORT = 18917;

/**
 * A root that writes its own default network: no conflist from the test, no
 * RKL_SUBNET, no RKL_CGROUP_PARENT, so rkl's own per-root choices are used.
 */
async function bareEnv(label: string): Promise<RklEnv> {
  const dir = await Deno.makeTempDir({ prefix: `rkl-${label}-` });
  const root = `${dir}/root`;
  return {
    dir,
    root,
    runRoot: `${dir}/run`,
    cgroupParent: `rkl-${shortHash(root)}`,
    network: "rkl0",
    subnet: "",
    env: { RKL_ROOT: root, RKL_RUN_ROOT: `${dir}/run` },
  };
}

/** Removes what a failed test left of an env: workloads, its bridges, claims, the dir. */
async function dropEnv(e: RklEnv, bridges: string[]): Promise<void> {
  await removeAll(e);
  for (const b of bridges) {
    await new Deno.Command("ip", { args: ["link", "delete", b], stderr: "null" }).output();
  }
  for (const c of claimsOf(e)) await Deno.remove(`${SUBNET_CLAIMS_DIR}/${c}`).catch(() => {});
  await Deno.remove(e.dir, { recursive: true }).catch(() => {});
}

/** The host-wide subnet claims that point into `e`'s dir. */
function claimsOf(e: RklEnv): string[] {
  try {
    return [...Deno.readDirSync(SUBNET_CLAIMS_DIR)].filter((c) => {
      try {
        return Deno.readTextFileSync(`${SUBNET_CLAIMS_DIR}/${c.name}`).startsWith(`${e.dir}/`);
      } catch {
        return false;
      }
    }).map((c) => c.name);
  } catch {
    return [];
  }
}

async function spec(e: RklEnv, file: string, body: string): Promise<string> {
  const path = `${e.dir}/${file}`;
  await Deno.writeTextFile(path, `image: ${BUSYBOX}\n${body}`);
  return path;
}

const WEB = (port?: number) =>
  `name: web\nargs: [sleep, "3600"]\n${
    port ? `ports:\n  - containerPort: 80\n    hostPort: ${port}\n` : ""
  }`;

async function state(e: RklEnv, name: string): Promise<{ ip: string; pid: number }> {
  return JSON.parse(await rklOk(e, ["container", "state", name, "-o", "json"]));
}

async function links(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["-o", "link"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
    .map((l) => l.split(": ")[1].split("@")[0]);
}

/** The interfaces attached to `bridge`. */
function ports(bridge: string): string[] {
  return [...Deno.readDirSync(`/sys/class/net/${bridge}/brif`)].map((e) => e.name);
}

/**
 * `rkl gc` of root `e` deletes its idle bridge `own` (and says so), and
 * leaves `others` (another root's) where they are.
 */
async function gcDeletes(e: RklEnv, own: string, ...others: string[]): Promise<void> {
  const out = await rklOk(e, ["gc"]);
  assert.match(out, new RegExp(`deleted bridge ${own.replaceAll(".", "\\.")}\\b`), out);
  const names = await links();
  assert.ok(!names.includes(own), `${own} is still there after gc`);
  for (const o of others) {
    assert.ok(names.includes(o), `${o}, another root's, was deleted by this root's gc`);
  }
}

/** The /24 an IPv4 address is in, and its gateway (.1), as rkl's bridge networks make them. */
const net24 = (ip: string) => ip.split(".").slice(0, 3).join(".");

async function pingGateway(e: RklEnv, name: string, gw: string): Promise<number> {
  const r = await rkl(e, ["container", "exec", name, "--", "ping", "-c", "1", "-W", "2", gw]);
  return r.code;
}

/** A failure of one line on stderr, exit code 1. */
function assertRefused(label: string, r: { code: number; stderr: string }, want: RegExp): void {
  assert.equal(r.code, 1, `${label}: exit code ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, want, label);
  assert.equal(r.stderr.trim().split("\n").length, 1, `${label}: one line: ${r.stderr}`);
}

/**
 * A test over roots `envs()` that leaves each root's census (links, nat,
 * cgroups under its parent, mounts, records, leases, files) as it was, once
 * each root's `rkl gc` has deleted the idle bridges its networks keep.
 */
function rootsTest(
  name: string,
  envs: () => Promise<{ roots: RklEnv[]; bridges: string[] }>,
  fn: (roots: RklEnv[], bridges: string[]) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: !ready,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const { roots, bridges } = await envs();
      try {
        const before: Census[] = [];
        for (const e of roots) before.push(await census(e));
        await fn(roots, bridges);
        // A root's census counts the other root's bridges: each root's gc
        // deletes the idle ones its last removals left (they are the networks').
        for (const e of roots) await rklOk(e, ["gc"]);
        for (const [i, e] of roots.entries()) {
          assert.deepEqual(await census(e), before[i], `the host census of root ${i} changed`);
          const list = await rklOk(e, ["container", "list", "-q"]);
          assert.equal(list, "", `root ${i} still lists containers`);
        }
      } finally {
        for (const e of roots) await dropEnv(e, bridges);
      }
    },
  });
}

const bare = async () => {
  const roots = [await bareEnv("roots-a"), await bareEnv("roots-b")];
  return { roots, bridges: roots.map((e) => `rkl0-${shortHash(e.root)}`) };
};

rootsTest(
  "two roots: the same name and hostPort; the second publish is refused with one line",
  bare,
  async ([a, b]) => {
    await rklOk(a, ["container", "run", await spec(a, "web.yaml", WEB(PORT))]);
    // B's own records know nothing of the port: A's nat rule holds it.
    const refused = await rkl(b, ["container", "run", await spec(b, "web.yaml", WEB(PORT))]);
    assertRefused(
      "same port",
      refused,
      new RegExp(
        `web\\.yaml:\\d+:\\d+: Cannot publish port ${PORT}/tcp: a nat rule forwards it to CNI container "r${
          shortHash(a.root)
        }-c_web"`,
      ),
    );
    assert.deepEqual(JSON.parse(await rklOk(b, ["container", "list", "-o", "json"])), []);
    // Both at once, again and again: exactly one of the two publishes it.
    await rklOk(a, ["container", "rm", "-f", "web"]);
    for (let round = 0; round < 3; round++) {
      const both = await Promise.all(
        [a, b].map(async (e) => rkl(e, ["container", "run", await spec(e, "web.yaml", WEB(PORT))])),
      );
      const ok = both.filter((r) => r.code === 0).length;
      assert.equal(
        ok,
        1,
        `round ${round}: ${both.map((r) => r.code + " " + r.stderr).join(" | ")}`,
      );
      const loser = both.find((r) => r.code !== 0)!;
      assertRefused(`round ${round}`, loser, /Cannot publish port 18917\/tcp: /);
      for (const e of [a, b]) await rklOk(e, ["container", "rm", "-f", "web"]).catch(() => {});
      for (const e of [a, b]) {
        assert.equal(await rklOk(e, ["container", "list", "-q"]), "");
      }
    }
  },
);

rootsTest(
  "two roots on their default networks: own bridge, subnet, addresses and cgroups; the last removal leaves each bridge, one root's gc deletes its own only",
  bare,
  async ([a, b], [brA, brB]) => {
    await rklOk(a, ["container", "run", await spec(a, "web.yaml", WEB())]);
    await rklOk(b, ["container", "run", await spec(b, "web.yaml", WEB())]);
    const [sa, sb] = [await state(a, "web"), await state(b, "web")];
    assert.notEqual(sa.ip, sb.ip);
    assert.notEqual(net24(sa.ip), net24(sb.ip), "two roots share a subnet");
    const names = await links();
    assert.ok(names.includes(brA) && names.includes(brB), `bridges ${brA}, ${brB} in ${names}`);
    // Each root's cgroup parent is its own: the same name lands in two cgroups.
    for (const [e, s] of [[a, sa], [b, sb]] as const) {
      const procs = Deno.readTextFileSync(
        `/sys/fs/cgroup/memory/${e.cgroupParent}/web/cgroup.procs`,
      ).split("\n").map(Number);
      assert.ok(procs.includes(s.pid), `${s.pid} in ${e.cgroupParent}/web`);
    }
    assert.notEqual(a.cgroupParent, b.cgroupParent);
    assert.equal(await pingGateway(b, "web", `${net24(sb.ip)}.1`), 0);
    // A's last container goes; its bridge stays (the network's), idle; B's
    // container still reaches its gateway.
    await rklOk(a, ["container", "rm", "-f", "web"]);
    assert.ok((await links()).includes(brA), "A's bridge went with its last container");
    assert.deepEqual(ports(brA), [], "A's bridge is idle");
    assert.ok((await links()).includes(brB), "B's bridge was deleted under its container");
    assert.equal(await pingGateway(b, "web", `${net24(sb.ip)}.1`), 0, "B lost its gateway");
    await rklOk(b, ["container", "rm", "-f", "web"]);
    assert.ok((await links()).includes(brB), "B's bridge went with its last container");
    // Each root's gc deletes its own idle bridge, never the other's.
    await gcDeletes(a, brA, brB);
    await gcDeletes(b, brB);
    // Each root's rkl0 claims one subnet host-wide, for as long as its conflist exists.
    assert.equal(claimsOf(a).length, 1);
    assert.equal(claimsOf(b).length, 1);
    assert.notDeepEqual(claimsOf(a), claimsOf(b));
  },
);

rootsTest(
  "two roots: pods of the same name; the same hostPort is refused; the last pod leaves each bridge, one root's gc deletes its own only",
  bare,
  async ([a, b], [brA, brB]) => {
    const pod = (port?: number) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: db}\nspec:\n  containers:\n` +
      `    - name: main\n      image: ${BUSYBOX}\n      command: [sleep, "3600"]\n` +
      (port ? `      ports: [{containerPort: 80, hostPort: ${port}}]\n` : "");
    const write = async (e: RklEnv, body: string) => {
      await Deno.writeTextFile(`${e.dir}/pod.yaml`, body);
      return `${e.dir}/pod.yaml`;
    };
    await rklOk(a, ["pod", "run", await write(a, pod(PORT))]);
    assertRefused(
      "same port",
      await rkl(b, ["pod", "run", await write(b, pod(PORT))]),
      new RegExp(`pod\\.yaml:\\d+:\\d+: Cannot publish port ${PORT}/tcp: a nat rule forwards it`),
    );
    await rklOk(b, ["pod", "run", await write(b, pod())]);
    const ip = async (e: RklEnv) =>
      (JSON.parse(await rklOk(e, ["pod", "state", "db", "-o", "json"])) as { ip: string }).ip;
    const [ipA, ipB] = [await ip(a), await ip(b)];
    assert.notEqual(net24(ipA), net24(ipB), "two roots' pods share a subnet");
    await rklOk(a, ["pod", "rm", "-f", "db"]);
    const names = await links();
    assert.ok(names.includes(brA), "A's bridge went with its last pod");
    assert.deepEqual(ports(brA), [], "A's bridge is idle");
    assert.ok(names.includes(brB), "B's bridge was deleted under its pod");
    const ping = await rkl(b, [
      "pod",
      "exec",
      "db",
      "main",
      "--",
      "ping",
      "-c",
      "1",
      "-W",
      "2",
      `${net24(ipB)}.1`,
    ]);
    assert.equal(ping.code, 0, `B's pod lost its gateway: ${ping.stdout}${ping.stderr}`);
    // A's gc while B's pod runs: A's idle bridge goes, B's (in use) stays.
    await gcDeletes(a, brA, brB);
    await rklOk(b, ["pod", "rm", "-f", "db"]);
    assert.ok((await links()).includes(brB), "B's bridge went with its last pod");
    await gcDeletes(b, brB);
  },
);

rootsTest(
  "two roots: compose projects of the same name both come up, on bridges and subnets of their own",
  bare,
  async ([a, b]) => {
    const dirs: string[] = [];
    // The same project name; each root publishes a port of its own.
    for (const [e, port] of [[a, PORT + 1], [b, PORT + 2]] as const) {
      const dir = `${e.dir}/twin`;
      await Deno.mkdir(dir);
      await Deno.writeTextFile(
        `${dir}/compose.yaml`,
        `name: twin\nservices:\n  app:\n    image: ${BUSYBOX}\n    command: [sleep, "3600"]\n` +
          `    ports: ["${port}:80"]\n  side:\n    image: ${BUSYBOX}\n    command: [sleep, "3600"]\n` +
          `    networks: [back]\nnetworks:\n  back: {}\n`,
      );
      dirs.push(dir);
    }
    const ps = async (e: RklEnv, dir: string) =>
      JSON.parse(await rklOk(e, ["compose", "ps", "-a", "-o", "json"], { cwd: dir })) as {
        name: string;
        status: string;
        ip: string;
      }[];
    try {
      const upA = await rkl(a, ["compose", "up", "-d"], { cwd: dirs[0] });
      assert.equal(upA.code, 0, upA.stderr);
      const upB = await rkl(b, ["compose", "up", "-d"], { cwd: dirs[1] });
      assert.equal(upB.code, 0, upB.stderr);
      const [pa, pb] = [await ps(a, dirs[0]), await ps(b, dirs[1])];
      for (const p of [...pa, ...pb]) assert.equal(p.status, "running", JSON.stringify(p));
      const subnets = (p: { ip: string }[]) => p.map((c) => net24(c.ip)).sort();
      assert.equal(new Set([...subnets(pa), ...subnets(pb)]).size, 4, "four networks, four /24s");
      const bridges = (e: RklEnv) =>
        Object.values(
          JSON.parse(Deno.readTextFileSync(`${e.root}/records/compose/twin.json`))
            .networks as Record<
              string,
              { rklName: string }
            >,
        ).map((n) => n.rklName);
      const all = [...bridges(a), ...bridges(b)];
      assert.equal(new Set(all).size, 4, `bridges ${all}`);
      const names = await links();
      for (const br of all) assert.ok(names.includes(br), `${br} in ${names}`);
      // B's project goes; A's bridges and gateways stay.
      const downB = await rkl(b, ["compose", "down", "-t", "0"], { cwd: dirs[1] });
      assert.equal(downB.code, 0, downB.stderr);
      const after = await links();
      for (const br of bridges(a)) assert.ok(after.includes(br), `${br} deleted by B's down`);
      for (const c of pa) assert.equal(await pingGateway(a, c.name, `${net24(c.ip)}.1`), 0);
      assert.deepEqual(claimsOf(b), [], "B's down released its subnets");
      const downA = await rkl(a, ["compose", "down", "-t", "0"], { cwd: dirs[0] });
      assert.equal(downA.code, 0, downA.stderr);
      assert.deepEqual(claimsOf(a), []);
      assert.ok(!(await links()).some((l) => all.includes(l)), "a project bridge is left");
    } finally {
      await rkl(a, ["compose", "down", "-t", "0"], { cwd: dirs[0] });
      await rkl(b, ["compose", "down", "-t", "0"], { cwd: dirs[1] });
    }
  },
);

rootsTest(
  "two roots sharing one bridge through their own conflists: gc deletes it only once no veth of either is attached",
  async () => {
    const a = await makeEnv("roots-a", 17);
    const b = await makeEnv("roots-b", 18);
    // One bridge and subnet (A's), two disjoint lease ranges: a deliberate share.
    const bridge = a.network;
    for (const [e, from, to] of [[a, 2, 99], [b, 100, 199]] as const) {
      const list = bridgeConflist("shared", {
        subnet: a.subnet,
        ipamDataDir: `${e.root}/cni/networks`,
        bridge,
      });
      const base = net24(a.subnet);
      Object.assign((list.plugins[0].ipam as { ranges: unknown[][] }).ranges[0][0] as object, {
        rangeStart: `${base}.${from}`,
        rangeEnd: `${base}.${to}`,
      });
      await Deno.writeTextFile(conflistPath(`${e.root}/net.d`, "shared"), JSON.stringify(list));
    }
    return { roots: [a, b], bridges: [bridge, b.network] };
  },
  async ([a, b], [bridge]) => {
    for (const e of [a, b]) {
      await rklOk(e, ["container", "run", "--network", "shared", await spec(e, "web.yaml", WEB())]);
    }
    const sb = await state(b, "web");
    assert.ok(Number(sb.ip.split(".")[3]) >= 100, sb.ip);
    await rklOk(a, ["container", "rm", "-f", "web"]);
    assert.ok((await links()).includes(bridge), "the shared bridge went with A's last container");
    // A no longer uses it, but B's veth is on it: A's gc keeps it.
    assert.doesNotMatch(await rklOk(a, ["gc"]), new RegExp(`deleted bridge ${bridge}\\b`));
    assert.ok((await links()).includes(bridge), "A's gc deleted the bridge under B's container");
    assert.equal(await pingGateway(b, "web", `${net24(sb.ip)}.1`), 0, "B lost its gateway");
    await rklOk(b, ["container", "rm", "-f", "web"]);
    assert.ok((await links()).includes(bridge), "the shared bridge went with B's last container");
    await gcDeletes(b, bridge);
  },
);
