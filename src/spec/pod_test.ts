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

Deno.test("loadPods() warns about fields it does not know and keeps going; one-host fields are silent", () => {
  const [pod] = loadPods(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  nodeName: n1\n  bogus: 1\n  containers:\n    - {name: a, image: b, resizePolicy: [], madeUp: 2}\n",
    "p.yaml",
  );
  assert.deepEqual(pod.warnings.map((w) => `${w.line}:${w.path}`), [
    "6:spec.bogus",
    "8:spec.containers[0].madeUp",
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
    createMissingDir: true,
    path: ["spec", "volumes", 1, "hostPath", "path"],
  });
  // The field path is position-free; the pod's source locates it in the file.
  assert.deepEqual(pod.source.at(["spec", "volumes", 1, "hostPath", "path"]), {
    file: "p.yaml",
    line: 8,
    column: 37,
    path: "spec.volumes[1].hostPath.path",
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
      e instanceof SpecError &&
      /^x\.yaml:6:\d+: spec\.containers\[0\]\.restartPolicy: .*init containers only/.test(
        e.message,
      ),
  );
});

Deno.test("hostPath.type is one of Kubernetes' types, checked at its line", () => {
  const pod = (type: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  volumes:\n    - name: d\n      hostPath: {path: /srv/d, type: ${type}}\n  containers:\n    - {name: a, image: b, command: [sh], volumeMounts: [{name: d, mountPath: /d}]}\n`;
  const [ok] = loadPods(pod("DirectoryOrCreate"), "h.yaml");
  assert.equal(ok.spec.containers[0].spec.mounts[0].hostPathType, "DirectoryOrCreate");
  assert.equal(ok.source.at(ok.spec.containers[0].spec.mounts[0].path!).line, 7);
  assert.throws(
    () => loadPods(pod("Dir"), "h.yaml"),
    (e: Error) => /^h\.yaml:7:\d+: .*hostPath type "Dir" must be one of/.test(e.message),
  );
});

const OBJECTS = `apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, creationTimestamp: null}
data:
  LOG_LEVEL: debug
  app.conf: |
    listen 80
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
---
`;

const NODE = { cpus: 2, memoryBytes: 2 ** 30 };

function pod(spec: string): string {
  return `${OBJECTS}apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: x}}\nspec:\n${spec}`;
}

Deno.test("loadPods() resolves envFrom and valueFrom from the file's ConfigMaps and Secrets", () => {
  const [p] = loadPods(
    pod(`  containers:
    - name: a
      image: b
      envFrom:
        - configMapRef: {name: app-config}
          prefix: CFG_
      env:
        - {name: PW, valueFrom: {secretKeyRef: {name: creds, key: password}}}
        - {name: USER, valueFrom: {secretKeyRef: {name: creds, key: user}}}
        - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
        - {name: GONE, valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}}
        - {name: URL, value: "http://$(USER)@host/$(IP)"}
      resources: {limits: {memory: 128Mi}}
`),
    "p.yaml",
    { node: NODE },
  );
  const env = p.spec.containers[0].spec.env;
  assert.deepEqual(env, [
    { name: "CFG_LOG_LEVEL", value: "debug" },
    { name: "CFG_app.conf", value: "listen 80\n" },
    { name: "PW", value: "hunter2" },
    { name: "USER", value: "admin" },
    { name: "IP", fieldRef: "status.podIP" },
    { name: "MEM", value: "128" },
    { name: "URL", value: "http://$(USER)@host/$(IP)", expand: true },
  ]);
  assert.deepEqual(p.warnings, []);
});

Deno.test("loadPods() names the line of a ConfigMap, Secret or key that is not there", () => {
  let e = err(pod(`  containers:
    - name: a
      image: b
      env: [{name: X, valueFrom: {configMapKeyRef: {name: missing, key: k}}}]
