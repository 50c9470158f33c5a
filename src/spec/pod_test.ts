import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { loadPods } from "./pod.ts";

const RK8S = Deno.readTextFileSync(new URL("../../tests/fixtures/rk8s-pod.yaml", import.meta.url));

function err(text: string): SpecError {
  try {
    loadPods(text, "p.yaml", { baseDir: "/srv" });
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("loadPods() reads rk8s's example, with the pause bundle from metadata.labels.bundle", () => {
  const [pod] = loadPods(RK8S, "pod.yaml", { baseDir: "/srv" });
  assert.equal(pod.spec.name, "simple-container-task");
  assert.equal(pod.spec.pauseBundle, "/srv/bundles/pause");
  assert.equal(pod.spec.hostname, "simple-container-task");
  assert.equal(pod.spec.restartPolicy, "Always");
  assert.equal(pod.spec.containers[0].spec.image, "/srv/bundles/busybox");
  assert.deepEqual(pod.warnings, []);
});

Deno.test("loadPods() locates container fields inside the pod file", () => {
  const [pod] = loadPods(RK8S, "pod.yaml", { baseDir: "/srv" });
  assert.deepEqual(pod.spec.containers[0].source.at(["image"]), {
    file: "pod.yaml",
    line: 11,
    column: 14,
    path: "spec.containers[0].image",
  });
});

Deno.test("loadPods() reads every document of a multi-document file and refuses a repeated pod name", () => {
  const doc = (n: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${n}}\nspec:\n  containers: [{name: a, image: b}]\n`;
  assert.deepEqual(loadPods(`${doc("x")}---\n${doc("y")}---\n`, "p.yaml").map((p) => p.spec.name), [
    "x",
    "y",
  ]);
  const e = err(`${doc("x")}---\n${doc("x")}`);
  assert.equal(e.line, 9);
  assert.match(e.detail, /already defined on line 3/);
});

Deno.test("loadPods() warns about fields it does not apply and keeps going", () => {
  const [pod] = loadPods(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  nodeName: n1\n  containers:\n    - {name: a, image: b, lifecycle: {}}\n",
    "p.yaml",
  );
  assert.deepEqual(pod.warnings.map((w) => `${w.line}:${w.path}`), [
    "5:spec.nodeName",
    "7:spec.containers[0].lifecycle",
  ]);
});

Deno.test("loadPods() reads probes and refuses one without exactly one handler", () => {
  const [pod] = loadPods(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n    - name: a\n      image: b\n      livenessProbe: {httpGet: {path: /h, port: http}, periodSeconds: 2}\n",
    "p.yaml",
  );
  assert.deepEqual(pod.spec.containers[0].spec.probes?.liveness, {
    httpGet: { path: "/h", port: "http" },
    periodSeconds: 2,
  });
  const e = err(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n    - {name: a, image: b, readinessProbe: {exec: {command: [sh]}, tcpSocket: {port: 1}}}\n",
  );
  assert.equal(e.path, "spec.containers[0].readinessProbe");
  assert.match(e.detail, /exactly one of exec, httpGet, tcpSocket/);
});

Deno.test("loadPods() resolves emptyDir and hostPath volumes and checks names across init and app containers", () => {
  const [pod] = loadPods(
    `apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  securityContext: {runAsUser: 1000}
  volumes:
    - {name: cache, emptyDir: {}}
    - {name: conf, hostPath: {path: /etc/app}}
  initContainers:
    - {name: init, image: b, volumeMounts: [{name: cache, mountPath: /c}]}
  containers:
    - {name: app, image: b, volumeMounts: [{name: conf, mountPath: /etc/app, readOnly: true}]}
`,
    "p.yaml",
  );
  assert.deepEqual(pod.spec.emptyDirs, ["cache"]);
  assert.equal(pod.spec.initContainers[0].spec.mounts[0].kind, "emptyDir");
  assert.deepEqual(pod.spec.containers[0].spec.mounts[0], {
    source: "/etc/app",
    destination: "/etc/app",
    readOnly: true,
    kind: "hostPath",
    hostPathType: "",
    loc: { file: "p.yaml", line: 8, column: 37, path: "spec.volumes[1].hostPath.path" },
  });
  assert.equal(
    pod.spec.containers[0].spec.securityContext.runAsUser,
    1000,
    "pod securityContext is the default",
  );
  assert.match(
    err(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  initContainers: [{name: a, image: b}]\n  containers: [{name: a, image: b}]\n",
    ).detail,
    /already used in spec\.initContainers\[0\]/,
  );
});

Deno.test("loadPods() refuses the same hostPort twice in a pod, and hostNetwork port remapping", () => {
  const two = err(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n    - {name: a, image: b, ports: [{containerPort: 80, hostPort: 8080}]}\n    - {name: c, image: b, ports: [{containerPort: 81, hostPort: 8080}]}\n",
  );
  assert.equal(two.path, "spec.containers[1].ports[0].hostPort");
  const hn = err(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  hostNetwork: true\n  containers:\n    - {name: a, image: b, ports: [{containerPort: 80, hostPort: 8080}]}\n",
  );
  assert.match(hn.detail, /hostPort must equal containerPort/);
});

Deno.test("fields the API server writes (status, creationTimestamp, uid) are ignored without a warning", () => {
  const [pod] = loadPods(
    `apiVersion: v1
kind: Pod
metadata:
  name: gen
  creationTimestamp: "2024-01-01T00:00:00Z"
  uid: 1f2e
spec:
  containers: [{name: a, image: b, command: [sh]}]
status: {}
`,
    "gen.yaml",
  );
  assert.deepEqual(pod.warnings, []);
  assert.equal(pod.spec.name, "gen");
});

Deno.test("an init container with restartPolicy Always is a native sidecar; on an app container it is refused", () => {
  const [pod] = loadPods(
    `apiVersion: v1
kind: Pod
metadata: {name: sc}
spec:
  initContainers:
    - {name: log-shipper, image: b, command: [sleep, "600"], restartPolicy: Always}
    - {name: setup, image: b, command: ["true"]}
  containers: [{name: app, image: b, command: [sh]}]
`,
    "sc.yaml",
  );
  assert.deepEqual(pod.spec.initContainers.map((c) => [c.spec.name, c.spec.sidecar ?? false]), [
    ["log-shipper", true],
    ["setup", false],
  ]);
  assert.throws(
    () =>
      loadPods(
        `apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n    - {name: a, image: b, restartPolicy: Always}\n`,
        "x.yaml",
      ),
    (e: Error) =>
      e instanceof SpecError && /^x\.yaml:6:\d+: .*restartPolicy on a container/.test(e.message),
  );
});

Deno.test("hostPath.type is one of Kubernetes' types, checked at its line", () => {
  const pod = (type: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  volumes:\n    - name: d\n      hostPath: {path: /srv/d, type: ${type}}\n  containers:\n    - {name: a, image: b, command: [sh], volumeMounts: [{name: d, mountPath: /d}]}\n`;
  const [ok] = loadPods(pod("DirectoryOrCreate"), "h.yaml");
  assert.equal(ok.spec.containers[0].spec.mounts[0].hostPathType, "DirectoryOrCreate");
  assert.equal(ok.spec.containers[0].spec.mounts[0].loc?.line, 7);
  assert.throws(
    () => loadPods(pod("Dir"), "h.yaml"),
    (e: Error) => /^h\.yaml:7:\d+: .*hostPath type "Dir" must be one of/.test(e.message),
  );
});
