import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { generateConfig } from "../oci/generate.ts";
import { loadContainer } from "./container.ts";
import { loadPods } from "./pod.ts";

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: c
    image: /b
    command: [sh]
    volumeMounts:
    - name: tools
      mountPath: /tools
    - name: tools
      mountPath: /bin-only
      subPath: bin
  volumes:
  - name: tools
    image:
      reference: quay.io/crio/artifact:v2
      pullPolicy: IfNotPresent
`;

Deno.test("an image volume is a read-only mount of kind image, its reference kept with its line", () => {
  const [pod] = loadPods(POD, "/srv/p.yaml", { baseDir: "/srv" });
  const mounts = pod.spec.containers[0].spec.mounts;
  assert.deepEqual(mounts.map((m) => [m.kind, m.readOnly, m.volume, m.subPath]), [
    ["image", true, "tools", undefined],
    ["image", true, "tools", "bin"],
  ]);
  assert.deepEqual(pod.spec.imageVolumes, {
    tools: {
      reference: "quay.io/crio/artifact:v2",
      pullPolicy: "IfNotPresent",
      path: ["spec", "volumes", 0, "image", "reference"],
    },
  });
  assert.deepEqual(pod.source.at(pod.spec.imageVolumes!.tools.path), {
    file: "/srv/p.yaml",
    line: 19,
    column: 18,
    path: "spec.volumes[0].image.reference",
  });
  // the OCI bind is ro, nosuid, nodev and noexec, as the kubelet mounts an image volume
  const spec = {
    ...pod.spec.containers[0].spec,
    mounts: mounts.map((m) => ({ ...m, source: "/v/tools" })),
  };
  const config = generateConfig(spec, {
    rootfs: "/r",
    cgroupsPath: "/rkl/p",
    hostname: "p",
    etcFiles: { hosts: "/e/h", hostname: "/e/n", resolvConf: "/e/r" },
    nofileHard: 1024,
    bundle: {},
    arch: "x86_64",
  });
  const m = config.mounts!.find((m) => m.destination === "/tools")!;
  for (const o of ["ro", "nosuid", "nodev", "noexec"]) assert.ok(m.options!.includes(o), o);
  assert.ok(!m.options!.includes("rw"));
});

Deno.test("image volumes: a bad pullPolicy, a missing reference, or a single container are refused at their line", () => {
  const err = (text: string, file = "/srv/p.yaml") => {
    try {
      loadPods(text, file, { baseDir: "/srv" });
    } catch (e) {
      assert.ok(e instanceof SpecError, String(e));
      return e.message;
    }
    assert.fail("accepted");
  };
  assert.match(
    err(POD.replace("pullPolicy: IfNotPresent", "pullPolicy: Sometimes")),
    /^\/srv\/p\.yaml:20:\d+: spec\.volumes\[0\]\.image\.pullPolicy: /,
  );
  assert.match(
    err(POD.replace("      reference: quay.io/crio/artifact:v2\n", "")),
    /^\/srv\/p\.yaml:\d+:\d+: spec\.volumes\[0\]\.image(\.reference)?: /,
  );
  assert.throws(
    () =>
      loadContainer(
        `name: c\nimage: /b\nvolumeMounts:\n- name: t\n  mountPath: /t\nvolumes:\n- name: t\n  image:\n    reference: busybox\n`,
        "/srv/c.yaml",
      ),
    /c\.yaml:7:\d+: .*image volumes need a pod/,
  );
});