`));
  assert.equal(e.line, 25);
  assert.equal(e.path, "spec.containers[0].env[0].valueFrom.configMapKeyRef.name");
  assert.match(e.detail, /ConfigMap "missing" is not defined \(add a kind: ConfigMap document/);
  e = err(pod(`  containers:
    - name: a
      image: b
      envFrom: [{secretRef: {name: creds}}]
      env: [{name: X, valueFrom: {secretKeyRef: {name: creds, key: nokey}}}]
`));
  assert.match(e.detail, /Secret "creds" \(line 11\) has no key "nokey"/);
  e = err(pod(`  containers:
    - name: a
      image: b
      env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]
`));
  assert.match(e.detail, /downwardAPI volumes only/);
});

Deno.test("loadPods() makes configMap, secret, downwardAPI and projected volumes; 0400 is octal", () => {
  const [p] = loadPods(
    pod(`  securityContext: {fsGroup: 2000}
  containers:
    - name: a
      image: b
      volumeMounts:
        - {name: cfg, mountPath: /etc/app}
        - {name: sec, mountPath: /run/secret}
        - {name: info, mountPath: /etc/podinfo}
        - {name: all, mountPath: /all}
        - {name: data, mountPath: /data}
  volumes:
    - name: cfg
      configMap: {name: app-config, items: [{key: app.conf, path: conf/app.conf}]}
    - name: sec
      secret: {secretName: creds, defaultMode: 0400}
    - name: info
      downwardAPI:
        items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: cpu, resourceFieldRef: {containerName: a, resource: limits.cpu}}
    - name: all
      projected:
        sources:
          - configMap: {name: app-config}
          - downwardAPI: {items: [{path: uid, fieldRef: {fieldPath: metadata.uid}, mode: 256}]}
    - name: data
      persistentVolumeClaim: {claimName: my-data}
`),
    "p.yaml",
    { node: NODE },
  );
  const fv = p.spec.fileVolumes;
  assert.deepEqual(fv.cfg, [{ path: "conf/app.conf", data: btoa("listen 80\n"), mode: 0o644 }]);
  assert.deepEqual(fv.sec.map((f) => [f.path, atob(f.data!), f.mode]), [
    ["password", "hunter2", 0o400],
    ["user", "admin", 0o400],
  ]);
  assert.deepEqual(fv.info, [
    { path: "labels", fieldRef: "metadata.labels", mode: 0o644 },
    { path: "cpu", data: btoa("2"), mode: 0o644 },
  ]);
  assert.deepEqual(fv.all.map((f) => f.path), ["LOG_LEVEL", "app.conf", "uid"]);
  assert.equal(fv.all[2].mode, 256);
  assert.deepEqual(p.spec.claims, ["my-data"]);
  assert.equal(p.spec.fsGroup, 2000);
  const mounts = p.spec.containers[0].spec.mounts;
  assert.deepEqual(mounts.map((m) => [m.kind, m.readOnly]), [
    ["files", true],
    ["files", true],
    ["files", true],
    ["files", true],
    ["claim", false],
  ]);
  assert.deepEqual(p.spec.containers[0].spec.supplementalGroups, [2000]);
});

Deno.test("loadPods() refuses what a single host cannot make, at its line", () => {
  let e = err(pod(`  containers: [{name: a, image: b}]
  volumes:
    - name: n
      nfs: {server: x, path: /}
`));
  assert.equal(e.line, 25);
  assert.match(e.detail, /volume type "nfs" is not supported/);
  e = err(pod(`  containers: [{name: a, image: b}]
  volumes:
    - name: t
      projected: {sources: [{serviceAccountToken: {path: token}}]}
`));
  assert.match(e.detail, /needs a Kubernetes API server/);
  e = err(pod(`  containers: [{name: a, image: b}]
  volumes:
    - name: s
      secret: {secretName: creds, items: [{key: user, path: ../escape}]}
`));
  assert.match(e.detail, /relative path without '\.\.'/);
  e = err(pod(`  containers: [{name: a, image: b}]
  volumes:
    - name: s
      secret: {secretName: creds, defaultMode: 0999}
