import assert from "node:assert/strict";
import { FakeCommandRunner } from "../sys/command.ts";
import {
  bridgePorts,
  conflistSubnets,
  deleteIdleBridge,
  forwardedBy,
  forwardedPorts,
  interfaceSubnets,
  kernelRoutes,
  networkOf,
  overlaps,
  pickSubnet,
  readClaims,
  releaseSubnetClaims,
  slash24s,
  writeBridgeNetwork,
} from "./hostnet.ts";
import { bridgeConflist } from "./network.ts";

Deno.test("overlaps() compares CIDRs of any prefix length", () => {
  assert.equal(overlaps("10.89.1.0/24", "10.89.1.0/24"), true);
  assert.equal(overlaps("10.89.0.0/16", "10.89.7.0/24"), true);
  assert.equal(overlaps("10.89.7.128/25", "10.89.7.0/24"), true);
  assert.equal(overlaps("10.89.1.0/24", "10.89.2.0/24"), false);
  assert.equal(overlaps("0.0.0.0/0", "192.0.2.0/24"), true);
  assert.equal(overlaps("10.89.1.0/24", "not a cidr"), false);
  assert.equal(networkOf("10.89.3.7/24"), "10.89.3.0/24");
  assert.equal(networkOf("300.1.1.1/24"), undefined);
});

const ROUTES =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
  "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
  "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
  "rkl0-aaaa\t00015A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

const ADDRS = [
  "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
  "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever",
  "9: br-down    inet 10.89.3.1/24 brd 10.89.3.255 scope global br-down\\       valid_lft forever",
  "10: wg0    inet 10.89.9.9/32 scope global wg0",
].join("\n");

Deno.test("kernelRoutes() and interfaceSubnets() read the kernel's view, default route and /32s aside", () => {
  assert.deepEqual(kernelRoutes(ROUTES).map((r) => `${r.subnet} ${r.dev}`), [
    "192.0.2.0/24 eth0",
    "10.90.1.0/24 rkl0-aaaa",
  ]);
  assert.deepEqual(interfaceSubnets(ADDRS).map((r) => `${r.subnet} ${r.dev}`), [
    "127.0.0.0/8 lo",
    "192.0.2.0/24 eth0",
    "10.89.3.0/24 br-down",
  ]);
});

Deno.test("conflistSubnets() finds host-local ranges and the old single subnet", () => {
  const list = bridgeConflist("n", { subnet: "10.89.4.0/24", ipamDataDir: "/x" });
  assert.deepEqual(conflistSubnets(list), ["10.89.4.0/24"]);
  assert.deepEqual(conflistSubnets({ plugins: [{ ipam: { subnet: "10.1.0.0/16" } }] }), [
    "10.1.0.0/16",
  ]);
  assert.deepEqual(conflistSubnets({ plugins: "x" }), []);
  assert.deepEqual(conflistSubnets(null), []);
});

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rkl-hostnet-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function ipAddr(text: string): FakeCommandRunner {
  return new FakeCommandRunner((c) => ({
    code: 0,
    stdout: c.cmd === "ip" && c.args[0] === "-o" ? text : "",
    stderr: "",
  }));
}

