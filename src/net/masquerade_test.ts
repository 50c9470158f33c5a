import assert from "node:assert/strict";
import { FakeCommandRunner } from "../sys/command.ts";
import { CniClient, type NetConfList } from "./cni.ts";
import {
  masqAddBatch,
  masqChain,
  masqCleanupBatch,
  resultAddresses,
  takesMasquerade,
} from "./masquerade.ts";
import { bridgeConflist } from "./network.ts";

const LIST: NetConfList = bridgeConflist("rkltest0", {
  subnet: "10.99.0.0/24",
  ipamDataDir: "/tmp/ipam",
});
const RESULT = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "rkltest0" }, { name: "veth1" }, { name: "eth0", sandbox: "/n" }],
  ips: [{ address: "10.99.0.7/24", gateway: "10.99.0.1", interface: 2 }],
};

async function withPluginDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    for (const p of ["bridge", "portmap"]) await Deno.writeTextFile(`${dir}/${p}`, "#!/bin/sh\n");
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("masqChain() names the chain as the bridge plugin does: CNI- and SHA-512(network + id)", async () => {
  // printf %s rkltest0web | sha512sum | cut -c1-24
  const want = "7558a6abcf725087d2d8b643";
  assert.equal(await masqChain("rkltest0", "web"), `CNI-${want}`);
  assert.equal((await masqChain("rkltest0", "web")).length, 28);
});

Deno.test("masqAddBatch() writes the plugin's two rules and its POSTROUTING jump, with its comment", () => {
  const addrs = resultAddresses(RESULT)!;
  assert.deepEqual(addrs, [{ ip: "10.99.0.7", net: "10.99.0.0/24", v6: false }]);
  assert.equal(
    masqAddBatch("CNI-abc", "rkltest0", "web", addrs),
    [
      "*nat",
      ":CNI-abc - [0:0]",
      `-A CNI-abc -d 10.99.0.0/24 -m comment --comment "name: \\"rkltest0\\" id: \\"web\\"" -j ACCEPT`,
      `-A CNI-abc ! -d 224.0.0.0/4 -m comment --comment "name: \\"rkltest0\\" id: \\"web\\"" -j MASQUERADE`,
      `-A POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \\"rkltest0\\" id: \\"web\\"" -j CNI-abc`,
      "COMMIT",
      "",
    ].join("\n"),
  );
});

Deno.test("resultAddresses() gives each address's network, IPv6 too, and nothing for a bad one", () => {
  assert.deepEqual(resultAddresses({ ips: [{ address: "fd00:1:2::9/64" }] }), [
    { ip: "fd00:1:2::9", net: "fd00:1:2:0:0:0:0:0/64", v6: true },
  ]);
  assert.deepEqual(resultAddresses({ ips: [{ address: "10.1.2.3/8" }] })![0].net, "10.0.0.0/8");
  assert.deepEqual(
    resultAddresses({ ips: [{ address: "10.1.2.255/32" }] })![0].net,
    "10.1.2.255/32",
  );
  assert.equal(resultAddresses({ ips: [{ address: "10.1.2.3/24 -j ACCEPT" }] }), undefined);
  assert.equal(resultAddresses({ ips: [{ address: "10.1.2.300/24" }] }), undefined);
  assert.deepEqual(resultAddresses(undefined), []);
});

Deno.test("takesMasquerade(): a bridge with ipMasq and IPAM, plain names, no other backend", () => {
  const bridge = LIST.plugins[0];
  assert.ok(takesMasquerade(bridge, "rkltest0", "p_web"));
  assert.ok(!takesMasquerade({ ...bridge, ipMasq: false }, "rkltest0", "p_web"));
  assert.ok(!takesMasquerade({ ...bridge, ipam: undefined }, "rkltest0", "p_web"));
  assert.ok(!takesMasquerade({ ...bridge, ipMasqBackend: "nftables" }, "rkltest0", "p_web"));
  assert.ok(!takesMasquerade(LIST.plugins[1], "rkltest0", "p_web"));
  assert.ok(!takesMasquerade(bridge, 'x" -j DROP', "p_web"));
  assert.ok(!takesMasquerade(bridge, "rkltest0", "a b"));
});

Deno.test("masqCleanupBatch() removes every jump to the chain, then the chain; nothing when absent", () => {
  const dump = [
    "*nat",
    ":POSTROUTING ACCEPT [0:0]",
    ":CNI-abc - [0:0]",
    ":CNI-other - [0:0]",
    '-A POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \\"n\\" id: \\"web\\"" -j CNI-abc',
    '-A POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \\"n\\" id: \\"web\\"" -j CNI-abc',
    '-A POSTROUTING -s 10.99.0.8/32 -m comment --comment "name: \\"n\\" id: \\"db\\"" -j CNI-other',
    "-A CNI-abc -d 10.99.0.0/24 -j ACCEPT",
    "COMMIT",
  ].join("\n");
  assert.equal(
    masqCleanupBatch(dump, "CNI-abc"),
    [
      "*nat",
      '-D POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \\"n\\" id: \\"web\\"" -j CNI-abc',
      '-D POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \\"n\\" id: \\"web\\"" -j CNI-abc',
      "-F CNI-abc",
      "-X CNI-abc",
      "COMMIT",
      "",
    ].join("\n"),
  );
  assert.equal(masqCleanupBatch(dump, "CNI-gone"), undefined);
});