`));
  assert.match(e.detail, /not a file mode/);
  e = err(
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
  );
  assert.equal(e.line, 2);
  assert.match(e.detail, /kind "Deployment" is not run here/);
});

Deno.test("loadPods() reads hostAliases and pod-level resources", () => {
  const [p] = loadPods(
    pod(`  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]
  resources: {limits: {cpu: "1", memory: 256Mi}}
  containers: [{name: a, image: b}]
`),
    "p.yaml",
  );
  assert.deepEqual(p.spec.hostAliases, [{ ip: "10.1.2.3", hostnames: ["foo.local", "bar.local"] }]);
  assert.deepEqual(p.spec.resources, { limits: { cpu: "1", memory: "256Mi" } });
});

Deno.test("loadPods() refuses forged label keys and values, annotation keys and env names, at their line", () => {
  const pod = (metadata: string, env = "") =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n${metadata}spec:\n  containers:\n    - name: c\n      image: i\n      command: [sh]\n${env}`;
  const cases: [string, RegExp][] = [
    [
      pod('  labels: {"a\\nb": x}\n'),
      /^p\.yaml:5:\d+: metadata\.labels\.a\\nb: key "a\\nb" is not a qualified name/,
    ],
    [
      pod('  labels: {app: "x\\r\\nFORGED"}\n'),
      /p\.yaml:5:\d+: metadata\.labels\.app: value "x\\r\\nFORGED" is not a label value/,
    ],
    [pod(`  labels: {app: ${"v".repeat(64)}}\n`), /longer than 63/],
    [
      pod('  annotations: {"\\e[2Jk": v}\n'),
      /^p\.yaml:5:\d+: metadata\.annotations\.\\x1b\[2Jk: key "\\u001b\[2jk" is not a qualified name/,
    ],
    [
      pod("", '      env: [{name: "A\\nB", value: x}]\n'),
      /^p\.yaml:10:\d+: spec\.containers\[0\]\.env\[0\]\.name: environment variable name "A\\nB" must consist only of printable ASCII characters other than '='/,
    ],
    [pod("", '      env: [{name: "A=B", value: x}]\n'), /other than '='/],
  ];
  for (const [text, want] of cases) assert.match(err(text).message, want);
  // Kubernetes' own forms pass: prefixed keys, empty values, annotation values with newlines.
  const ok = pod(
    '  labels: {example.com/tier: "", app.kubernetes.io/name: web}\n  annotations: {Example.com/Note: "line 1\\nline 2"}\n',
    '      env: [{name: "my.env-name", value: x}]\n',
  );
  const [p] = loadPods(ok, "p.yaml", { baseDir: "/srv" });
  assert.equal(p.spec.annotations["Example.com/Note"], "line 1\nline 2");
}); // deno-fmt-ignore

Deno.test("spec.ephemeralContainers is refused at its line, as the API server refuses it at create", () => {
  const e = err(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: b}]\n  ephemeralContainers:\n    - {name: dbg, image: busybox}\n",
  );
  assert.match(e.message, /^p\.yaml:6:3: spec\.ephemeralContainers: ephemeral containers cannot be set/);
});

