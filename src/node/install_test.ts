import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import {
  cgroupV1,
  checkCa,
  checkKubeconfig,
  checkNodeIp,
  checkNodeName,
  checkServer,
  checkToken,
  kubeletConfig,
  kubeletUnit,
  nodePaths,
  readUserFile,
  swapOn,
  tokenKubeconfig,
} from "./install.ts";
import { UsageError } from "../errors.ts";

/** A self-signed CA and a leaf it signed (openssl, EC P-256, ten years). Test data, no secret. */
const CA = `-----BEGIN CERTIFICATE-----
MIIBeTCCAR+gAwIBAgIULVH2RSIHoEO+iPGGBlGWWNpsN9kwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjEyMDYxMzU2MzFaFw0zNjEyMDMxMzU2
MzFaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AASlBRlaVstFRhf5cFAaMwqfzt6joRnZHKIMhhqNS2u14REUr3JLcJRBYJDHI0Jn
8rki98YtWHJyfQc+CuDcE0Z+o1MwUTAdBgNVHQ4EFgQUEdQ0MOExi+L1oQAFzrTi
T+L8m+MwHwYDVR0jBBgwFoAUEdQ0MOExi+L1oQAFzrTiT+L8m+MwDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA0GcAWbTZ/OnA3M45AnqrGzwozkIZ
GLm/vUZ66lFQl0YCIHNPeFkSkXQXD8TN4TYAFI+vqZcR6yysQ7VUugGKdnGY
-----END CERTIFICATE-----
`;
const LEAF = `-----BEGIN CERTIFICATE-----
MIIBPDCB4wIUEn+JiBsCm4+YjZN3iF10jv+PiegwCgYIKoZIzj0EAwIwEjEQMA4G
A1UEAwwHdGVzdC1jYTAeFw0yNjEyMDYxMzU2MzJaFw0zNjEyMDMxMzU2MzJaMDAx
FTATBgNVBAoMDHN5c3RlbTpub2RlczEXMBUGA1UEAwwOc3lzdGVtOm5vZGU6bjEw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATdyUYR/gpgWxB5Fzg6pUX4nDDOpLab
ULWdJxs430VPa/T3O3/aaiFZ0qxOFnmfEl6oW7bZvf6YMwWKleqCHlipMAoGCCqG
SM49BAMCA0gAMEUCIDdFAKIgfytbsdQEoD4VNGofW8u20ZA+zE47JHBlDepxAiEA
vm2VM75rZ3VWM0F6fx5si82eMp9vRV5g+Z75BADuBA0=
-----END CERTIFICATE-----
`;

function refused(f: () => unknown, want: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.exitCode, 2);
    assert.match(e.message, want);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

/** A fake filesystem for the files a kubeconfig names. */
function reader(files: Record<string, string>) {
  return (p: string) => {
    if (p in files) return files[p];
    if (p.endsWith("/secret.key")) throw new Deno.errors.PermissionDenied("denied");
    throw new Deno.errors.NotFound(p);
  };
}

Deno.test("checkCa() takes a CA certificate and refuses a leaf or no PEM, naming the source", () => {
  assert.equal(checkCa(CA, "ca.crt"), CA);
  refused(
    () => checkCa(LEAF, "node.crt"),
    /^node\.crt: .*CN=system:node:n1 is not a CA certificate/,
  );
  refused(() => checkCa("hello", "x.pem"), /^x\.pem: no PEM certificate/);
  refused(
    () => checkCa("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "bad.pem"),
    /^bad\.pem: not a valid certificate/,
  );
});

Deno.test("the server, token, node name and IPs are checked", () => {
  assert.equal(checkServer("https://192.0.2.10:6443/"), "https://192.0.2.10:6443");
  refused(() => checkServer("http://192.0.2.10:6443"), /--server "http:.*https:\/\/HOST/);
  refused(() => checkServer("not a url"), /not a URL/);
  assert.equal(checkToken("abcdef.0123456789abcdef"), "abcdef.0123456789abcdef");
  refused(() => checkToken("abc def"), /--token/);
  refused(() => checkToken(""), /--token/);
  assert.equal(checkNodeName("node-1.example"), "node-1.example");
  refused(() => checkNodeName("Node_1"), /--node-name "Node_1"/);
  refused(() => checkNodeName("../x"), /--node-name/);
  assert.equal(checkNodeIp("198.51.100.31"), "198.51.100.31");
  assert.equal(checkNodeIp("198.51.100.31,2001:db8::1"), "198.51.100.31,2001:db8::1");
  refused(() => checkNodeIp("198.51.100.300"), /--node-ip/);
  refused(() => checkNodeIp("198.51.100.1,198.51.100.2"), /--node-ip/);
});

Deno.test("readUserFile() turns an unreadable file into one line of bad input", () => {
  const read = reader({});
  refused(
    () => readUserFile(read, "/k/secret.key", "--kubeconfig"),
    /^--kubeconfig \/k\/secret\.key: cannot read it: permission denied$/,
  );
  refused(() => readUserFile(read, "/k/none", "--kubeconfig"), /cannot read it: no such file$/);
});

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://192.0.2.10:6443", ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    "current-context": "x",
  });
}

