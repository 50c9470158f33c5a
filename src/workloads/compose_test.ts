import assert from "node:assert/strict";
import { containerName, routedSubnets, stopLevels } from "./compose.ts";

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

Deno.test("stopLevels() stops dependents before what they depend on, independent services together", async () => {
  const { loadCompose } = await import("../spec/compose.ts");
  const { project } = loadCompose([{
    file: "c.yaml",
    text:
      "services:\n  db: {image: b}\n  cache: {image: b}\n  api: {image: b, depends_on: [db, cache]}\n  web: {image: b, depends_on: [api]}\n  lone: {image: b}\n",
  }], { env: {}, dir: "/p" });
  const levels = stopLevels(project);
  assert.deepEqual(Object.fromEntries(levels), { web: 0, lone: 0, api: 1, db: 2, cache: 2 });
});
