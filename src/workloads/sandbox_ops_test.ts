import assert from "node:assert/strict";
import { stopSandbox } from "./sandbox_ops.ts";
import type { Host } from "./host.ts";
import type { PodRecord } from "./pod.ts";
import { MemoryStore } from "../store/store.ts";
import { FakeSyscalls, MNT_DETACH, type MountArgs } from "../sys/syscalls.ts";
import { NotFoundError } from "../errors.ts";

function pod(name: string, netns: string): PodRecord {
  return {
    schemaVersion: 1,
    kind: "pod",
    name,
    specFile: "p.yaml",
    namespace: "default",
    labels: {},
    annotations: { "example.com/note": "kept" },
    createdAt: "2026-01-01T00:00:00Z",
    created: true,
    restartPolicy: "Never",
    hostNetwork: false,
    shareProcessNamespace: false,
    hostname: name,
    terminationGracePeriodSeconds: 30,
    runtime: { name: "youki", binary: "/bin/false", root: "/run/x" },
    cgroupPath: `rkl/pod-${name}`,
    limits: {},
    netns,
    initContainers: [],
    containers: [],
    dirs: { dir: "/x", etc: "/x/etc", volumes: "/x/volumes" },
    emptyDirs: {},
    resources: { dir: true, cgroup: true, netns: true },
  } as PodRecord;
}

Deno.test("stopSandbox() releases the netns, applies the front end's mark under the lock and keeps the record", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-sandbox-ops-" });
  try {
    const store = new MemoryStore();
    const sys = new FakeSyscalls();
    const host = { store, sys } as unknown as Host;
    const netns = `${dir}/p_web`;
    Deno.writeTextFileSync(netns, "");
    // The pinned netns: a bind mount of the namespace on that file.
    sys.mounts.set(netns, { source: "/proc/1/ns/net", target: netns } as MountArgs);
    store.put("pods", pod("web", netns));
    store.put("pods", pod("db", `${dir}/p_db`));
    const saved = await stopSandbox(host, "web", {
      timeoutS: 0,
      mark: (rec) => {
        rec.annotations["stopped-by"] = "test";
      },
    });
    const rec = store.get<PodRecord>("pods", "web")!;
    assert.deepEqual(rec, { ...saved, schemaVersion: rec.schemaVersion });
    assert.equal(rec.resources.netns, false);
    assert.equal(rec.resources.cgroup, true); // the rest stays for RemovePodSandbox
    assert.deepEqual(rec.annotations, { "example.com/note": "kept", "stopped-by": "test" });
    assert.deepEqual(sys.calls, [{ name: "umount2", target: netns, flags: MNT_DETACH }]);
    assert.throws(() => Deno.statSync(netns));
    // The other pod is untouched.
    assert.equal(store.get<PodRecord>("pods", "db")!.resources.netns, true);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("stopSandbox() of a pod that does not exist is a NotFoundError, and makes nothing", async () => {
  const store = new MemoryStore();
  const host = { store, sys: new FakeSyscalls() } as unknown as Host;
  await assert.rejects(() => stopSandbox(host, "nope"), NotFoundError);
  assert.deepEqual(store.list("pods"), []);
});
