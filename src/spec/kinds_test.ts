import assert from "node:assert/strict";
import { loadKube } from "./kinds.ts";
import { CONTAINER_KEYS, POD_SECURITY_KEYS, POD_SPEC_KEYS } from "./pod.ts";
import { securityContext, volumeMount } from "./schema.ts";
import { SpecError } from "../errors.ts";

const node = { cpus: 2, memoryBytes: 2 ** 30 };

function err(text: string): SpecError {
  try {
    loadKube(text, "k.yaml", { node });
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error("no error");
}

// A kompose-style file (written here): a Deployment and its Service, as `kompose convert` lays
// them out (labels io.kompose.service, creationTimestamp: null, status: {}).
const WEB = `apiVersion: v1
kind: Service
metadata:
  labels: {io.kompose.service: web}
  name: web
spec:
  ports:
    - name: "8080"
      port: 8080
      targetPort: 80
  selector:
    io.kompose.service: web
status:
  loadBalancer: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  labels: {io.kompose.service: web}
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      io.kompose.service: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        io.kompose.service: web
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers:
        - image: busybox
          name: web
          ports:
            - containerPort: 80
              protocol: TCP
          resources: {}
      restartPolicy: Always
status: {}
`;

Deno.test("loadKube() runs a Deployment's replicas as <name>-pod-<i> with the template's labels", () => {
  const k = loadKube(WEB, "k.yaml", { node });
  assert.deepEqual(k.pods.map((p) => p.spec.name), ["web-pod-0", "web-pod-1", "web-pod-2"]);
  assert.deepEqual(k.pods[1].spec.labels, { "io.kompose.service": "web" });
  assert.deepEqual(k.pods[2].owner, { kind: "Deployment", name: "web" });
  assert.equal(k.pods[0].spec.hostname, "web-pod-0");
  // Errors and warnings of a template point at the template's lines.
  const e = err(WEB.replace("name: web\n          ports", "name: Web\n          ports"));
  assert.equal(e.line, 36);
  assert.match(e.path ?? "", /^spec\.containers\[0\]\.name$/);
});

Deno.test("loadKube(): a ClusterIP Service publishes port on 127.0.0.1 to the first pod it selects", () => {
  const k = loadKube(WEB, "k.yaml", { node });
  assert.deepEqual(k.services[0].published, [
    { hostIP: "127.0.0.1", hostPort: 8080, protocol: "TCP", pod: "web-pod-0", port: 80 },
  ]);
  assert.deepEqual(k.pods[0].spec.containers[0].spec.ports, [
    { containerPort: 80, protocol: "TCP", hostPort: 8080, hostIP: "127.0.0.1" },
  ]);
  assert.deepEqual(k.pods[1].spec.containers[0].spec.ports, [
    { containerPort: 80, protocol: "TCP" },
  ]);
  const w = k.warnings.find((x) => x.message.includes("selects 3 pods"));
  assert.equal(w?.line, 12);
});

Deno.test("loadKube(): a NodePort Service publishes nodePort on every address; named targetPort", () => {
  const text = WEB.replace(
    "port: 8080\n      targetPort: 80",
    "port: 8080\n      targetPort: http\n      nodePort: 30080",
  )
    .replace("  selector:\n    io", "  type: NodePort\n  selector:\n    io")
    .replace("- containerPort: 80", "- containerPort: 80\n              name: http");
  const k = loadKube(text, "k.yaml", { node });
  assert.deepEqual(k.services[0].published, [
    { hostIP: "0.0.0.0", hostPort: 30080, protocol: "TCP", pod: "web-pod-0", port: 80 },
  ]);
  assert.match(
    err(WEB.replace("targetPort: 80", "targetPort: nope")).message,
    /^k\.yaml:10:\d+: spec\.ports\[0\]\.targetPort: no container of pod web-pod-0 has a port named "nope"/,
  );
  assert.match(
    err(WEB.replace("targetPort: 80", "targetPort: 80\n      nodePort: 30001")).message,
    /nodePort: a ClusterIP service has no nodePort/,
  );
});

Deno.test("loadKube() skips kinds with no meaning on one host, one warning each at its line", () => {
  const text = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: a, image: b}]
`;
  const k = loadKube(text, "k.yaml", { node });
  assert.deepEqual(k.warnings.map((w) => `${w.line}: ${w.message}`), [
    `2: "Ingress" means nothing on one host; skipped`,
    `6: "ServiceAccount" means nothing on one host; skipped`,
    `10: "Widget" is not a kind rkl knows; skipped`,
  ]);
  assert.deepEqual(k.pods.map((p) => p.spec.name), ["p"]);
  // Workload kinds rkl does not run are refused, never dropped.
  assert.match(
    err(text.replace("kind: Widget", "kind: StatefulSet")).message,
    /^k\.yaml:10:7: kind: StatefulSet is not run by rkl/,
  );
});

Deno.test("loadKube(): a DaemonSet is one pod <name>-pod; a selector that misses the template is refused", () => {
  const ds = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: a, image: b}]
`;
  const k = loadKube(ds, "k.yaml", { node });
  assert.deepEqual(k.pods.map((p) => p.spec.name), ["agent-pod"]);
  assert.deepEqual(k.warnings, []);
  assert.deepEqual(k.pods[0].warnings, []);
  assert.match(
    err(ds.replace("labels: {app: agent}}", "labels: {app: other}}")).message,
    /^k\.yaml:5:\d+: spec\.selector: the selector does not match the template's labels/,
  );
});

