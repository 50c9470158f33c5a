/**
 * Pod manifests of issue 32's second real-world round, written here after
 * published ones (the source is noted above each), run with `pod run` as a
 * user would and checked for what the kubelet would do: resolv.conf from
 * dnsPolicy/dnsConfig, a Memory emptyDir's tmpfs size (its sizeLimit capped
 * at the pod's memory limit), an untyped hostPath made as a directory, an
 * image volume's content readable and read-only, an init container run again
 * by its restartPolicyRules. Each test ends with a host census equal to the
 * first one (censusTests).
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { pushImage, type Registry, startRegistry, tarBytes } from "../_helpers/oci.ts";
import { isMounted } from "../../src/sys/mounts.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const env = ready ? await makeEnv("podrw2", 37) : undefined;
const { test } = censusTests(ready, () => env!);
let registry: Registry | undefined;

async function manifest(name: string, text: string): Promise<string> {
  const link = `${env!.dir}/bundles`;
  try {
    await Deno.lstat(link);
  } catch {
    await Deno.symlink(`${REPO}/bundles`, link);
  }
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(path, text);
  return path;
}

const run = (file: string) => rkl(env!, ["pod", "run", "--network", env!.network, file]);
const exec = (pod: string, c: string, ...argv: string[]) =>
  rkl(env!, ["pod", "exec", pod, c, "--", ...argv]);

function hostServers(): string[] {
  return Deno.readTextFileSync("/etc/resolv.conf").split("\n")
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((s): s is string => !!s);
}

// kubernetes.io, "DNS for Services and Pods", Pod's DNS Policy: a hostNetwork pod with
// dnsPolicy ClusterFirstWithHostNet (busybox, `sleep 3600`). CC BY 4.0.
test("ClusterFirstWithHostNet on hostNetwork, with no cluster DNS, is the host's resolv.conf", async () => {
  const file = await manifest(
    "hostnet-dns",
    `apiVersion: v1
kind: Pod
metadata:
  name: busybox
  namespace: default
spec:
  containers:
  - image: ./bundles/busybox
    command:
      - sleep
      - "3600"
    imagePullPolicy: IfNotPresent
    name: busybox
  restartPolicy: Always
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  try {
    const conf = (await exec("busybox", "busybox", "cat", "/etc/resolv.conf")).stdout;
    // On the host's network its loopback resolvers answer too: every server is kept.
    const servers = conf.split("\n").filter((l) => l.startsWith("nameserver ")).map((l) =>
      l.slice(11)
    );
    assert.deepEqual(servers, hostServers().slice(0, 3), conf);
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "busybox"]);
  }
});

// kubernetes.io, "DNS for Services and Pods", Pod's DNS Config: the dns-example pod
// (service/networking/custom-dns.yaml), here with dnsPolicy Default so that the host's
// servers come first and dnsConfig is merged in, as the kubelet merges it. CC BY 4.0.
test("dnsPolicy Default with a dnsConfig: the host's servers, then the pod's; options merged", async () => {
  const file = await manifest(
    "dns-example",
    `apiVersion: v1
kind: Pod
metadata:
  namespace: default
  name: dns-example
spec:
  containers:
    - name: test
      image: ./bundles/busybox
      command: ["sleep", "3600"]
  dnsPolicy: "Default"
  dnsConfig:
    nameservers:
      - 192.0.2.1 # this is an example
    searches:
      - ns1.svc.cluster-domain.example
      - my.dns.search.suffix
    options:
      - name: ndots
        value: "2"
      - name: edns0
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  try {
    const conf = (await exec("dns-example", "test", "cat", "/etc/resolv.conf")).stdout;
    const servers = conf.split("\n").filter((l) => l.startsWith("nameserver "));
    assert.equal(servers.at(-1), "nameserver 192.0.2.1", conf);
    for (const s of servers.slice(0, -1)) assert.doesNotMatch(s, /nameserver 127\./, conf);
    assert.ok(servers.length <= 3, `at most 3 servers (the kubelet's limit): ${conf}`);
    assert.match(conf, /^search (.* )?ns1\.svc\.cluster-domain\.example my\.dns\.search\.suffix$/m);
    assert.match(conf, /^options (.* )?ndots:2( .*)?$/m);
    assert.match(conf, /^options (.* )?edns0( .*)?$/m);
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "dns-example"]);
  }
});

// kubernetes.io, "Volumes", emptyDir configuration example (test-pd: an emptyDir cache
// with sizeLimit 500Mi, medium Memory); the container's memory limit of 64Mi is from
// "Assign Memory Resources" (memory-request-limit.yaml). CC BY 4.0.
test("emptyDir medium Memory: a tmpfs sized by sizeLimit, capped at the pod's memory limit", async () => {
  const file = await manifest(
    "test-pd",
    `apiVersion: v1
kind: Pod
metadata:
  name: test-pd
spec:
  containers:
  - image: ./bundles/busybox
    name: test-container
    command: ["sleep", "3600"]
    resources:
      limits:
        memory: "64Mi"
    volumeMounts:
    - mountPath: /cache
      name: cache-volume
    - mountPath: /small
      name: small
  volumes:
  - name: cache-volume
    emptyDir:
      sizeLimit: 500Mi
      medium: Memory
  - name: small
    emptyDir: {medium: Memory, sizeLimit: 4Mi}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  const dir = `${env!.root}/pods/test-pd/volumes/cache-volume`;
  try {
    const mounts = (await exec("test-pd", "test-container", "cat", "/proc/mounts")).stdout;
    const at = (p: string) => mounts.split("\n").find((l) => l.split(" ")[1] === p) ?? "";
    assert.equal(at("/cache").split(" ")[2], "tmpfs", mounts);
    assert.match(at("/cache"), /size=65536k/, "500Mi capped at the 64Mi memory limit");
    assert.match(at("/small"), /size=4096k/);
    assert.ok(isMounted(dir));
    const dd = await exec(
      "test-pd",
      "test-container",
      "dd",
      "if=/dev/zero",
      "of=/small/f",
      "bs=1M",
      "count=6",
    );
    assert.match(dd.stderr, /No space left on device/);
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "test-pd"]);
  }
  assert.equal(isMounted(dir), false);
});

// kubernetes.io, "Volumes", hostPath configuration example (test-pd mounting /data),
// with no `type` as in its first example; the path does not exist yet. CC BY 4.0.
test("hostPath with no type whose path is missing: made a directory (0755), shared with the host", async () => {
  const data = `${env!.dir}/data/deeper`;
  const file = await manifest(
    "hostpath",
    `apiVersion: v1
kind: Pod
metadata:
  name: hostpath-pd
spec:
  containers:
  - image: ./bundles/busybox
    name: test-container
    command: ["sh", "-c", "echo written-in-pod > /test-pd/out; sleep 3600"]
    volumeMounts:
    - mountPath: /test-pd
      name: test-volume
  volumes:
  - name: test-volume
    hostPath:
      # directory location on host
      path: ${data}
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  try {
    const st = Deno.statSync(data);
    assert.ok(st.isDirectory);
    assert.equal(st.mode! & 0o777, 0o755);
    for (let i = 0; i < 50 && !exists(`${data}/out`); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(Deno.readTextFileSync(`${data}/out`), "written-in-pod\n");
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "hostpath-pd"]);
  }
  // The host path stays (it is the host's), as the kubelet leaves it.
  assert.ok(Deno.statSync(data).isDirectory);
  Deno.removeSync(`${env!.dir}/data`, { recursive: true });
});

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

// kubernetes.io, "Use an Image Volume With a Pod" (pods/image-volumes.yaml: quay.io/crio/artifact:v2
// mounted at /volume, pullPolicy IfNotPresent), the artifact served by a local registry under its
// real name through a mirror. CC BY 4.0.
test("image volume: the image's files readable, the mount read-only", async () => {
  registry ??= await startRegistry(`${env!.dir}/registry`);
  await pushImage(registry.url, "crio/artifact", "v2", {
    layers: [
      tarBytes([{ name: "dir/", type: "dir" }, { name: "dir/file", data: "1\n" }]),
      tarBytes([{ name: "file", data: "2\n" }]),
    ],
  });
  const conf = `${env!.dir}/registries.yaml`;
  Deno.writeTextFileSync(
    conf,
    `mirrors:\n  quay.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
  );
  const e = { ...env!, env: { ...env!.env, RKL_REGISTRIES_CONFIG: conf, RKL_PULL_TIMEOUT: "5" } };
  const file = await manifest(
    "image-volume",
    `apiVersion: v1
kind: Pod
metadata:
  name: image-volume
spec:
  containers:
  - name: shell
    command: ["sleep", "infinity"]
    image: ./bundles/busybox
    volumeMounts:
    - name: volume
      mountPath: /volume
  volumes:
  - name: volume
    image:
      reference: quay.io/crio/artifact:v2
      pullPolicy: IfNotPresent
`,
  );
  const r = await rkl(e, ["pod", "run", "--network", env!.network, file]);
  assert.equal(r.code, 0, r.stderr);
  try {
    const x = (...argv: string[]) =>
      rkl(e, ["pod", "exec", "image-volume", "shell", "--", ...argv]);
    assert.equal((await x("cat", "/volume/dir/file")).stdout, "1\n");
    assert.equal((await x("cat", "/volume/file")).stdout, "2\n");
    const w = await x("touch", "/volume/new");
    assert.notEqual(w.code, 0);
    assert.match(w.stderr, /Read-only file system/);
    const line = (await x("cat", "/proc/mounts")).stdout.split("\n")
      .find((l) => l.split(" ")[1] === "/volume") ?? "";
    assert.match(line, /\bro\b/, line);
  } finally {
    await rklOk(e, ["pod", "rm", "-f", "image-volume"]);
  }
  await rklOk(e, ["image", "rm", "quay.io/crio/artifact:v2"]);
});

// kubernetes.io, "Pod Lifecycle", container restart rules (Kubernetes 1.34): the
// restart-on-exit-codes example's rule (Restart on exit code 42) on an init container,
// which here exits 42 on its first run and 0 on its second.
test("an init container's restartPolicyRules run it again on a matching code, after the back-off", async () => {
  const file = await manifest(
    "restart-on-exit-codes",
    `apiVersion: v1
kind: Pod
metadata:
  name: restart-on-exit-codes
spec:
  restartPolicy: Never
  initContainers:
  - name: init-retry
    image: ./bundles/busybox
    command: ['sh', '-c', 'if [ -e /work/tried ]; then echo second > /work/done; exit 0; fi; touch /work/tried; exit 42']
    restartPolicy: Never     # Container restart policy must be specified if rules are specified
    restartPolicyRules:      # Only restart the container if it exits with code 42
    - action: Restart
      exitCodes:
        operator: In
        values: [42]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: ./bundles/busybox
    command: ['sh', '-c', 'sleep 3600']
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
`,
  );
  const t0 = Date.now();
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 >= 10_000, "the kubelet's 10 s back-off came first");
  assert.match(
    r.stderr,
    /init container "init-retry" exited with code 42; its restart rules run it again in 10 s/,
  );
  try {
    assert.equal(
      (await exec("restart-on-exit-codes", "app", "cat", "/work/done")).stdout,
      "second\n",
    );
    const state = JSON.parse(
      await rklOk(env!, ["pod", "state", "restart-on-exit-codes", "-o", "json"]),
    );
    const init = state.containers.find((c: { name: string }) => c.name.endsWith("init-retry"));
    assert.equal(init.restarts, 1);
  } finally {
    await rklOk(env!, ["pod", "rm", "-f", "restart-on-exit-codes"]);
  }
  // A code no rule names fails the pod at once (restartPolicy Never), with nothing left.
  const once = await manifest(
    "fail-once",
    (await Deno.readTextFile(file)).replace("exit 42", "exit 3").replace(
      "name: restart-on-exit-codes",
      "name: fail-once",
    ),
  );
  const t1 = Date.now();
  const f = await run(once);
  assert.equal(f.code, 1, f.stderr);
  assert.match(f.stderr, /init container "init-retry" exited with code 3/);
  assert.doesNotMatch(f.stderr, /run it again/);
  assert.ok(Date.now() - t1 < 10_000, "no back-off for a code no rule names");
  assert.equal((await rklOk(env!, ["pod", "list", "-q"])).trim(), "");
});

// kubernetes.io, "Configure Liveness, Readiness and Startup Probes" (pods/probe/exec-liveness.yaml:
// /tmp/healthy made, removed after 30 s, `cat /tmp/healthy` every 5 s), with shorter times and a
// readiness probe on the same file, and a grace period of 2 s (sh as PID 1 ignores SIGTERM, so the
// stop after a failed liveness probe lasts the whole grace period, 30 s by default). CC BY 4.0.
test("pod run probes without a daemon: ready, then liveness fails, the container restarts; one monitor for two pods; rm of the last ends it", async () => {
  const file = await manifest(
    "exec-liveness",
    `apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: liveness-exec
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: liveness
    image: ./bundles/busybox
    args:
    - /bin/sh
    - -c
    - touch /tmp/healthy; sleep 4; rm -f /tmp/healthy; sleep 600
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      exec:
        command: [cat, /tmp/healthy]
      periodSeconds: 1
`,
  );
  const r = await run(file);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /does not probe/);
  const state = async () =>
    JSON.parse(await rklOk(env!, ["pod", "state", "liveness-exec", "-o", "json"])).containers[0];
  const until = async (what: string, ok: (c: Record<string, unknown>) => boolean, ms: number) => {
    const end = Date.now() + ms;
    let last: Record<string, unknown> = {};
    while (Date.now() < end) {
      last = await state();
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`${what}: ${JSON.stringify(last)}`);
  };
  const pidFile = `${env!.runRoot}/probes/liveness-exec.pid`;
  try {
    // Started detached by `pod run`: it takes its pid file once its runtime is up.
    for (let i = 0; i < 40 && !exists(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    const monitor = Number(Deno.readTextFileSync(pidFile).split(" ")[0]);
    assert.match(Deno.readTextFileSync(`/proc/${monitor}/cmdline`), /__pod-probes\0?$/);
    await until("ready", (c) => c.ready === true, 4_000);
    // A second pod with a probe is watched by the same process, not a new one.
    const second = await manifest(
      "readiness-two",
      `apiVersion: v1
kind: Pod
metadata:
  name: readiness-two
spec:
  containers:
  - name: web
    image: ./bundles/busybox
    args: [sleep, "600"]
    readinessProbe:
      exec:
        command: ["true"]
      periodSeconds: 1
`,
    );
    const r2 = await run(second);
    assert.equal(r2.code, 0, r2.stderr);
    const twoPid = `${env!.runRoot}/probes/readiness-two.pid`;
    for (let i = 0; i < 40 && !exists(twoPid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(Number(Deno.readTextFileSync(twoPid).split(" ")[0]), monitor);
    assert.equal(
      Deno.readTextFileSync(`${env!.runRoot}/probes/monitor.pid`).split(" ")[0],
      String(monitor),
    );
    const monitors = [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).filter(
      (e) => {
        try {
          const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
          return cmd.includes("__pod-probes") && cmd.includes(env!.runRoot);
        } catch {
          return false;
        }
      },
    );
    assert.equal(monitors.length, 1, "one probe monitor for the run root");
    // /tmp/healthy goes at 4 s: two failures, a stop, then the kubelet's 10 s back-off.
    const failed = await until("liveness failed", (c) => {
      const p = c.probes as { lastFailure?: { probe: string } } | null;
      return p?.lastFailure?.probe === "liveness";
    }, 12_000);
    assert.equal(failed.restarts, 0);
    // Stopped within the 2 s grace period, not ready; the restart waits its back-off.
    const stopped = await until("stopped", (c) => c.status === "exited", 5_000);
    assert.equal(stopped.ready, false);
    const due = await until("restart due", (c) => {
      return !!(c.probes as { restartAt?: string } | null)?.restartAt;
    }, 3_000);
    assert.equal(due.status, "exited");
    await until("restarted", (c) => c.restarts === 1 && c.status === "running", 20_000);
    // The new process made /tmp/healthy again: its readiness probe passes anew.
    await until("ready again", (c) => c.restarts === 1 && c.ready === true, 4_000);
    // What one monitor costs (printed for docs/pods.md): its memory and CPU time so far.
    const status = Deno.readTextFileSync(`/proc/${monitor}/status`);
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    const stat = Deno.readTextFileSync(`/proc/${monitor}/stat`).split(")")[1].trim().split(" ");
    const cpuTicks = Number(stat[11]) + Number(stat[12]);
    console.log(`probe monitor: VmRSS ${(rssKb / 1024).toFixed(1)} MiB, CPU ${cpuTicks} ticks`);
    const text = await rklOk(env!, ["pod", "state", "liveness-exec"]);
    assert.match(
      text,
      /RESTARTS\s+CPU\s+MEMORY\s+READY\n\s+liveness\s+running\s+\d+\s+-\s+-\s+1\s+\S+\s+\S+\s+yes\n/,
      text,
    );
    await rklOk(env!, ["pod", "rm", "-f", "liveness-exec"]);
    assert.throws(() => Deno.statSync(pidFile), Deno.errors.NotFound);
    // The other pod is still watched by it.
    assert.equal(Number(Deno.readTextFileSync(twoPid).split(" ")[0]), monitor);
    const two = JSON.parse(await rklOk(env!, ["pod", "state", "readiness-two", "-o", "json"]));
    assert.equal(two.containers[0].ready, true);
    await rklOk(env!, ["pod", "rm", "-f", "readiness-two"]);
    // The last pod gone, it lets its pid file go and ends.
    const gone = () => {
      try {
        return / Z /.test(Deno.readTextFileSync(`/proc/${monitor}/stat`).split(")")[1]);
      } catch {
        return true;
      }
    };
    for (let i = 0; i < 20 && !gone(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(gone(), `monitor ${monitor} still runs`);
    assert.deepEqual([...Deno.readDirSync(`${env!.runRoot}/probes`)].map((e) => e.name), []);
  } finally {
    await rkl(env!, ["pod", "rm", "-f", "liveness-exec"]);
    await rkl(env!, ["pod", "rm", "-f", "readiness-two"]);
  }
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
