import assert from "node:assert/strict";
import { recordValidators } from "./records.ts";
import { containerDirs, type RklPaths } from "./host.ts";

const paths: RklPaths = {
  root: "/var/lib/rkl",
  runRoot: "/run/rkl",
  logDir: "/var/log/rkl",
  cniConfDir: "/etc/cni/net.d",
};
const validators = recordValidators({ paths, cgroupParent: "rkl" });
const check = { containers: validators.containers! };
const ID = "c".repeat(64);
const POD = "a".repeat(64);

/** A CRI container's record: its log and cgroup are where the kubelet said. */
function criContainer(extra: Record<string, unknown>) {
  return {
    kind: "container",
    name: ID,
    id: ID,
    status: "running",
    createdAt: "2026-01-01T00:00:00Z",
    runtime: { name: "youki", binary: "/usr/bin/youki", root: "/run/rkl/runtime/youki" },
    cgroupPath: `kubepods/besteffort/podu/${POD}/${ID}`,
    limits: {},
    labels: {},
    resources: {},
    dirs: { ...containerDirs(paths, ID), log: "/var/log/pods/ns_web_u/app/0.log" },
    ...extra,
  };
}

Deno.test("a CRI container record loads in either shape: source kind cri, or the old cri field", () => {
  const meta = { sandboxId: POD, name: "app", attempt: 0, labels: {}, annotations: {}, image: "x" };
  assert.equal(
    check.containers(criContainer({ source: { kind: "cri", name: "app", meta } }), ID),
    undefined,
  );
  assert.equal(check.containers(criContainer({ cri: meta }), ID), undefined);
});

Deno.test("only a CRI record may log and sit in a cgroup outside rkl's: another source, or none, is damaged", () => {
  assert.match(
    check.containers(criContainer({ source: { kind: "yaml", name: "app" } }), ID)!,
    /dirs\.log/,
  );
  assert.match(check.containers(criContainer({}), ID)!, /dirs\.log/);
  // A junk old-style field does not make a record the CRI's.
  assert.match(check.containers(criContainer({ cri: "x" }), ID)!, /dirs\.log/);
  assert.match(
    check.containers(criContainer({ source: { kind: "martian" } }), ID)!,
    /source\.kind/,
  );
});

Deno.test("a CRI sandbox's pause process sits in its pod's cgroup under the kubelet's; nothing else outside rkl's", () => {
  const name = `${POD}__pause`;
  const pause = (cgroupPath: string) => ({
    ...criContainer({}),
    name,
    id: name,
    pod: POD,
    cgroupPath,
    dirs: containerDirs(paths, name),
  });
  assert.equal(
    check.containers(pause(`kubepods/besteffort/podu/${POD}/_pause`), name),
    undefined,
  );
  assert.equal(check.containers(pause(`rkl/pod-x/_pause`), name), undefined);
  // Another pod's, a path that climbs, or a pod member that is not the pause: damaged.
  assert.match(
    check.containers(pause(`kubepods/besteffort/podu/${"b".repeat(64)}/_pause`), name)!,
    /cgroupPath/,
  );
  assert.match(check.containers(pause(`kubepods/../${POD}/_pause`), name)!, /cgroupPath/);
  const member = { ...pause(`kubepods/besteffort/podu/${POD}/app`), name: "app", id: "app" };
  assert.ok(check.containers({ ...member, dirs: containerDirs(paths, "app") }, "app"));
});