Deno.test("loadKube() reads a Job's rules with Kubernetes' defaults and refuses restartPolicy Always", () => {
  const job = `apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  backoffLimit: 2
  activeDeadlineSeconds: 60
  template:
    spec:
      restartPolicy: Never
      containers: [{name: a, image: b}]
`;
  const [j] = loadKube(job, "k.yaml", { node }).jobs;
  assert.equal(j.name, "once");
  assert.equal(j.completions, 1);
  assert.equal(j.parallelism, 1);
  assert.equal(j.backoffLimit, 2);
  assert.equal(j.activeDeadlineSeconds, 60);
  assert.equal(j.template.spec.restartPolicy, "Never");
  assert.equal(
    loadKube(job.replace("  backoffLimit: 2\n", ""), "k.yaml", { node }).jobs[0].backoffLimit,
    6,
  );
  assert.match(
    err(job.replace("restartPolicy: Never", "restartPolicy: Always")).message,
    /^k\.yaml:9:\d+: spec\.template\.spec\.restartPolicy: a Job's pod needs restartPolicy Never or OnFailure/,
  );
  assert.match(
    err(job.replace("  backoffLimit: 2\n", "  completionMode: Indexed\n")).message,
    /completionMode: Indexed jobs are not supported/,
  );
});

Deno.test("a pod volume and claim named as `podman kube generate` names them are accepted", () => {
  const pod = `apiVersion: v1
kind: Pod
metadata: {name: db}
spec:
  enableServiceLinks: false
  automountServiceAccountToken: false
  containers:
    - name: db
      image: b
      volumeMounts: [{mountPath: /var/lib/mysql, name: mariadb_data-pvc}]
  volumes:
    - name: mariadb_data-pvc
      persistentVolumeClaim: {claimName: mariadb_data}
`;
  const k = loadKube(pod, "k.yaml", { node });
  assert.deepEqual(k.pods[0].spec.claims, ["mariadb_data"]);
  assert.deepEqual(k.pods[0].warnings, []);
  assert.match(err(pod.replace("claimName: mariadb_data", "claimName: ../x")).message, /claimName/);
});