Deno.test("CniClient with masquerade: the bridge gets ipMasq false, then one iptables-restore makes the rules", async () => {
  await withPluginDir(async (dir) => {
    const cmd = new FakeCommandRunner((c) => ({
      code: 0,
      stdout: c.cmd.endsWith("/bridge") ? JSON.stringify(RESULT) : "",
      stderr: "",
    }));
    const cni = new CniClient(cmd, [dir], { masquerade: true });
    const att = { containerId: "web", netns: "/run/n", ifName: "eth0" };
    await cni.add(LIST, att);
    assert.deepEqual(cmd.calls.map((c) => c.cmd), [`${dir}/bridge`, "iptables-restore"]);
    assert.equal(JSON.parse(cmd.calls[0].stdin!).ipMasq, false);
    assert.deepEqual(cmd.calls[1].args, ["-w", "5", "--noflush"]);
    const chain = await masqChain("rkltest0", "web");
    assert.equal(
      cmd.calls[1].stdin,
      masqAddBatch(chain, "rkltest0", "web", resultAddresses(RESULT)!),
    );

    // DEL: the plugin without ipMasq, and the three rules in one transaction.
    cmd.calls.length = 0;
    await cni.del(LIST, att, RESULT);
    assert.deepEqual(cmd.calls.map((c) => c.cmd).sort(), [`${dir}/bridge`, "iptables-restore"]);
    const restore = cmd.calls.find((c) => c.cmd === "iptables-restore")!;
    assert.match(
      restore.stdin!,
      new RegExp(
        `^\\*nat\\n-D POSTROUTING -s 10\\.99\\.0\\.7/32 .*-j ${chain}\\n-F ${chain}\\n-X ${chain}\\nCOMMIT\\n$`,
      ),
    );
    assert.equal(
      JSON.parse(cmd.calls.find((c) => c.cmd.endsWith("/bridge"))!.stdin!).ipMasq,
      false,
    );
  });
});

Deno.test("CniClient with masquerade: a DEL whose rules are not as made falls back to a dump", async () => {
  await withPluginDir(async (dir) => {
    const chain = await masqChain("rkltest0", "web");
    const dump = `*nat\n:${chain} - [0:0]\n-A POSTROUTING -s 10.99.0.7/32 -j ${chain}\nCOMMIT\n`;
    let restores = 0;
    const cmd = new FakeCommandRunner((c) => {
      if (c.cmd === "iptables-restore") {
        return { code: restores++ === 0 ? 1 : 0, stdout: "", stderr: "" };
      }
      if (c.cmd === "iptables-save") return { code: 0, stdout: dump, stderr: "" };
      return { code: 0, stdout: "", stderr: "" };
    });
    await new CniClient(cmd, [dir], { masquerade: true }).del(
      LIST,
      { containerId: "web", netns: "/run/n", ifName: "eth0" },
      RESULT,
    );
    const batches = cmd.calls.filter((c) => c.cmd === "iptables-restore").map((c) => c.stdin);
    assert.equal(batches.length, 2);
    assert.equal(batches[1], masqCleanupBatch(dump, chain));
  });
});

Deno.test("CniClient without the option leaves the masquerade to the plugin", async () => {
  await withPluginDir(async (dir) => {
    const cmd = new FakeCommandRunner((c) => ({
      code: 0,
      stdout: c.cmd.endsWith("/bridge") ? JSON.stringify(RESULT) : "",
      stderr: "",
    }));
    await new CniClient(cmd, [dir]).add(LIST, { containerId: "web", netns: "/n", ifName: "eth0" });
    assert.deepEqual(cmd.calls.map((c) => c.cmd), [`${dir}/bridge`]);
    assert.equal(JSON.parse(cmd.calls[0].stdin!).ipMasq, true);
  });
});

Deno.test("CniClient with masquerade: a failed iptables-restore fails the ADD", async () => {
  await withPluginDir(async (dir) => {
    const cmd = new FakeCommandRunner((c) =>
      c.cmd === "iptables-restore"
        ? { code: 2, stdout: "", stderr: "iptables-restore: line 3 failed" }
        : { code: 0, stdout: JSON.stringify(RESULT), stderr: "" }
    );
    await assert.rejects(
      () =>
        new CniClient(cmd, [dir], { masquerade: true }).add(LIST, {
          containerId: "web",
          netns: "/n",
          ifName: "eth0",
        }),
      /Cannot masquerade network "rkltest0": iptables-restore: iptables-restore: line 3 failed/,
    );
  });
});
