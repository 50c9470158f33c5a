import assert from "node:assert/strict";
import { defaultRoute, pastaArgv, PastaCni, pastaConflist, pastaPorts } from "./pasta.ts";
import { SlirpCni, slirpKey } from "./slirp.ts";
import type { CommandRunner } from "../sys/command.ts";

Deno.test("pastaPorts(): none, or HOST:CONTAINER per protocol, with an IPv4 hostIP", () => {
  const maps = [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" as const },
    { hostPort: 5353, containerPort: 53, protocol: "udp" as const },
    { hostPort: 8443, containerPort: 443, protocol: "tcp" as const, hostIP: "127.0.0.1" },
    { hostPort: 9000, containerPort: 9000, protocol: "tcp" as const, hostIP: "0.0.0.0" },
  ];
  assert.equal(pastaPorts(maps, "tcp"), "8080:80,127.0.0.1/8443:443,9000:9000");
  assert.equal(pastaPorts(maps, "udp"), "5353:53");
  assert.equal(pastaPorts([], "tcp"), "none");
  assert.throws(
    () => pastaPorts([{ hostPort: 1, containerPort: 1, protocol: "tcp", hostIP: "::1" }], "tcp"),
    /IPv4 hostIP/,
  );
});

Deno.test("pastaArgv(): configures the netns, no way back to the host's loopback", () => {
  const argv = pastaArgv("/usr/bin/pasta", "/r/netns/c", { pid: "/r/p.pid", log: "/r/p.log" }, []);
  assert.deepEqual(argv.slice(0, 5), [
    "/usr/bin/pasta",
    "--config-net",
    "--netns",
    "/r/netns/c",
    "--no-map-gw",
  ]);
  for (
    const [flag, value] of [["-T", "none"], ["-U", "none"], ["-t", "none"], ["-u", "none"], [
      "-P",
      "/r/p.pid",
    ]]
  ) {
    assert.equal(argv[argv.indexOf(flag) + 1], value, flag);
  }
});

Deno.test("defaultRoute(): the default route's interface address and gateway", () => {
  const route =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
    "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  const ifs = [
    { name: "lo", family: "IPv4", cidr: "127.0.0.1/8" },
    { name: "eth0", family: "IPv6", cidr: "fe80::1/64" },
    { name: "eth0", family: "IPv4", cidr: "10.0.2.15/24" },
  ];
  assert.deepEqual(defaultRoute(route, ifs), { address: "10.0.2.15/24", gateway: "10.0.2.1" });
  assert.equal(defaultRoute(route.split("\n").slice(0, 1).join("\n"), ifs), undefined);
});

function fakePasta(dir: string, code = 0) {
  const ran: string[][] = [];
  const killed: [number, string][] = [];
  let alive = new Set<number>();
  const cni = new PastaCni({
    dir,
    binary: "/usr/bin/pasta",
    run(argv) {
      ran.push(argv);
      if (code === 0) {
        Deno.writeTextFileSync(argv[argv.indexOf("-P") + 1], "4242\n");
        alive = new Set([4242]);
      }
      return Promise.resolve({ code, stderr: code ? "Failed to open tun\n" : "" });
    },
    kill(pid, sig) {
      killed.push([pid, sig]);
      alive.delete(pid);
    },
    cmdline: (pid) =>
      alive.has(pid) ? ["pasta", "--config-net", "--netns", "/r/netns/c"] : undefined,
    sleep: () => Promise.resolve(),
    hostRoute: () => ({ address: "10.0.2.15/24", gateway: "10.0.2.1" }),
  });
  return { cni, ran, killed };
}

Deno.test("PastaCni: ADD starts pasta with the ports, DEL stops only that pasta", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cni, ran, killed } = fakePasta(dir);
    const att = {
      containerId: "c1",
      netns: "/r/netns/c",
      ifName: "eth0",
      capabilityArgs: {
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" as const }],
      },
    };
    const r = await cni.add(pastaConflist(), att);
    assert.equal(ran.length, 1);
    assert.equal(ran[0][ran[0].indexOf("-t") + 1], "8080:80");
    assert.deepEqual(r.ips, [{ address: "10.0.2.15/24", gateway: "10.0.2.1", interface: 0 }]);
    await cni.check(pastaConflist(), att);
    // A pid file naming this pasta for another netns (a reused pid): not signalled.
    Deno.writeTextFileSync(`${dir}/${slirpKey("c2")}.pid`, "4242\n");
    await cni.del(pastaConflist(), { ...att, containerId: "c2", netns: "/r/netns/other" });
    assert.deepEqual(killed, []);
    await cni.del(pastaConflist(), att);
    assert.deepEqual(killed, [[4242, "SIGTERM"]]);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await assert.rejects(() => cni.check(pastaConflist(), att), /pasta is gone/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PastaCni: a pasta that fails says why, and leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cni } = fakePasta(dir, 1);
    await assert.rejects(
      () => cni.add(pastaConflist(), { containerId: "c1", netns: "/r/netns/c", ifName: "eth0" }),
      /Cannot start pasta: exit 1: Failed to open tun/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SlirpCni hands the pasta network to pasta's driver, and refuses other plugins", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cni: pasta, ran } = fakePasta(dir);
    const cmd = {} as CommandRunner;
    const slirp = new SlirpCni(cmd, {
      dir,
      binary: "/usr/bin/slirp4netns",
      spawn: () => {
        throw new Error("slirp4netns must not start for the pasta network");
      },
      kill: () => {},
      cmdline: () => undefined,
      sleep: () => Promise.resolve(),
      pasta,
    });
    await slirp.add(pastaConflist(), { containerId: "c1", netns: "/r/netns/c", ifName: "eth0" });
    assert.equal(ran.length, 1);
    await assert.rejects(
      () =>
        slirp.add(
          { cniVersion: "1.0.0", name: "x", plugins: [{ type: "pasta" }, { type: "bridge" }] },
          { containerId: "c2", netns: "/r/netns/d", ifName: "eth0" },
        ),
      /plugin "pasta" needs root|plugin "bridge" needs root/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
