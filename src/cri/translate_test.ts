import assert from "node:assert/strict";
import {
  cgroupParentOf,
  containerRequest,
  deviceOf,
  resourcesOf,
  sandboxPod,
} from "./translate.ts";
import { SpecError } from "../errors.ts";
import { CriError } from "./grpc.ts";
import { dnsResolvConf } from "../workloads/pod.ts";
import { generateConfig, ociResources } from "../oci/generate.ts";

const ID = "a".repeat(64);
const POD = {
  metadata: { name: "web", namespace: "default", uid: "u-1", attempt: 0 },
  hostname: "",
  labels: { app: "web" },
  annotations: {},
  port_mappings: [
    { protocol: "TCP", container_port: 80, host_port: 8080, host_ip: "" },
    { protocol: "UDP", container_port: 53, host_port: 0, host_ip: "" },
  ],
  dns_config: { servers: ["10.96.0.10"], searches: ["ns.svc.cluster.local"], options: ["ndots:5"] },
  linux: { cgroup_parent: "/kubepods/besteffort/podu-1", security_context: null },
};

function rejects(fn: () => unknown, want: RegExp) {
  assert.throws(fn, (e) => e instanceof CriError && want.test(e.message));
}

Deno.test("a sandbox config becomes a pod with no containers, named by its id", () => {
  const p = sandboxPod(ID, POD).spec;
  assert.equal(p.name, ID);
  assert.equal(p.hostname, "web"); // metadata.name when no hostname is given
  assert.equal(p.uid, "u-1");
  assert.equal(p.restartPolicy, "Never"); // the kubelet restarts, not rkl
  assert.deepEqual(p.containers, []);
  assert.deepEqual(p.portMappings, [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }]);
  assert.equal(p.cgroupParent, `kubepods/besteffort/podu-1/${ID}`);
  assert.equal(
    dnsResolvConf(p.dns!),
    "search ns.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
  );
  const host = sandboxPod(ID, {
    ...POD,
    linux: { security_context: { namespace_options: { network: "NODE", pid: "POD" } } },
  }).spec;
  assert.equal(host.hostNetwork, true);
  assert.equal(host.shareProcessNamespace, true);
  assert.deepEqual(host.portMappings, []);
});

Deno.test("bad sandbox configs name their field", () => {
  rejects(
    () => sandboxPod(ID, { ...POD, metadata: { ...POD.metadata, uid: "" } }),
    /metadata\.uid/,
  );
  rejects(() => sandboxPod(ID, { ...POD, hostname: "Not_A_Label" }), /config\.hostname/);
  rejects(
    () =>
      sandboxPod(ID, {
        ...POD,
        port_mappings: [{ protocol: "SCTP", container_port: 1, host_port: 1 }],
      }),
    /port_mappings\[0\]\.protocol/,
  );
  rejects(() => cgroupParentOf("/kubepods/../etc", "f"), /not a cgroup path/);
  rejects(() => cgroupParentOf("kubepods.slice", "f"), /systemd slice/);
});

const CTR = {
  metadata: { name: "app", attempt: 1 },
  image: { image: "busybox:1.36" },
  command: ["/bin/sh"],
  args: ["-c", "echo hi"],
  envs: [{ key: "A", value: "1" }],
  working_dir: "/srv",
  mounts: [{
    host_path: "/data",
    container_path: "/mnt",
    readonly: true,
    propagation: "PROPAGATION_HOST_TO_CONTAINER",
  }],
  log_path: "app/1.log",
  tty: false,
  linux: {
    resources: {
      cpu_period: "100000",
      cpu_quota: "50000",
      cpu_shares: "512",
      memory_limit_in_bytes: "67108864",
    },
    security_context: {
      run_as_user: { value: "1000" },
      run_as_group: { value: "1000" },
      supplemental_groups: ["5", "6"],
      no_new_privs: true,
      readonly_rootfs: true,
      capabilities: { add_capabilities: ["NET_ADMIN"], drop_capabilities: ["ALL"] },
      seccomp: { profile_type: "RuntimeDefault" },
      masked_paths: ["/proc/kcore"],
      readonly_paths: [],
    },
  },
};