Deno.test("checkKubeconfig() embeds the files it names, relative to its own directory", () => {
  const read = reader({
    "/etc/k/pki/ca.crt": CA,
    "/etc/k/node.crt": LEAF,
    "/etc/k/node.key": "KEY",
  });
  const text = kubeconfig(
    { "certificate-authority": "pki/ca.crt" },
    { "client-certificate": "node.crt", "client-key": "/etc/k/node.key" },
  );
  const k = checkKubeconfig(text, "/etc/k/kubelet.conf", read);
  assert.equal(k.server, "https://192.0.2.10:6443");
  assert.equal(k.caPem, CA);
  const doc = parse(k.text);
  assert.equal(atob(doc.clusters[0].cluster["certificate-authority-data"]), CA);
  assert.equal(doc.clusters[0].cluster["certificate-authority"], undefined);
  assert.equal(atob(doc.users[0].user["client-certificate-data"]), LEAF);
  assert.equal(atob(doc.users[0].user["client-key-data"]), "KEY");
  assert.equal(doc["current-context"], "x");
  // Inline data and a token work too; --certificate-authority wins over the kubeconfig's CA.
  const inline = kubeconfig({ "certificate-authority-data": btoa(CA) }, { token: "t0k" });
  assert.equal(checkKubeconfig(inline, "k.conf", read).caPem, CA);
  assert.equal(checkKubeconfig(inline, "k.conf", read, "OTHER").caPem, "OTHER");
});

Deno.test("checkKubeconfig() refuses what leaves the kubelet without a CA or credentials", () => {
  const read = reader({ "/k/ca.crt": CA, "/k/leaf.crt": LEAF });
  refused(
    () => checkKubeconfig(kubeconfig({}, { token: "t" }), "/k/a.conf", read),
    /^\/k\/a\.conf: clusters\[c\]: no certificate-authority/,
  );
  refused(
    () =>
      checkKubeconfig(
        kubeconfig({ "certificate-authority": "gone.crt" }, { token: "t" }),
        "/k/a.conf",
        read,
      ),
    /^--kubeconfig|\/k\/a\.conf: clusters\[c\]\.certificate-authority \/k\/gone\.crt: cannot read it: no such file$/,
  );
  refused(
    () =>
      checkKubeconfig(
        kubeconfig({ "certificate-authority": "leaf.crt" }, { token: "t" }),
        "/k/a.conf",
        read,
      ),
    /is not a CA certificate/,
  );
  refused(
    () => checkKubeconfig(kubeconfig({ "certificate-authority": "ca.crt" }, {}), "/k/a.conf", read),
    /users\[u\]: no client-certificate\/client-key and no token/,
  );
  refused(
    () =>
      checkKubeconfig(
        kubeconfig({ "certificate-authority": "ca.crt" }, {
          "client-key": "secret.key",
          "client-certificate": "leaf.crt",
        }),
        "/k/a.conf",
        read,
      ),
    /users\[u\]\.client-key \/k\/secret\.key: cannot read it: permission denied/,
  );
  refused(
    () =>
      checkKubeconfig(
        kubeconfig({ "certificate-authority": "ca.crt", "insecure-skip-tls-verify": true }, {
          token: "t",
        }),
        "/k/a.conf",
        read,
      ),
    /insecure-skip-tls-verify/,
  );
  refused(
    () =>
      checkKubeconfig(
        kubeconfig({ server: "http://x:8080", "certificate-authority": "ca.crt" }, { token: "t" }),
        "/k/a.conf",
        read,
      ),
    /clusters\[c\]\.server "http:\/\/x:8080"/,
  );
  refused(() => checkKubeconfig("a: [", "/k/a.conf", read), /^\/k\/a\.conf: not YAML/);
  refused(() => checkKubeconfig("[]", "/k/a.conf", read), /not a kubeconfig/);
  const noCtx = stringify({ clusters: [], users: [], contexts: [] });
  refused(() => checkKubeconfig(noCtx, "/k/a.conf", read), /current-context: not set/);
});

