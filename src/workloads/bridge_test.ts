import assert from "node:assert/strict";
import { FsStore } from "../store/store.ts";
import { unusedBridge } from "./container.ts";
import type { Host } from "./host.ts";
import type { NetConfList } from "../net/cni.ts";

const conflist = {
  cniVersion: "1.0.0",
  name: "n1",
  plugins: [{ type: "bridge", bridge: "br-n1" }],
} as unknown as NetConfList;
const user = {
  kind: "pods" as const,
  name: "web",
  network: { name: "n1", conflist, portMappings: [] },
};

async function withStore(fn: (host: Host, dir: string) => void | Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rkl-bridge-test-" });
  try {
    const store = new FsStore(`${dir}/records`, `${dir}/lock`);
    await fn({ store } as unknown as Host, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const rec = (name: string, network?: string) => ({
  schemaVersion: 1,
  name,
  ...(network ? { network: { name: network } } : {}),
});

Deno.test("unusedBridge() names the bridge only when no other record is on the network", async () => {
  await withStore((host) => {
    host.store.put("pods", rec("web", "n1"));
    assert.equal(unusedBridge(host, user), "br-n1");
    host.store.put("pods", rec("db", "n2"));
    host.store.put("containers", rec("web_app")); // a member: no network of its own
    assert.equal(unusedBridge(host, user), "br-n1");
    host.store.put("containers", rec("loner", "n1"));
    assert.equal(unusedBridge(host, user), undefined);
  });
});

Deno.test("unusedBridge(): a damaged record keeps the bridge unless it is one of those going", async () => {
  await withStore((host, dir) => {
    host.store.put("pods", rec("web", "n1"));
    Deno.mkdirSync(`${dir}/records/containers`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/records/containers/web_app.json`, "{not json");
    assert.equal(unusedBridge(host, user), undefined);
    assert.equal(unusedBridge(host, user, new Set(["web_app"])), "br-n1");
    // Damaged pod records are never "going": another pod may be on the network.
    Deno.mkdirSync(`${dir}/records/pods`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/records/pods/other.json`, "");
    assert.equal(unusedBridge(host, user, new Set(["web_app", "other"])), undefined);
  });
});
