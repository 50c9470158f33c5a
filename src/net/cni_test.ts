import assert from "node:assert/strict";
import { NetworkError } from "../errors.ts";
import { FakeCommandRunner } from "../sys/command.ts";
import { CniClient, hostVeth, type NetConfList, resultIPv4 } from "./cni.ts";
import { bridgeConflist } from "./network.ts";

async function withPluginDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    for (const p of ["bridge", "portmap", "loopback"]) {
      await Deno.writeTextFile(`${dir}/${p}`, "#!/bin/sh\n");
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const LIST: NetConfList = bridgeConflist("rkltest0", {
  subnet: "10.99.0.0/24",
  ipamDataDir: "/tmp/ipam",
});
const ATT = {
  containerId: "web",
  netns: "/run/rkl/netns/web",
  ifName: "eth0",
  capabilityArgs: {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" as const }],
  },
};

Deno.test("CniClient.add() runs the chain with the CNI 1.0 environment and prevResult", async () => {
  await withPluginDir(async (dir) => {
    const bridgeResult = {
      cniVersion: "1.0.0",
      ips: [{ address: "10.99.0.2/24", gateway: "10.99.0.1" }],
    };
    const cmd = new FakeCommandRunner((c) => ({
      code: 0,
      stdout: JSON.stringify(
        c.cmd.endsWith("/bridge") ? bridgeResult : JSON.parse(c.stdin!).prevResult,
      ),
      stderr: "",
    }));
    const res = await new CniClient(cmd, [dir]).add(LIST, ATT);
    assert.deepEqual(cmd.calls.map((c) => c.cmd), [`${dir}/bridge`, `${dir}/portmap`]);
    const env = cmd.calls[0].env!;
    assert.deepEqual(
      [env.CNI_COMMAND, env.CNI_CONTAINERID, env.CNI_NETNS, env.CNI_IFNAME, env.CNI_PATH],
      ["ADD", "web", "/run/rkl/netns/web", "eth0", dir],
    );
    const bridgeConf = JSON.parse(cmd.calls[0].stdin!);
    assert.equal(bridgeConf.name, "rkltest0");
    assert.equal(bridgeConf.cniVersion, "1.0.0");
    assert.equal(bridgeConf.runtimeConfig, undefined, "bridge has no portMappings capability");
    assert.equal(bridgeConf.prevResult, undefined);
    const portmapConf = JSON.parse(cmd.calls[1].stdin!);
    assert.deepEqual(portmapConf.runtimeConfig, { portMappings: ATT.capabilityArgs.portMappings });
    assert.deepEqual(portmapConf.prevResult, bridgeResult);
    assert.equal(portmapConf.capabilities, undefined);
    assert.equal(resultIPv4(res), "10.99.0.2");
  });
});

Deno.test("CniClient.del() walks the chain backwards and tries every plugin", async () => {
  await withPluginDir(async (dir) => {
    const cmd = new FakeCommandRunner((c) =>
      c.cmd.endsWith("/portmap")
        ? {
          code: 1,
          stdout: JSON.stringify({
            cniVersion: "1.0.0",
            code: 999,
            msg: "iptables failed",
            details: "x",
          }),
          stderr: "",
        }
        : { code: 0, stdout: "", stderr: "" }
    );
    await assert.rejects(
      () => new CniClient(cmd, [dir]).del(LIST, ATT, { ips: [] }),
      (e: Error) =>
        e instanceof NetworkError && /plugin portmap: iptables failed \(x\)/.test(e.message),
    );
    assert.deepEqual(cmd.calls.map((c) => c.cmd.split("/").pop()), ["portmap", "bridge"]);
    assert.equal(cmd.calls[1].env!.CNI_COMMAND, "DEL");
    assert.deepEqual(JSON.parse(cmd.calls[1].stdin!).prevResult, { ips: [] });
  });
});

Deno.test("CniClient leaves portmap out of ADD, CHECK and DEL of an attachment that maps no ports", async () => {
  await withPluginDir(async (dir) => {
    const bridgeResult = { cniVersion: "1.0.0", ips: [{ address: "10.99.0.3/24" }] };
    const cmd = new FakeCommandRunner(() => ({
      code: 0,
      stdout: JSON.stringify(bridgeResult),
      stderr: "",
    }));
    const client = new CniClient(cmd, [dir]);
    for (const capabilityArgs of [undefined, { portMappings: [] }]) {
      const att = { ...ATT, capabilityArgs };
      assert.deepEqual(await client.add(LIST, att), bridgeResult);
      await client.check(LIST, att, bridgeResult);
      await client.del(LIST, att, bridgeResult);
    }
    assert.deepEqual(
      cmd.calls.map((c) => `${c.env!.CNI_COMMAND} ${c.cmd.split("/").pop()}`),
      ["ADD bridge", "CHECK bridge", "DEL bridge", "ADD bridge", "CHECK bridge", "DEL bridge"],
    );
    cmd.calls.length = 0;
    const other = { ...LIST, plugins: [...LIST.plugins, { type: "loopback" }] };
    await client.del(other, { ...ATT, capabilityArgs: undefined });
    assert.deepEqual(cmd.calls.map((c) => c.cmd.split("/").pop()), ["loopback", "bridge"]);
  });
});

Deno.test("CniClient refuses plugin types that are not plain names and reports missing plugins", async () => {
  await withPluginDir(async (dir) => {
    const client = new CniClient(new FakeCommandRunner(), [dir]);
    assert.throws(() => client.findPlugin("../../bin/sh"), /not a plugin name/);
    assert.throws(() => client.findPlugin("macvlan"), /Cannot find CNI plugin "macvlan"/);
    await assert.rejects(
      () => client.add({ ...LIST, plugins: [{ type: "macvlan" }] }, ATT),
      NetworkError,
    );
  });
});

Deno.test("hostVeth() finds the host end of a bridge result's veth, and nothing when unsure", () => {
  const result = {
    interfaces: [
      { name: "rkl0", mac: "aa" },
      { name: "veth0a1b2c3d", mac: "bb" },
      { name: "eth0", mac: "cc", sandbox: "/run/rkl/netns/p" },
    ],
  };
  assert.equal(hostVeth(result, "rkl0"), "veth0a1b2c3d");
  assert.equal(hostVeth(undefined, "rkl0"), undefined);
  assert.equal(hostVeth({ interfaces: [{ name: "rkl0" }] }, "rkl0"), undefined);
  assert.equal(
    hostVeth({ interfaces: [{ name: "a" }, { name: "b" }] }, "rkl0"),
    undefined,
    "two candidates: none is trusted",
  );
  assert.equal(hostVeth({ interfaces: [{ name: "../../etc" }] }, "rkl0"), undefined);
});