Deno.test("kubeletConfig() has rkl's socket, cgroupfs, QoS cgroups and webhook auth; v1 and swap only when so", () => {
  const base = { criSocket: "/run/rkl/rkl.sock", clientCAFile: "/etc/kubernetes/pki/ca.crt" };
  const v2 = parse(kubeletConfig({ ...base, cgroupV1: false, swapOn: false }));
  assert.equal(v2.kind, "KubeletConfiguration");
  assert.equal(v2.apiVersion, "kubelet.config.k8s.io/v1beta1");
  assert.equal(v2.containerRuntimeEndpoint, "unix:///run/rkl/rkl.sock");
  assert.equal(v2.cgroupDriver, "cgroupfs");
  assert.equal(v2.cgroupsPerQOS, true);
  assert.equal(v2.failCgroupV1, undefined);
  assert.equal(v2.failSwapOn, undefined);
  assert.deepEqual(v2.authentication, {
    anonymous: { enabled: false },
    webhook: { enabled: true },
    x509: { clientCAFile: "/etc/kubernetes/pki/ca.crt" },
  });
  assert.deepEqual(v2.authorization, { mode: "Webhook" });
  assert.equal(v2.clusterDomain, "cluster.local");
  const v1 = parse(
    kubeletConfig({ ...base, cgroupV1: true, swapOn: true, clusterDNS: ["10.96.0.10"] }),
  );
  assert.equal(v1.failCgroupV1, false);
  assert.equal(v1.failSwapOn, false);
  assert.deepEqual(v1.memorySwap, { swapBehavior: "NoSwap" });
  assert.deepEqual(v1.clusterDNS, ["10.96.0.10"]);
});

Deno.test("kubeletUnit() starts after rkl, requires it, and quotes what needs it", () => {
  const u = kubeletUnit({
    kubelet: "/usr/local/bin/kubelet",
    config: "/var/lib/kubelet/config.yaml",
    kubeconfig: "/etc/kubernetes/kubelet.conf",
    bootstrapKubeconfig: "/etc/kubernetes/bootstrap-kubelet.conf",
    nodeName: "n1",
    nodeIp: "198.51.100.31",
  });
  assert.match(u, /^After=network-online\.target rkl\.service$/m);
  assert.match(u, /^Requires=rkl\.service$/m);
  assert.match(u, /^Restart=always$/m);
  assert.match(
    u,
    /^ExecStart=\/usr\/local\/bin\/kubelet --config=\/var\/lib\/kubelet\/config\.yaml --bootstrap-kubeconfig=\/etc\/kubernetes\/bootstrap-kubelet\.conf --kubeconfig=\/etc\/kubernetes\/kubelet\.conf --hostname-override=n1 --node-ip=198\.51\.100\.31$/m,
  );
  const spaced = kubeletUnit({ kubelet: "/opt/my kube/kubelet", config: "/c", kubeconfig: "/k" });
  assert.match(spaced, /^ExecStart="\/opt\/my kube\/kubelet" --config=\/c --kubeconfig=\/k$/m);
});

Deno.test("tokenKubeconfig() names the server, the CA file and the token", () => {
  const d = parse(tokenKubeconfig("https://192.0.2.10:6443", "/etc/kubernetes/pki/ca.crt", "a.b"));
  assert.equal(d.clusters[0].cluster.server, "https://192.0.2.10:6443");
  assert.equal(d.clusters[0].cluster["certificate-authority"], "/etc/kubernetes/pki/ca.crt");
  assert.equal(d.users[0].user.token, "a.b");
  assert.equal(d["current-context"], d.contexts[0].name);
});

Deno.test("cgroupV1(), swapOn() and nodePaths() read the host as the kubelet does", () => {
  const hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
    "40 31 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  assert.equal(cgroupV1(hybrid), true);
  assert.equal(cgroupV1("30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"), false);
  assert.equal(swapOn("Filename\tType\tSize\tUsed\tPriority\n"), false);
  assert.equal(swapOn("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n"), true);
  const p = nodePaths("/tmp/x/");
  assert.equal(p.config, "/tmp/x/var/lib/kubelet/config.yaml");
  assert.equal(p.unit, "/tmp/x/etc/systemd/system/kubelet.service");
  assert.equal(nodePaths().kubeconfig, "/etc/kubernetes/kubelet.conf");
});