Deno.test("writeBridgeNetwork() picks a subnet that no route, address, claim or conflist uses", async () => {
  await withDir(async (dir) => {
    const opts = (cmd = ipAddr(ADDRS)) => ({
      cmd,
      claimsDir: `${dir}/claims`,
      lockPath: `${dir}/net.lock`,
      confDirs: [`${dir}/a/net.d`, `${dir}/default/net.d`],
      routeTable: ROUTES.replace("rkl0-aaaa", "other0"),
    });
    // The default root's conflist (written before claims existed) holds 10.89.1.0/24.
    Deno.mkdirSync(`${dir}/default/net.d`, { recursive: true });
    Deno.writeTextFileSync(
      `${dir}/default/net.d/old.conflist`,
      JSON.stringify(bridgeConflist("old", { subnet: "10.89.1.0/24", ipamDataDir: "/x" })),
    );
    const net = (root: string, bridge: string, subnet?: string) => ({
      path: `${dir}/${root}/net.d/rkl0.conflist`,
      bridge,
      subnet,
      candidates: slash24s("10.89", 1),
      make: (s: string) => bridgeConflist("rkl0", { subnet: s, ipamDataDir: "/x", bridge }),
    });
    // Root a: 10.89.1 is in a conflist, 10.89.2 is free.
    const a = await writeBridgeNetwork(net("a", "rkl0-aaaa"), opts());
    assert.deepEqual(conflistSubnets(a), ["10.89.2.0/24"]);
    assert.equal(a.plugins[0].bridge, "rkl0-aaaa");
    assert.equal(
      Deno.readTextFileSync(`${dir}/claims/10.89.2.0_24`),
      `${dir}/a/net.d/rkl0.conflist\n`,
    );
    // Root b: a's claim takes 10.89.2, the down bridge's address 10.89.3.
    const b = await writeBridgeNetwork(net("b", "rkl0-bbbb"), opts());
    assert.deepEqual(conflistSubnets(b), ["10.89.4.0/24"]);
    // Written already: returned as it is.
    assert.deepEqual(await writeBridgeNetwork(net("b", "rkl0-bbbb"), opts()), b);
    // A subnet asked for that another root's network holds is refused, naming it.
    await assert.rejects(
      () => writeBridgeNetwork(net("c", "rkl0-cccc", "10.89.2.0/25"), opts()),
      /Cannot create network "rkl0": subnet 10\.89\.2\.0\/25 overlaps 10\.89\.2\.0\/24 of network "rkl0" \(.*\/a\/net\.d\/rkl0\.conflist\)/,
    );
    // ... and one that a route on another interface holds.
    await assert.rejects(
      () => writeBridgeNetwork(net("c", "rkl0-cccc", "192.0.2.0/24"), opts()),
      /overlaps 192\.0\.2\.0\/24 of a route on eth0/,
    );
    // Root a goes away: its claim is stale, and the next choice takes 10.89.2 again.
    Deno.removeSync(`${dir}/a`, { recursive: true });
    const c = await writeBridgeNetwork(net("c", "rkl0-cccc"), opts());
    assert.deepEqual(conflistSubnets(c), ["10.89.2.0/24"]);
    assert.deepEqual(readClaims(`${dir}/claims`).map((x) => x.subnet).sort(), [
      "10.89.2.0/24",
      "10.89.4.0/24",
    ]);
    // Released with its conflist.
    Deno.removeSync(`${dir}/c/net.d/rkl0.conflist`);
    await releaseSubnetClaims(`${dir}/c/net.d/rkl0.conflist`, {
      claimsDir: `${dir}/claims`,
      lockPath: `${dir}/net.lock`,
    });
    assert.deepEqual([...Deno.readDirSync(`${dir}/claims`)].map((e) => e.name), ["10.89.4.0_24"]);
  });
});

Deno.test("writeBridgeNetwork(): a route through the network's own bridge is no conflict", async () => {
  await withDir(async (dir) => {
    const list = await writeBridgeNetwork({
      path: `${dir}/net.d/rkl0.conflist`,
      bridge: "rkl0-aaaa",
      subnet: "10.90.1.0/24",
      make: (s) => bridgeConflist("rkl0", { subnet: s, ipamDataDir: "/x", bridge: "rkl0-aaaa" }),
    }, { cmd: ipAddr(""), claimsDir: `${dir}/claims`, lockPath: `${dir}/l`, routeTable: ROUTES });
    assert.deepEqual(conflistSubnets(list), ["10.90.1.0/24"]);
  });
});

Deno.test("readClaims() drops a claim whose conflist is gone or names another subnet", async () => {
  await withDir((dir) => {
    Deno.mkdirSync(`${dir}/claims`);
    Deno.writeTextFileSync(
      `${dir}/n.conflist`,
      JSON.stringify(bridgeConflist("n", { subnet: "10.90.5.0/24", ipamDataDir: "/x" })),
    );
    Deno.writeTextFileSync(`${dir}/claims/10.90.5.0_24`, `${dir}/n.conflist\n`);
    Deno.writeTextFileSync(`${dir}/claims/10.90.6.0_24`, `${dir}/n.conflist\n`);
    Deno.writeTextFileSync(`${dir}/claims/10.90.7.0_24`, `${dir}/gone.conflist\n`);
    Deno.writeTextFileSync(`${dir}/claims/10.90.8.0_24`, `relative/path\n`);
    Deno.writeTextFileSync(`${dir}/claims/notes.txt`, "not a claim");
    assert.deepEqual(readClaims(`${dir}/claims`).map((c) => c.subnet), ["10.90.5.0/24"]);
    assert.equal([...Deno.readDirSync(`${dir}/claims`)].length, 5); // read only
    readClaims(`${dir}/claims`, true);
    assert.deepEqual([...Deno.readDirSync(`${dir}/claims`)].map((e) => e.name).sort(), [
      "10.90.5.0_24",
      "notes.txt",
    ]);
    return Promise.resolve();
  });
});

