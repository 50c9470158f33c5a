/**
 * Groundwork for rkl as a Kubernetes node (issue 31):
 *
 * - `rkl node install` writes the kubelet's config, kubeconfig or bootstrap
 *   kubeconfig, the cluster CA and a unit, under RKL_INSTALL_ROOT; the real
 *   kubelet v1.36.3 validates the config (it stops at its first CRI call) and
 *   systemd-analyze verifies the unit. Bad input is one line, exit 2, and
 *   nothing written.
 * - The node e2e suite's images, rebuilt as stand-ins (tests/_helpers/node_images.ts),
 *   pulled through rkl's CRI from a local registry behind a registry.k8s.io
 *   mirror entry, and run: agnhost's help and netexec (reached with the
 *   image's curl on the pod's loopback), nginx on 80, nonroot as uid 1234,
 *   nonewprivs' setuid nnp with and without no_new_privs, pause.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  assertRejected,
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  type RklEnv,
  waitFor,
} from "../_helpers/env.ts";
import { crictlTools } from "../_helpers/crictl.ts";
import { requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { startRegistry } from "../_helpers/oci.ts";
import { NODE_IMAGES, pushNodeImages, sharedK8sDir } from "../_helpers/node_images.ts";
import { which } from "../../src/oci/runtime.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const installReady = requires("root", "kubelet");
const imagesReady = ready && requires("crictl") && (() => {
  if (sharedK8sDir() && which("gcc")) return true;
  const msg = "missing prerequisite: ../shared/k8s (agnhost) or gcc";
  if (Deno.env.get("CI") === "true") {
    throw new Error(`${msg} (CI=true: failing instead of skipping)`);
  }
  console.error(`skipping: ${msg}`);
  return false;
})();
const env = ready ? await makeEnv("node", 23) : undefined;
const { test } = censusTests(imagesReady, () => env!);

// --- rkl node install -------------------------------------------------------

async function sh(cmd: string, cwd: string): Promise<void> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], cwd, stderr: "piped" }).output();
  if (!r.success) throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
}

/** A CA, a node client certificate it signed, and a kubeconfig naming them by relative paths. */
async function pki(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/pki`, { recursive: true });
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  await sh(
    `openssl req -x509 ${ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=rkl-test-ca 2>/dev/null && ` +
      `openssl req -new ${ec} -keyout node.key -out node.csr -subj "/O=system:nodes/CN=system:node:n1" 2>/dev/null && ` +
      `openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out node.crt 2>/dev/null`,
    `${dir}/pki`,
  );
  await Deno.writeTextFile(
    `${dir}/node.kubeconfig`,
    `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://192.0.2.10:6443", certificate-authority: pki/ca.crt}
users:
- name: n1
  user: {client-certificate: pki/node.crt, client-key: pki/node.key}
contexts:
- name: n1@test
  context: {cluster: test, user: n1}
current-context: n1@test
`,
  );
}

/** Every file under `dir` (relative paths), sorted. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}

Deno.test({
  name:
    "node install: a kubeconfig or a bootstrap token become a kubelet config the kubelet validates and a unit systemd verifies",
  ignore: !ready || !installReady,
  sanitizeResources: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "rkl-node-install-" });
    try {
      await pki(work);
      const prefix = `${work}/root`;
      const e: RklEnv = { ...env!, env: { ...env!.env, RKL_INSTALL_ROOT: prefix } };
      const ca = `${work}/pki/ca.crt`;

      // The kubelet's unit requires rkl.service: without it, nothing is written.
      assertRejected(
        "no rkl.service",
        await rkl(e, ["node", "install", "--kubeconfig", `${work}/node.kubeconfig`]),
        /^rkl: rkl\.service is not installed .*run `rkl daemon install` first$/m,
      );
      assert.throws(() => Deno.statSync(prefix), Deno.errors.NotFound);
      const d = await rkl(e, ["daemon", "install", "--manifests", `${prefix}/etc/rk8s/manifests`]);
      assert.equal(d.code, 0, d.stderr);
      const before = files(prefix);

      // Bad input: one line, exit 2, nothing written.
      const bad: [string, string[], RegExp][] = [
        ["no credentials", [], /give the kubelet's credentials: --kubeconfig FILE, or --server/],
        [
          "token without CA",
          ["--server", "https://192.0.2.10:6443", "--token", "abcdef.0123456789abcdef"],
          /--certificate-authority FILE is missing/,
        ],
        [
          "CA that is a leaf",
          [
            "--server",
            "https://192.0.2.10:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--certificate-authority",
            `${work}/pki/node.crt`,
          ],
          /node\.crt: O=system:nodes, CN=system:node:n1 is not a CA certificate/,
        ],
        [
          "CA missing",
          [
            "--server",
            "https://192.0.2.10:6443",
            "--token",
            "t",
            "--certificate-authority",
            `${work}/none.crt`,
          ],
          /--certificate-authority .*none\.crt: cannot read it: no such file$/m,
        ],
        [
          "kubeconfig unreadable (a directory)",
          ["--kubeconfig", `${work}/pki`],
          /--kubeconfig .*\/pki: cannot read it: is a directory$/m,
        ],
        [
          "kubeconfig missing",
          ["--kubeconfig", `${work}/gone.conf`],
          /--kubeconfig .*gone\.conf: cannot read it: no such file$/m,
        ],
        [
          "systemd cgroup driver",
          ["--kubeconfig", `${work}/node.kubeconfig`, "--cgroup-driver", "systemd"],
          /--cgroup-driver systemd: rkl places pods in cgroupfs .*RuntimeConfig answers CGROUPFS/,
        ],
        [
          "plain http server",
          ["--server", "http://192.0.2.10:8080", "--token", "t", "--certificate-authority", ca],
          /--server "http:\/\/192\.0\.2\.10:8080": give https:/,
        ],
        [
          "bad node IP",
          ["--kubeconfig", `${work}/node.kubeconfig`, "--node-ip", "198.51.100.300"],
          /--node-ip "198\.51\.100\.300"/,
        ],
      ];
      for (const [label, args, want] of bad) {
        assertRejected(label, await rkl(e, ["node", "install", ...args]), want);
      }
      // A kubelet that refuses the config: its own words, and nothing written.
      await Deno.writeTextFile(
        `${work}/fake-kubelet`,
        `#!/bin/sh\n[ "$1" = --version ] && { echo "Kubernetes v1.36.3"; exit 0; }\n` +
          `echo 'E1206 13:53:27.001588 1 run.go:72] "command failed" err="failed to validate kubelet configuration, error: [invalid configuration: \\"x\\" is bad], path: &TypeMeta{}"' >&2\nexit 1\n`,
        { mode: 0o755 },
      );
      assertRejected(
        "the kubelet refuses",
        await rkl(e, [
          "node",
          "install",
          "--kubeconfig",
          `${work}/node.kubeconfig`,
          "--kubelet",
          `${work}/fake-kubelet`,
        ]),
        /^rkl: the kubelet \(Kubernetes v1\.36\.3\) refuses the config: failed to validate kubelet configuration, error: \[invalid configuration: "x" is bad\]/,
      );
      assert.deepEqual(files(prefix), before, "bad input wrote nothing");

      // A client-certificate kubeconfig: checked by the real kubelet and systemd-analyze.
      const t0 = performance.now();
      const ok = await rkl(e, [
        "node",
        "install",
        "--kubeconfig",
        `${work}/node.kubeconfig`,
        "--node-name",
        "n1",
        "--node-ip",
        "198.51.100.31",
        "--cluster-dns",
        "10.96.0.10",
      ]);
      const ms = Math.round(performance.now() - t0);
      assert.equal(ok.code, 0, ok.stderr + ok.stdout);
      assert.match(
        ok.stdout,
        /^kubelet \/\S+: Kubernetes v1\.36\.3; its config passes its own validation$/m,
      );
      assert.match(ok.stdout, /^kubelet\.service passes systemd-analyze verify$/m);
      console.error(`node install (kubeconfig, with both checks): ${ms} ms`);
      assert.deepEqual(
        files(prefix).filter((f) => !before.includes(f)),
        [
          "etc/kubernetes/kubelet.conf",
          "etc/kubernetes/pki/ca.crt",
          "etc/systemd/system/kubelet.service",
          "var/lib/kubelet/config.yaml",
        ],
      );
      const config = parse(await Deno.readTextFile(`${prefix}/var/lib/kubelet/config.yaml`));
      assert.equal(config.containerRuntimeEndpoint, `unix://${env!.env.RKL_RUN_ROOT}/rkl.sock`);
      assert.equal(config.cgroupDriver, "cgroupfs");
      assert.equal(config.cgroupsPerQOS, true);
      // This host is cgroup v1 (hybrid): the kubelet refuses it since 1.35 without this.
      const v1 = !/ \/sys\/fs\/cgroup [^ ]+ .* - cgroup2 /.test(
        await Deno.readTextFile("/proc/self/mountinfo"),
      );
      assert.equal(config.failCgroupV1, v1 ? false : undefined);
      assert.equal(config.authentication.x509.clientCAFile, "/etc/kubernetes/pki/ca.crt");
      assert.deepEqual(config.clusterDNS, ["10.96.0.10"]);
      const kubeconfig = parse(await Deno.readTextFile(`${prefix}/etc/kubernetes/kubelet.conf`));
      assert.equal(
        atob(kubeconfig.users[0].user["client-certificate-data"]),
        await Deno.readTextFile(`${work}/pki/node.crt`),
      );
      assert.equal(Deno.statSync(`${prefix}/etc/kubernetes/kubelet.conf`).mode! & 0o777, 0o600);
      assert.equal(
        await Deno.readTextFile(`${prefix}/etc/kubernetes/pki/ca.crt`),
        await Deno.readTextFile(ca),
      );
      const unit = await Deno.readTextFile(`${prefix}/etc/systemd/system/kubelet.service`);
      assert.match(unit, /^Requires=rkl\.service$/m);
      assert.match(unit, /^After=network-online\.target rkl\.service$/m);
      assert.match(
        unit,
        /^ExecStart=\/\S+\/kubelet --config=\/var\/lib\/kubelet\/config\.yaml --kubeconfig=\/etc\/kubernetes\/kubelet\.conf --hostname-override=n1 --node-ip=198\.51\.100\.31$/m,
      );
      // The unit as written, beside rkl.service, verified again here.
      const v = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${prefix}/etc/systemd/system/kubelet.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(v.code, 0, new TextDecoder().decode(v.stderr));

      // Again: refused without --force (a node is installed), taken with it.
      assertRejected(
        "installed already",
        await rkl(e, ["node", "install", "--kubeconfig", `${work}/node.kubeconfig`]),
        /already there \(a node installed before\?\): --force overwrites$/m,
      );
      // A bootstrap token over it: the bootstrap kubeconfig, and the unit names both.
      const boot = await rkl(e, [
        "node",
        "install",
        "--force",
        "--server",
        "https://192.0.2.10:6443",
        "--token",
        "abcdef.0123456789abcdef",
        "--certificate-authority",
        ca,
      ]);
      assert.equal(boot.code, 0, boot.stderr);
      const bk = parse(
        await Deno.readTextFile(`${prefix}/etc/kubernetes/bootstrap-kubelet.conf`),
      );
      assert.equal(bk.users[0].user.token, "abcdef.0123456789abcdef");
      assert.equal(bk.clusters[0].cluster.server, "https://192.0.2.10:6443");
      assert.match(
        await Deno.readTextFile(`${prefix}/etc/systemd/system/kubelet.service`),
        / --bootstrap-kubeconfig=\/etc\/kubernetes\/bootstrap-kubelet\.conf --kubeconfig=\/etc\/kubernetes\/kubelet\.conf$/m,
      );

      // doctor reports the node's parts; uninstall removes rkl's files and leaves the CA.
      const doc = await rkl(e, ["doctor"]);
      assert.match(doc.stdout, /^as a Kubernetes node \(kubelet on rkl's CRI\):$/m);
      assert.match(doc.stdout, /^ok +kubelet: \/\S+: Kubernetes v1\.36\.3$/m);
      assert.match(doc.stdout, /^ok +kubelet config: /m);
      const un = await rkl(e, ["node", "uninstall"]);
      assert.equal(un.code, 0, un.stderr);
      // kubelet.conf too: rkl wrote it (a kubelet.conf from a TLS bootstrap would stay).
      assert.deepEqual(files(prefix).filter((f) => !before.includes(f)), [
        "etc/kubernetes/pki/ca.crt",
      ]);
      assert.match(un.stdout, /^left .*ca\.crt/m);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
    // The kubelet's validation run touched nothing of the host's.
    assert.throws(() => Deno.statSync("/sys/fs/cgroup/cpu/kubepods"), Deno.errors.NotFound);
  },
});