// Kubernetes 1.36 (k8s.io/api release-1.36, core/v1/types.go): every field of PodSpec,
// Container, PodSecurityContext, SecurityContext and VolumeMount.
const K8S_136 = {
  PodSpec:
    "volumes initContainers containers ephemeralContainers restartPolicy terminationGracePeriodSeconds activeDeadlineSeconds dnsPolicy nodeSelector serviceAccountName serviceAccount automountServiceAccountToken nodeName hostNetwork hostPID hostIPC shareProcessNamespace securityContext imagePullSecrets hostname subdomain affinity schedulerName tolerations hostAliases priorityClassName priority dnsConfig readinessGates runtimeClassName enableServiceLinks preemptionPolicy overhead topologySpreadConstraints setHostnameAsFQDN os hostUsers schedulingGates resourceClaims resources hostnameOverride schedulingGroup",
  Container:
    "name image command args workingDir ports envFrom env resources resizePolicy restartPolicy restartPolicyRules volumeMounts volumeDevices livenessProbe readinessProbe startupProbe lifecycle terminationMessagePath terminationMessagePolicy imagePullPolicy securityContext stdin stdinOnce tty",
  SecurityContext:
    "capabilities privileged seLinuxOptions windowsOptions runAsUser runAsGroup runAsNonRoot readOnlyRootFilesystem allowPrivilegeEscalation procMount seccompProfile appArmorProfile",
  PodSecurityContext:
    "seLinuxOptions windowsOptions runAsUser runAsGroup runAsNonRoot supplementalGroups supplementalGroupsPolicy fsGroup sysctls fsGroupChangePolicy seccompProfile appArmorProfile seLinuxChangePolicy",
  VolumeMount: "name readOnly recursiveReadOnly mountPath subPath mountPropagation subPathExpr",
};

Deno.test("every Kubernetes 1.36 PodSpec, Container, security context and mount field is known", () => {
  const known: Record<keyof typeof K8S_136, readonly string[]> = {
    PodSpec: POD_SPEC_KEYS,
    Container: CONTAINER_KEYS,
    SecurityContext: Object.keys(securityContext.shape),
    PodSecurityContext: POD_SECURITY_KEYS,
    VolumeMount: Object.keys(volumeMount.shape),
  };
  for (const [type, names] of Object.entries(K8S_136) as [keyof typeof K8S_136, string][]) {
    const missing = names.split(" ").filter((n) => !known[type].includes(n));
    assert.deepEqual(missing, [], `${type}: not known to the schema`);
  }
  // Not a Kubernetes field: still warned as unknown.
  const k = loadKube(
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: a\n      image: b\n      securityContext: {cgroupOptions: {}}\n",
    "k.yaml",
    { node },
  );
  assert.deepEqual(k.pods[0].warnings.map((w) => w.path), [
    "spec.containers[0].securityContext.cgroupOptions",
  ]);
});

Deno.test("scheduling fields are silent; fields rkl cannot do are refused at their line with what to do", () => {
  const pod = (extra: string, c = "") =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n${extra}  containers:\n    - name: a\n      image: b\n${c}`;
  const quiet = loadKube(
    pod(
      "  nodeSelector: {a: b}\n  affinity: {}\n  tolerations: []\n  schedulingGates: [{name: g}]\n  priorityClassName: high\n  topologySpreadConstraints: []\n  dnsPolicy: ClusterFirst\n  serviceAccountName: default\n  hostPID: true\n  hostnameOverride: box.example\n  securityContext:\n    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '0'}]\n",
    ),
    "k.yaml",
    { node },
  ).pods[0];
  assert.deepEqual(quiet.warnings, []);
  assert.equal(quiet.spec.hostPID, true);
  assert.equal(quiet.spec.hostname, "box.example");
  assert.deepEqual(quiet.spec.containers[0].spec.sysctls, {
    "net.ipv4.ip_unprivileged_port_start": "0",
  });
  for (
    const [extra, c, want] of [
      ["  activeDeadlineSeconds: 5\n", "", /^k\.yaml:5:3: spec\.activeDeadlineSeconds: .*Job/],
      ["  hostUsers: false\n", "", /^k\.yaml:5:3: spec\.hostUsers: user namespaces/],
      ["  os: {name: windows}\n", "", /spec\.os\.name: this host runs linux pods/],
      ["", "      volumeDevices: []\n", /^k\.yaml:8:7: spec\.containers\[0\]\.volumeDevices/],
      [
        "",
        "      volumeMounts: [{name: v, mountPath: /v, subPathExpr: $(X)}]\n",
        /subPathExpr: not supported: use subPath/,
      ],
      [
        "",
        "      securityContext: {procMount: Unmasked}\n",
        /securityContext\.procMount: Unmasked needs a user namespace/,
      ],
    ] as const
  ) {
    assert.match(err(pod(extra, c)).message, want);
  }
});