Deno.test("pickSubnet() gives up when every candidate is taken", () => {
  const taken = [{ subnet: "10.90.0.0/16", by: "a route on x" }];
  assert.equal(pickSubnet(taken, slash24s("10.90")), undefined);
  assert.equal(pickSubnet(taken, ["10.90.0.0/24", "10.91.0.0/24"]), "10.91.0.0/24");
});

Deno.test("deleteIdleBridge() keeps a bridge that anything is attached to", async () => {
  await withDir(async (dir) => {
    const sys = `${dir}/sys`;
    Deno.mkdirSync(`${sys}/br1/brif/veth1234`, { recursive: true });
    Deno.mkdirSync(`${sys}/br2/brif`, { recursive: true });
    const cmd = new FakeCommandRunner();
    const opts = { lockPath: `${dir}/l`, sysClassNet: sys };
    assert.deepEqual(bridgePorts("br1", sys), ["veth1234"]);
    assert.equal(await deleteIdleBridge(cmd, "br1", opts), false);
    assert.equal(cmd.calls.length, 0);
    assert.equal(await deleteIdleBridge(cmd, "br2", opts), true);
    assert.deepEqual(cmd.calls.map((c) => [c.cmd, ...c.args].join(" ")), [
      "ip link delete br2 type bridge",
    ]);
    // Gone already: no error. Another failure: one line naming the bridge.
    const gone = new FakeCommandRunner(() => ({
      code: 1,
      stdout: "",
      stderr: 'Cannot find device "br3"\n',
    }));
    assert.equal(await deleteIdleBridge(gone, "br3", opts), false);
    const busy = new FakeCommandRunner(() => ({ code: 2, stdout: "", stderr: "RTNETLINK: busy" }));
    await assert.rejects(
      () => deleteIdleBridge(busy, "br3", opts),
      /Cannot delete bridge "br3": RTNETLINK: busy/,
    );
    await assert.rejects(() => deleteIdleBridge(cmd, "../x", opts), /not a device name/);
  });
});

const NAT = `*nat
:PREROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-DN-e28bf25b88e65ebf0f76c - [0:0]
:DOCKER - [0:0]
-A CNI-DN-e28bf25b88e65ebf0f76c -s 10.89.1.0/24 -p tcp -m tcp --dport 18080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-e28bf25b88e65ebf0f76c -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.89.1.2:80
-A CNI-DN-e28bf25b88e65ebf0f76c -p udp -m udp --dport 5353 -j DNAT --to-destination 10.89.1.2:53
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"rkl0\\" id: \\"rabcdef01-c_web\\"" -m multiport --dports 18080 -j CNI-DN-e28bf25b88e65ebf0f76c
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8000:8002 -j DNAT --to-destination 172.17.0.2:80
COMMIT
`;

Deno.test("forwardedPorts() finds every DNAT'd host port and the CNI container behind portmap's", () => {
  const f = forwardedPorts(NAT);
  assert.deepEqual([...f.keys()].sort(), [
    "18080/tcp",
    "5353/udp",
    "8000/tcp",
    "8001/tcp",
    "8002/tcp",
  ]);
  assert.match(forwardedBy(f, 18080, "tcp")!, /CNI container "rabcdef01-c_web"/);
  assert.equal(forwardedBy(f, 18080, "tcp", "rabcdef01-c_web"), undefined); // its own rule
  assert.equal(forwardedBy(f, 18080, "udp"), undefined);
  assert.equal(forwardedBy(f, 8001, "tcp"), "a nat rule in chain DOCKER forwards it");
  assert.equal(forwardedBy(f, 8003, "tcp"), undefined);
  assert.equal(forwardedPorts("").size, 0);
});
