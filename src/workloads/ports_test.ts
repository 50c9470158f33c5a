import assert from "node:assert/strict";
import { FsStore } from "../store/store.ts";
import { FakeCommandRunner } from "../sys/command.ts";
import type { Host } from "./host.ts";
import { assertPortsFree, portConflict } from "./ports.ts";

const NAT = `*nat
-A CNI-DN-abc -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.89.1.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"rkl0\\" id: \\"r0badcafe-c_web\\"" -m multiport --dports 18080 -j CNI-DN-abc
COMMIT
`;

async function withHost(fn: (host: Host) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rkl-ports-test-" });
  try {
    const cmd = new FakeCommandRunner((c) => ({
      code: 0,
      stdout: c.cmd === "iptables-save" ? NAT : "",
      stderr: "",
    }));
    const host = {
      store: new FsStore(`${dir}/records`, `${dir}/lock`),
      cmd,
      portInUse: (port: number) => port === 2222,
    } as unknown as Host;
    await fn(host);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const tcp = (hostPort: number) => ({ hostPort, containerPort: 80, protocol: "tcp" as const });

Deno.test("portConflict() refuses a port this root publishes, a process binds, or a nat rule forwards", async () => {
  await withHost((host) => {
    host.store.put("pods", {
      schemaVersion: 1,
      name: "db",
      network: { portMappings: [tcp(5432)] },
    });
    assert.equal(portConflict(host, [tcp(5432)], { nat: NAT })?.reason, "pod db publishes it");
    assert.equal(portConflict(host, [tcp(2222)], { nat: NAT })?.reason, "it is in use on the host");
    assert.match(
      portConflict(host, [tcp(8080), tcp(18080)], { nat: NAT })!.reason,
      /^a nat rule forwards it to CNI container "r0badcafe-c_web"/,
    );
    assert.equal(portConflict(host, [tcp(18080)], { nat: "" }), undefined); // no view, no check
    assert.equal(portConflict(host, [{ ...tcp(18080), protocol: "udp" }], { nat: NAT }), undefined);
    return Promise.resolve();
  });
});

Deno.test("assertPortsFree() reads the nat table and leaves the container's own rule aside", async () => {
  await withHost(async (host) => {
    await assert.rejects(
      () => assertPortsFree(host, [tcp(18080)], "r12345678-c_web"),
      /^ConflictError: Cannot publish port 18080\/tcp: a nat rule forwards it to CNI container "r0badcafe-c_web"/,
    );
    await assertPortsFree(host, [tcp(18080)], "r0badcafe-c_web");
    await assertPortsFree(host, [], "x");
  });
});