Deno.test("pod-level resources other than cpu, memory and hugepages are refused at their line", () => {
  const doc = (res: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: b}]\n  resources:\n    ${res}\n`;
  assert.match(
    err(doc(`requests: {cpu: "1", ephemeral-storage: 1Gi}`)).message,
    /^p\.yaml:7:26: spec\.resources\.requests\.ephemeral-storage: pod-level resources may only be cpu, memory and hugepages/,
  );
  assert.match(
    err(doc(`limits:\n      nvidia.com/gpu: 1`)).message,
    /^p\.yaml:8:7: spec\.resources\.limits\.nvidia\.com\/gpu: pod-level/,
  );
  // cpu and memory are applied; hugepages are accepted by the API server (rkl warns it ignores them).
  const [p] = loadPods(doc(`limits: {cpu: "1", memory: 1Gi}`), "p.yaml");
  assert.deepEqual(p.spec.resources, { limits: { cpu: "1", memory: "1Gi" } });
});

Deno.test("dnsPolicy and dnsConfig: None needs nameservers, the API server's limits at their line", () => {
  const doc = (dns: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: b}]\n${dns}`;
  const [none] = loadPods(
    doc(
      `  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.1]\n    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]\n    options: [{name: ndots, value: "2"}, {name: edns0}]\n`,
    ),
    "p.yaml",
  );
  assert.deepEqual(none.spec.resolv, {
    base: "none",
    nameservers: ["192.0.2.1"],
    searches: ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
    options: [{ name: "ndots", value: "2" }, { name: "edns0" }],
  });
  assert.deepEqual(none.warnings, []);
  const [plain] = loadPods(doc(""), "p.yaml");
  assert.equal(plain.spec.resolv, undefined);
  assert.deepEqual(plain.warnings, []);
  // Written out (kubectl does), ClusterFirst falls back to Default without a word.
  const [cf] = loadPods(
    doc(`  dnsPolicy: ClusterFirst\n  dnsConfig: {searches: [a.example]}\n`),
    "p.yaml",
  );
  assert.equal(cf.spec.resolv?.base, "host");
  assert.deepEqual(cf.warnings, []);
  assert.match(
    err(doc(`  dnsPolicy: None\n`)).message,
    /^p\.yaml:6:14: spec\.dnsPolicy: dnsPolicy None needs a dnsConfig/,
  );
  assert.match(
    err(doc(`  dnsPolicy: None\n  dnsConfig: {searches: [a.example]}\n`)).message,
    /^p\.yaml:7:14: spec\.dnsConfig: dnsPolicy None needs at least one/,
  );
  assert.match(
    err(doc(`  dnsConfig:\n    nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]\n`))
      .message,
    /^p\.yaml:7:18: spec\.dnsConfig\.nameservers: at most 3 nameservers/,
  );
  assert.match(
    err(doc(`  dnsConfig:\n    nameservers: [dns.example]\n`)).message,
    /^p\.yaml:7:19: spec\.dnsConfig\.nameservers\[0\]: must be an IP address/,
  );
  assert.match(
    err(doc(`  dnsConfig:\n    searches: [Bad_Domain]\n`)).message,
    /^p\.yaml:7:16: spec\.dnsConfig\.searches\[0\]: .*DNS-1123 subdomain/,
  );
  assert.match(
    err(doc(`  dnsConfig:\n    options: [{name: "ndots\\nnameserver 6.6.6.6"}]\n`)).message,
    /^p\.yaml:7:\d+: spec\.dnsConfig\.options\[0\]\.name: must be a word/,
  );
  assert.match(err(doc(`  dnsPolicy: Cluster\n`)).message, /^p\.yaml:6:14: spec\.dnsPolicy: /);
});

Deno.test("emptyDir medium Memory is a sized tmpfs; sizeLimit on a disk emptyDir is warned", () => {
  const [p] = loadPods(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  volumes:\n    - {name: shm, emptyDir: {medium: Memory, sizeLimit: 64Mi}}\n    - {name: mem, emptyDir: {medium: Memory}}\n    - {name: disk, emptyDir: {sizeLimit: 1Gi}}\n    - {name: unused, emptyDir: {medium: Memory}}\n  containers:\n    - {name: a, image: b, volumeMounts: [{name: shm, mountPath: /dev/shm}, {name: mem, mountPath: /m}, {name: disk, mountPath: /d}]}\n`,
    "p.yaml",
  );
  assert.deepEqual(p.spec.memoryDirs, { shm: 64 * 2 ** 20, mem: undefined });
  assert.deepEqual(p.warnings.map((w) => `${w.line}:${w.path}`), [
    "8:spec.volumes[2].emptyDir.sizeLimit",
  ]);
  assert.match(p.warnings[0].message, /not enforced on a disk emptyDir/);
});
