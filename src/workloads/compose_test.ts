import assert from "node:assert/strict";
import { containerName, routedSubnets } from "./compose.ts";

Deno.test("routedSubnets() reads /proc/net/route destinations and masks", () => {
  const table =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
    "cmp-1\t00005A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
    "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
  assert.deepEqual([...routedSubnets(table)], ["10.90.0.0/24", "172.17.0.0/16"]);
});

Deno.test("containerName() follows compose naming and makes a DNS-1123 label", () => {
  const svc = { name: "web_app", containerName: undefined } as Parameters<typeof containerName>[1];
  assert.equal(containerName("my_proj", svc, 2), "my-proj-web-app-2");
  assert.equal(containerName("p", { ...svc, containerName: "Back.End" }, 1), "back-end");
});