Deno.test("a container config becomes a spec the generator reads as the kubelet meant it", () => {
  const { loaded, logPath } = containerRequest(CTR, {
    image: "sha256:" + "b".repeat(64),
    logDirectory: "/var/log/pods/default_web_u-1/",
    sysctls: { "net.core.somaxconn": "1024" },
  });
  const s = loaded.spec;
  assert.equal(logPath, "/var/log/pods/default_web_u-1/app/1.log");
  assert.equal(s.imagePullPolicy, "Never");
  assert.deepEqual([s.command, s.args], [["/bin/sh"], ["-c", "echo hi"]]);
  assert.equal(s.kubernetes, undefined); // the kubelet expanded $(VAR) already
  assert.equal(s.mounts[0].propagation, "rslave");
  assert.equal(s.mounts[0].readOnly, true);
  assert.equal(s.securityContext.runAsUser, 1000);
  assert.equal(s.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(s.supplementalGroups, [5, 6]);
  assert.deepEqual(s.maskedPaths, ["/proc/kcore"]);
  assert.equal(s.readonlyPaths, undefined); // none given: rkl's defaults
  assert.deepEqual(s.sysctls, { "net.core.somaxconn": "1024" });
  // The cgroup values come back out as they went in.
  const r = ociResources(s.resources);
  assert.deepEqual([r.cpu?.quota, r.cpu?.period, r.cpu?.shares, r.memory?.limit], [
    50000,
    100000,
    512,
    67108864,
  ]);
  assert.deepEqual(resourcesOf(null), {});
});

Deno.test("a CRI container gets cgroupfs read-only from the generator unless privileged", () => {
  const cgroupMount = (privileged: boolean) => {
    const sc = { ...CTR.linux.security_context, privileged };
    const { loaded } = containerRequest({ ...CTR, linux: { ...CTR.linux, security_context: sc } }, {
      image: "sha256:" + "b".repeat(64),
      logDirectory: "/var/log/pods/default_web_u-1/",
    });
    const config = generateConfig(loaded.spec, {
      rootfs: "/r",
      cgroupsPath: "/kubepods/x/app",
      hostname: "web",
      etcFiles: { hosts: "/e/h", hostname: "/e/n", resolvConf: "/e/r" },
      nofileHard: 1024,
      bundle: {},
      arch: "x86_64",
    });
    const m = config.mounts.filter((m) => m.destination === "/sys/fs/cgroup");
    assert.equal(m.length, 1);
    assert.equal(m[0].type, "cgroup");
    return m[0].options ?? [];
  };
  assert.ok(cgroupMount(false).includes("ro"));
  assert.ok(!cgroupMount(false).includes("rw"));
  assert.ok(cgroupMount(true).includes("rw"));
});

Deno.test("bad container configs name their field", () => {
  const opts = { image: "x", logDirectory: "/logs" };
  rejects(
    () => containerRequest({ ...CTR, mounts: [{ host_path: "rel", container_path: "/m" }] }, opts),
    /config\.mounts\[0\]\.host_path/,
  );
  rejects(
    () =>
      containerRequest({ ...CTR, mounts: [{ host_path: "/a/../b", container_path: "/m" }] }, opts),
    /has "\.\."/,
  );
  rejects(() => containerRequest({ ...CTR, log_path: "../../etc/x" }, opts), /log_path/);
  rejects(() => containerRequest({ ...CTR, log_path: "/abs" }, opts), /log_path/);
  rejects(
    () => containerRequest(CTR, { image: "x", logDirectory: "" }),
    /no log_directory/,
  );
  rejects(() => containerRequest({ ...CTR, metadata: { name: "" } }, opts), /metadata\.name/);
  rejects(
    () =>
      containerRequest({
        ...CTR,
        linux: { security_context: { seccomp: { profile_type: "Localhost", localhost_ref: "p" } } },
      }, opts),
    /localhost_ref/,
  );
});

Deno.test("deviceOf(): a host device node's type, numbers and mode; anything else refused", () => {
  const d = deviceOf(
    { host_path: "/dev/null", container_path: "/dev/xnull", permissions: "rw" },
    0,
  );
  assert.deepEqual(d, {
    path: "/dev/xnull",
    type: "c",
    major: 1,
    minor: 3,
    fileMode: 0o666,
    access: "rw",
  });
  assert.throws(
    () => deviceOf({ host_path: "/etc/passwd", container_path: "/dev/x" }, 1),
    /config\.devices\[1\]\.host_path: \/etc\/passwd is not a device/,
  );
  assert.throws(
    () => deviceOf({ host_path: "/dev/null", container_path: "/dev/x", permissions: "rwx" }, 0),
    /permissions/,
  );
  assert.throws(
    () => deviceOf({ host_path: "/dev/null", container_path: "dev/x" }, 0),
    /container_path/,
  );
  assert.throws(
    () => deviceOf({ host_path: "/dev/../dev/null", container_path: "/dev/x" }, 0),
    /host_path/,
  );
});

Deno.test("forged sandbox names, namespaces, uids, labels and env names are INVALID_ARGUMENT, escaped in the message", () => {
  const md = POD.metadata;
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { metadata: { ...md, name: "web\nFORGED   1/1   Running" } },
      /^config\.metadata\.name: "web\\nFORGED {3}1\/1 {3}Running" is not a DNS-1123 subdomain/,
    ],
    [
      { metadata: { ...md, name: "web\x1b[2J" } },
      /config\.metadata\.name: "web\\u001b\[2J" is not/,
    ],
    [{ metadata: { ...md, name: "a".repeat(254) } }, /config\.metadata\.name: .* at most 253/],
    [
      { metadata: { ...md, namespace: "default\r\nx" } },
      /^config\.metadata\.namespace: "default\\r\\nx" is not a DNS-1123 label/,
    ],
    [{ metadata: { ...md, namespace: "a.b" } }, /config\.metadata\.namespace/],
    [{ metadata: { ...md, uid: "u\n1" } }, /^config\.metadata\.uid: "u\\n1" is not a uid/],
    [
      { labels: { "a\nb": "x" } },
      /^config\.labels\["a\\nb"\]: key "a\\nb" is not a qualified name/,
    ],
    [
      { labels: { app: "x\x9b31m" } },
      /^config\.labels\["app"\]: value "x\\x9b31m" has control characters/,
    ],
    [{ annotations: { "\x1b": "x" } }, /^config\.annotations\["\\u001b"\]/],
  ];
  for (const [over, want] of cases) rejects(() => sandboxPod(ID, { ...POD, ...over }), want);
  // What critest and the kubelet send passes: upper case names, long label values, free annotation values.
  const ok = sandboxPod(ID, {
    ...POD,
    metadata: { ...md, name: "NamespaceOption-PodSandbox-0c1f", namespace: "cri-test-namespace1" },
    labels: { "io.kubernetes.pod.name": "p".repeat(200) },
    annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{\n}\n" },
  }).spec;
  assert.equal(ok.namespace, "cri-test-namespace1");
  const ctr = (envs: unknown[]) =>
    containerRequest({ metadata: { name: "c" }, envs }, { image: "i", logDirectory: "" });
  rejects(
    () => ctr([{ key: "A\nB", value: "x" }]),
    /^config\.envs\[0\]\.key: environment variable name "A\\nB" must consist only of printable ASCII/,
  );
  rejects(() => ctr([{ key: "A=B", value: "x" }]), /other than '='/);
  assert.deepEqual(ctr([{ key: "my.env-name", value: "x" }]).loaded.spec.env, [{
    name: "my.env-name",
    value: "x",
  }]);
  // KeyValue.value is `bytes` on the wire: decoded requests carry a Uint8Array.
  assert.deepEqual(
    ctr([{ key: "A", value: new TextEncoder().encode("yés") }, { key: "B" }]).loaded.spec.env,
    [{ name: "A", value: "yés" }, { name: "B", value: "" }],
  );
}); // deno-fmt-ignore

Deno.test("an error the core locates in a CRI request names the RPC and the proto field", () => {
  const { loaded } = containerRequest(
    { metadata: { name: "web" }, image: { image: "busybox" } },
    { image: "sha256:abc", logDirectory: "" },
  );
  const e = new SpecError(loaded.source.at(["image"]), "Cannot find the image");
  assert.equal(e.message, "CreateContainer: config.image.image: Cannot find the image");
  const pod = sandboxPod(ID, POD);
  assert.deepEqual(pod.source.at(["metadata", "labels", "bundle"]), {
    file: "RunPodSandbox",
    path: "config.labels",
  });
});