// --- the node e2e suite's images through rkl's CRI ------------------------

let daemon: Deno.ChildProcess | undefined;
let registryStop: (() => Promise<void>) | undefined;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);

function json(name: string, v: unknown): string {
  const p = `${env!.dir}/${name}.json`;
  Deno.writeTextFileSync(p, JSON.stringify(v));
  return p;
}

/** A container in `pod` from `image`; waits until it runs, or has exited when `exits`. */
async function container(
  pod: { id: string; file: string },
  name: string,
  spec: Record<string, unknown>,
  exits = false,
): Promise<string> {
  const id = await crictlOk([
    "create",
    pod.id,
    json(`ctr-${name}`, { metadata: { name }, log_path: `${name}.log`, ...spec }),
    pod.file,
  ]);
  await crictlOk(["start", id]);
  await waitFor(`${name} to ${exits ? "exit" : "run"}`, async () => {
    const st = JSON.parse(await crictlOk(["inspect", id])).status.state;
    return st === (exits ? "CONTAINER_EXITED" : "CONTAINER_RUNNING");
  }, 30_000);
  return id;
}

test("the node e2e suite's stand-in images are pulled through rkl's CRI and behave as the suite expects", async () => {
  const reg = await startRegistry(`${env!.dir}/registry`);
  registryStop = reg.stop;
  const t0 = performance.now();
  const pushed = await pushNodeImages(reg.url, env!.dir);
  console.error(
    `node images: ${pushed.length} built and pushed in ${Math.round(performance.now() - t0)} ms`,
  );
  Deno.writeTextFileSync(
    `${env!.dir}/registries.yaml`,
    `mirrors:\n  registry.k8s.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
  );
  Deno.writeTextFileSync(`${env!.dir}/crictl.yaml`, "debug: false\n");
  Deno.mkdirSync(`${env!.dir}/manifests`, { recursive: true });
  daemon = startDaemon(
    { ...env!, env: { ...env!.env, RKL_REGISTRIES_CONFIG: `${env!.dir}/registries.yaml` } },
    `${env!.dir}/manifests`,
    {
      args: ["--cri-socket", sock(), "--pause-image", NODE_IMAGES.pause],
      stderr: Deno.env.get("RKL_TEST_DAEMON_LOG") ? "inherit" : "null",
    },
  );
  await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);

  // Every image by its upstream name, through the mirror.
  const t1 = performance.now();
  for (const ref of Object.values(NODE_IMAGES)) {
    assert.match(await crictlOk(["pull", ref]), /^Image is up to date for sha256:[0-9a-f]{64}$/);
  }
  console.error(`node images: pulled through the CRI in ${Math.round(performance.now() - t1)} ms`);
  const listed = await crictlOk(["images", "-o", "json"]);
  for (const ref of Object.values(NODE_IMAGES)) assert.ok(listed.includes(`"${ref}"`), ref);

  // The pods share no PID namespace (the kubelet's default): youki 0.7 on cgroup v1 reads
  // the host's /proc/<the container's pid in the pod> for a container joining a pod's PID
  // namespace, and fails when no host process has that number (see the pause pod below).
  const file = json("pod", {
    metadata: { name: "e2e", namespace: "default", uid: "uid-node-e2e", attempt: 0 },
    hostname: "e2e-pod",
    log_directory: `${env!.dir}/logs/e2e`,
    linux: {},
  });
  const pod = { id: await crictlOk(["runp", file]), file };
  try {
    // busybox: a shell and its applets.
    const bb = await container(pod, "busybox", {
      image: { image: NODE_IMAGES.busybox },
      command: ["sh", "-c", "echo busybox-ok $(id -u); exec sleep 300"],
    });
    await waitFor("busybox's log", async () => /busybox-ok 0/.test(await crictlOk(["logs", bb])));

    // agnhost: the real binary as the entrypoint; `--help` lists its commands.
    const help = await container(pod, "agnhost-help", {
      image: { image: NODE_IMAGES.agnhost },
      args: ["--help"],
    }, true);
    const helpLog = await crictlOk(["logs", help]);
    assert.match(helpLog, /Usage:\s+app \[command\]/);
    assert.match(helpLog, /netexec\s+Creates HTTP\(S\), UDP/);

    // netexec on the pod's loopback, asked with the image's curl and busybox's wget.
    const net = await container(pod, "netexec", {
      image: { image: NODE_IMAGES.agnhost },
      args: ["netexec", "--http-port=8080"],
    });
    await waitFor("netexec to answer", async () => {
      const r = await crictl([
        "exec",
        "-s",
        net,
        "curl",
        "-g",
        "-q",
        "-s",
        "http://127.0.0.1:8080/hostname",
      ]);
      return r.code === 0 && r.stdout.trim() === "e2e-pod";
    }, 20_000);
    assert.equal(
      await crictlOk(["exec", "-s", net, "curl", "-s", "http://127.0.0.1:8080/echo?msg=rkl-node"]),
      "rkl-node",
    );
    assert.equal(
      await crictlOk([
        "exec",
        "-s",
        bb,
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/echo?msg=from-busybox",
      ]),
      "from-busybox",
    );
    // The tools the suite runs in agnhost's image: ip, nc, the agnhost-2 link, /uploads.
    assert.match(await crictlOk(["exec", "-s", net, "ip", "-o", "addr"]), /\beth0\s+inet 10\./);
    const viaNc = "printf 'GET /echo?msg=by-nc HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080";
    assert.match(await crictlOk(["exec", "-s", net, "sh", "-c", viaNc]), /by-nc/);
    assert.match(await crictlOk(["exec", "-s", net, "/agnhost-2", "--help"]), /Usage:/);
    assert.equal(
      await crictlOk(["exec", "-s", net, "sh", "-c", "test -d /uploads && echo yes"]),
      "yes",
    );

    // nginx: a web server on port 80.
    await container(pod, "nginx", { image: { image: NODE_IMAGES.nginx } });
    await waitFor("nginx to answer", async () => {
      const r = await crictl(["exec", "-s", bb, "wget", "-qO-", "http://127.0.0.1:80/"]);
      return r.code === 0 && r.stdout.includes("Welcome to nginx!");
    }, 20_000);

    // nonroot: the image's USER 1234, no runAsUser given.
    const nr = await container(pod, "nonroot", {
      image: { image: NODE_IMAGES.nonroot },
      command: ["id", "-u"],
    }, true);
    assert.equal(await crictlOk(["logs", nr]), "1234");

    // nonewprivs: the setuid nnp runs as root unless no_new_privs is set.
    const nnp = (nnp: boolean) => ({
      image: { image: NODE_IMAGES.nonewprivs },
      linux: { security_context: { run_as_user: { value: 1000 }, no_new_privs: nnp } },
    });
    const escalated = await container(pod, "nnp-allowed", nnp(false), true);
    assert.equal(await crictlOk(["logs", escalated]), "Effective uid: 0");
    const kept = await container(pod, "nnp-denied", nnp(true), true);
    assert.equal(await crictlOk(["logs", kept]), "Effective uid: 1000");

    // pause: a pod sharing its PID namespace has the image's /pause as PID 1, as uid 65535.
    const sharedFile = json("pod-shared", {
      metadata: { name: "shared", namespace: "default", uid: "uid-node-shared", attempt: 0 },
      log_directory: `${env!.dir}/logs/shared`,
      linux: { security_context: { namespace_options: { pid: 0 } } },
    });
    const shared = { id: await crictlOk(["runp", sharedFile]), file: sharedFile };
    try {
      const sh = await container(shared, "sh", {
        image: { image: NODE_IMAGES.busybox },
        command: ["sleep", "300"],
      });
      const ps = await crictlOk(["exec", "-s", sh, "ps", "-o", "pid,user,args"]);
      assert.match(ps, /^\s*1\s+65535\s+\/pause -P$/m);
    } finally {
      await crictl(["rmp", "-f", shared.id]);
    }
  } finally {
    await crictl(["rmp", "-f", pod.id]);
    for (const ref of Object.values(NODE_IMAGES)) await crictl(["rmi", ref]);
  }
});

cleanupAfterAll(env, async () => {
  if (daemon) await stopDaemon(daemon);
  await registryStop?.();
  assert.equal((await rkl(env!, ["pod", "list", "-q"])).stdout.trim(), "");
});
