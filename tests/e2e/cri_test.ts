/**
 * The CRI served by `rkl daemon`, driven by the Kubernetes project's own
 * client, crictl v1.36.0 (scripts/setup.sh installs it from cri-tools). The
 * image comes from a local docker-registry behind a docker.io mirror entry,
 * so the name stays `busybox:1.36`. Every test ends with the host census as
 * before: sandbox, containers, IP lease, netns, cgroups, mounts all gone.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { crictlTools } from "../_helpers/crictl.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { dirTar, pushImage, type Registry, startRegistry, tarBytes } from "../_helpers/oci.ts";

const ready = requires(
  "root",
  "conmon",
  "cni",
  "iptables",
  "ip",
  "bundles",
  "youki",
  "registry",
  "crictl",
);
const env = ready ? await makeEnv("cri", 13) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
let daemon: Deno.ChildProcess | undefined;
const sock = () => `${env!.dir}/cri/rkl.sock`;
const { crictl, crictlOk } = crictlTools(() => env!, sock);

function startCriDaemon(): Deno.ChildProcess {
  Deno.mkdirSync(`${env!.dir}/manifests`, { recursive: true });
  return startDaemon(env!, `${env!.dir}/manifests`, {
    args: ["--cri-socket", sock()],
    stderr: Deno.env.get("RKL_TEST_DAEMON_LOG") ? "inherit" : "null",
  });
}

async function waitSocket(): Promise<void> {
  await waitFor("the CRI socket", async () => {
    const r = await crictl(["version"]);
    return r.code === 0;
  }, 30_000);
}

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  await pushImage(registry.url, "library/busybox", "1.36", {
    layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin", "FROM_IMAGE=yes"], Cmd: ["sh"] },
  });
  Deno.writeTextFileSync(
    `${env!.dir}/registries.yaml`,
    // registry.k8s.io too: the pause image comes from there (never from the internet here).
    `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n` +
      `  registry.k8s.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
  );
  env!.env.RKL_REGISTRIES_CONFIG = `${env!.dir}/registries.yaml`;
  Deno.writeTextFileSync(`${env!.dir}/crictl.yaml`, "debug: false\n");
  daemon = startCriDaemon();
  await waitSocket();
}

function writeJson(name: string, v: unknown): string {
  const p = `${env!.dir}/${name}`;
  Deno.writeTextFileSync(p, JSON.stringify(v));
  return p;
}

/** busybox pulled, a sandbox `name` and one started container made from `ctr`. */
async function podWith(name: string, ctr: Record<string, unknown>) {
  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = podConfig(name, `uid-${name}-1`);
  const pod = await crictlOk(["runp", podFile]);
  const id = await crictlOk(["create", pod, writeJson(`${name}-ctr.json`, ctr), podFile]);
  await crictlOk(["start", id]);
  return { pod, ctr: id, podFile };
}

function podConfig(name: string, uid: string) {
  return writeJson(`${name}-pod.json`, {
    metadata: { name, namespace: "default", uid, attempt: 0 },
    hostname: name,
    log_directory: `${env!.dir}/logs/${name}`,
    dns_config: {
      servers: ["10.96.0.10"],
      searches: ["default.svc.cluster.local"],
      options: ["ndots:5"],
    },
    labels: { app: name },
    linux: {},
  });
}

const APP = {
  metadata: { name: "app" },
  image: { image: "busybox:1.36" },
  command: ["/bin/sh", "-c", "echo hello-cri; exec sleep 300"],
  envs: [{ key: "FROM_SPEC", value: "yes" }],
  log_path: "app/0.log",
  labels: { tier: "web" },
  linux: { resources: { memory_limit_in_bytes: 64 * 1024 * 1024 } },
};

test("crictl drives a pod's whole life over rkl's CRI; the host is as before", async () => {
  await setUp();
  const info = JSON.parse(await crictlOk(["info"]));
  assert.equal(info.status.conditions[0].type, "RuntimeReady");
  assert.equal(info.status.conditions[0].status, true);
  assert.match(await crictlOk(["version"]), /RuntimeName:\s+rkl/);

  const imageId = await crictlOk(["pull", "busybox:1.36"]);
  assert.match(imageId, /sha256:[0-9a-f]{64}/);
  const imgs = JSON.parse(await crictlOk(["images", "-o", "json"]));
  assert.ok(
    imgs.images.some((i: { repoTags: string[] }) =>
      i.repoTags.includes("docker.io/library/busybox:1.36")
    ),
  );

  const podFile = podConfig("web", "uid-web-1");
  const ctrFile = writeJson("app.json", APP);
  const pod = await crictlOk(["runp", podFile]);
  assert.match(pod, /^[0-9a-f]{64}$/);
  const ctr = await crictlOk(["create", pod, ctrFile, podFile]);
  assert.match(ctr, /^[0-9a-f]{64}$/);
  await crictlOk(["start", ctr.slice(0, 12)]); // crictl's prefix matching
  assert.equal(await crictlOk(["ps", "-q"]), ctr);
  assert.equal(await crictlOk(["pods", "-q"]), pod);

  const st = JSON.parse(await crictlOk(["inspect", ctr]));
  assert.equal(st.status.state, "CONTAINER_RUNNING");
  assert.equal(st.status.metadata.name, "app");
  assert.equal(st.status.logPath, `${env!.dir}/logs/web/app/0.log`);
  const sp = JSON.parse(await crictlOk(["inspectp", pod]));
  assert.equal(sp.status.state, "SANDBOX_READY");
  assert.ok(sp.status.network.ip.startsWith(env!.subnet.split(".").slice(0, 3).join(".")));

  // ExecSync: the container's env, hostname, the sandbox's DNS config, its memory limit.
  assert.equal(
    await crictlOk(["exec", "-s", ctr, "sh", "-c", "echo $FROM_SPEC $FROM_IMAGE"]),
    "yes yes",
  );
  assert.equal(await crictlOk(["exec", "-s", ctr, "hostname"]), "web");
  const resolv = await crictlOk(["exec", "-s", ctr, "cat", "/etc/resolv.conf"]);
  assert.match(resolv, /nameserver 10\.96\.0\.10/);
  assert.match(resolv, /options ndots:5/);
  await waitFor(
    "the log line",
    async () => (await crictl(["logs", ctr])).stdout.includes("hello-cri"),
  );
  // UpdateContainerResources: the new memory limit is in force in the container's cgroup.
  await crictlOk(["update", "--memory", String(96 * 1024 * 1024), ctr]);
  const limit = await crictlOk([
    "exec",
    "-s",
    ctr,
    "sh",
    "-c",
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
  ]); // deno-fmt-ignore
  assert.equal(limit, String(96 * 1024 * 1024));
  const exit3 = await crictl(["exec", "-s", ctr, "sh", "-c", "exit 3"]);
  assert.match(exit3.stderr, /exited with 3/); // crictl reports the code and exits 1

  // The CLI sees the sandbox with its source; the CRI does not see a CLI pod.
  const cliList = await rklOk(env!, ["pod", "list"]);
  assert.match(cliList, new RegExp(`${pod}.*cri default/web`));
  Deno.writeTextFileSync(
    `${env!.dir}/cli.yaml`,
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: clipod\nspec:\n  containers:\n  - name: c\n    image: ${REPO}/bundles/busybox\n    command: ["sleep", "300"]\n`,
  );
  await rklOk(env!, ["pod", "run", `${env!.dir}/cli.yaml`, "--network", env!.network]);
  assert.equal(await crictlOk(["pods", "-q"]), pod);
  await rklOk(env!, ["pod", "rm", "-f", "clipod"]);

  await crictlOk(["stop", "-t", "2", ctr]);
  const stopped = JSON.parse(await crictlOk(["inspect", ctr]));
  assert.equal(stopped.status.state, "CONTAINER_EXITED");
  assert.equal(stopped.status.reason, "Error");
  assert.notEqual(stopped.status.exitCode, 0);
  await crictlOk(["rm", ctr]);
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "");
  await crictlOk(["stopp", pod]);
  assert.equal(JSON.parse(await crictlOk(["inspectp", pod])).status.state, "SANDBOX_NOTREADY");
  await crictlOk(["rmp", pod]);
  assert.equal(await crictlOk(["pods", "-q"]), "");
  await crictlOk(["rmi", "busybox:1.36"]);
  assert.equal(await crictlOk(["images", "-q"]), "");
});

test("bad CRI requests get their gRPC status and leave nothing half-made", async () => {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = podConfig("bad", "uid-bad-1");
  const ctrFile = writeJson("app.json", APP);
  const unknown = await crictl(["create", "f".repeat(64), ctrFile, podFile]);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /NotFound/);

  const pod = await crictlOk(["runp", podFile]);
  const again = await crictl(["runp", podFile]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /AlreadyExists/);

  const noImage = writeJson("noimg.json", { ...APP, image: { image: "busybox:9.99" } });
  const missing = await crictl(["create", "--no-pull", pod, noImage, podFile]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /NotFound.*busybox:9\.99/);

  // A missing host path is made as a directory, as containerd's CRI does; one
  // that cannot be made (its parent is a file) fails, naming it.
  const badMount = writeJson("badmount.json", {
    ...APP,
    mounts: [{ host_path: `${ctrFile}/no-such-dir`, container_path: "/data" }],
  });
  const mount = await crictl(["create", pod, badMount, podFile]);
  assert.notEqual(mount.code, 0);
  assert.match(mount.stderr, /no-such-dir/);
  const madeDir = `${env!.dir}/made-by-create`;
  const newMount = writeJson("newmount.json", {
    ...APP,
    metadata: { name: "newmount" },
    mounts: [{ host_path: madeDir, container_path: "/data" }],
  });
  const made = await crictlOk(["create", pod, newMount, podFile]);
  assert.ok(Deno.statSync(madeDir).isDirectory, "the missing host path was not made");
  await crictlOk(["rm", made]);
  const rel = writeJson("relmount.json", {
    ...APP,
    mounts: [{ host_path: "../etc", container_path: "/data" }],
  });
  const relative = await crictl(["create", pod, rel, podFile]);
  assert.match(relative.stderr, /InvalidArgument.*config\.mounts\[0\]\.host_path/);
  const noProfile = writeJson("noprofile.json", {
    ...APP,
    linux: {
      security_context: {
        seccomp: { profile_type: 2, localhost_ref: `${env!.dir}/no-such-profile.json` },
      },
    },
  });
  const prof = await crictl(["create", pod, noProfile, podFile]);
  assert.notEqual(prof.code, 0);
  assert.match(prof.stderr, /no-such-profile\.json/);
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "");

  await crictlOk(["stopp", pod]);
  const late = await crictl(["create", pod, ctrFile, podFile]);
  assert.match(late.stderr, /FailedPrecondition/);
  await crictlOk(["rmp", pod]);
  const gone = await crictl(["rmp", pod]);
  assert.match(gone.stderr, /NotFound/);
  await crictlOk(["rmi", "busybox:1.36"]);
});

/**
 * crictl with `input` on its stdin; with `tty`, under script(1) so that crictl has a terminal
 * (`rows` by `cols` when given: script's own is 0x0 without a terminal of its own).
 */
async function crictlIn(
  args: string[],
  input: string,
  o: { tty?: boolean; holdMs?: number; rows?: number; cols?: number } = {},
) {
  const base = [
    "--config",
    `${env!.dir}/crictl.yaml`,
    "--runtime-endpoint",
    `unix://${sock()}`,
    "--image-endpoint",
    `unix://${sock()}`,
  ]; // deno-fmt-ignore
  // script(1) takes one shell line: every word goes in single quotes.
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const sized = o.rows && o.cols ? `stty rows ${o.rows} cols ${o.cols}; ` : "";
  const [cmd, argv] = o.tty
    ? ["script", ["-qec", sized + ["crictl", ...base, ...args].map(quote).join(" "), "/dev/null"]]
    : ["crictl", [...base, ...args]];
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  const w = child.stdin.getWriter();
  await new Promise((r) => setTimeout(r, o.tty ? 500 : 0));
  await w.write(new TextEncoder().encode(input));
  await new Promise((r) => setTimeout(r, o.holdMs ?? 0));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

test("crictl streams: exec -it and -i, attach, logs -f, port-forward over SPDY and WebSocket", async () => {
  await setUp();
  const { pod, ctr: app, podFile } = await podWith("streams", {
    ...APP,
    // A server bound to the pod's loopback only: port-forward must reach it inside the netns.
    command: [
      "/bin/sh",
      "-c",
      "mkdir -p /www && echo page-from-pod > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && echo up && exec sleep 300",
    ],
  });
  const shell = await crictlOk([
    "create",
    pod,
    writeJson("shell.json", {
      metadata: { name: "shell" },
      image: { image: "busybox:1.36" },
      command: ["/bin/sh"],
      stdin: true,
      stdin_once: false,
      log_path: "shell/0.log",
      linux: {},
    }),
    podFile,
  ]); // deno-fmt-ignore
  await crictlOk(["start", shell]);
  await waitFor("the server", async () => (await crictl(["logs", app])).stdout.includes("up"));

  for (const transport of ["spdy", "websocket"]) {
    // A terminal: the process sees one, its exit code comes back through crictl.
    // Its size from the client's first resize, there as it starts (youki's PTY at consoleSize).
    const tty = await crictlIn(
      ["exec", "-it", "-r", transport, app, "sh", "-c", "tty;stty size;exit 4"],
      "",
      { tty: true, rows: 33, cols: 101 },
    );
    assert.match(tty.stdout, /\/dev\/pts\/\d+/, transport);
    assert.match(tty.stdout, /(^|\D)33 101\r?$/m, `${transport}: ${JSON.stringify(tty.stdout)}`);
    assert.match(tty.stdout + tty.stderr, /exit code 4/, transport);
    // No terminal: stdin in, stdout out, exit 0.
    const cat = await crictlIn(["exec", "-i", "-r", transport, app, "cat"], `cat-${transport}\n`);
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, `cat-${transport}\n`);
    // Attach to the shell's stdin; it keeps running after (stdin_once false).
    const att = await crictlIn(
      ["attach", "-i", "-r", transport, shell],
      `echo attached-${transport}-$((6*7))\n`,
      { holdMs: 1_000 },
    );
    assert.equal(att.code, 0, att.stderr);
    assert.equal(att.stdout, `attached-${transport}-42\n`);
    // Port forward to 127.0.0.1:8080 inside the sandbox.
    const port = transport === "spdy" ? 18471 : 18472;
    const pf = new Deno.Command("crictl", {
      args: [
        "--config",
        `${env!.dir}/crictl.yaml`,
        "--runtime-endpoint",
        `unix://${sock()}`,
        "port-forward",
        "-r",
        transport,
        pod,
        `${port}:8080`,
      ], // deno-fmt-ignore
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      let page = "";
      await waitFor(`port-forward over ${transport}`, async () => {
        const r = await new Deno.Command("timeout", {
          args: ["5", "wget", "-qO-", `http://127.0.0.1:${port}/`],
          stdout: "piped",
          stderr: "null",
        }).output();
        page = new TextDecoder().decode(r.stdout);
        return r.code === 0;
      });
      assert.equal(page, "page-from-pod\n");
    } finally {
      pf.kill("SIGTERM");
      await pf.output();
    }
  }
  const st = JSON.parse(await crictlOk(["inspect", shell]));
  assert.equal(st.status.state, "CONTAINER_RUNNING");
  // logs -f follows: the attach's output is in the shell's log.
  const follow = new Deno.Command("timeout", {
    args: ["3", "crictl", "--runtime-endpoint", `unix://${sock()}`, "logs", "-f", shell],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.match(
    new TextDecoder().decode((await follow).stdout),
    /attached-spdy-42\nattached-websocket-42/,
  );
  const stats = JSON.parse(await crictlOk(["stats", "-o", "json", app]));
  assert.ok(Number(stats.stats[0].memory.workingSetBytes.value) > 0);

  await crictlOk(["rmp", "-f", pod]);
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "");
  await crictlOk(["rmi", "busybox:1.36"]);
});

test("masked and read-only paths, devices: the masked file reads empty and does not run; /tmp is read-only; /dev/null as /dev/xnull", async () => {
  await setUp();
  const { pod, ctr } = await podWith("masks", {
    ...APP,
    linux: { security_context: { masked_paths: ["/bin/ls"], readonly_paths: ["/tmp"] } },
    devices: [{ host_path: "/dev/null", container_path: "/dev/xnull", permissions: "rw" }],
  });
  assert.equal(await crictlOk(["exec", "-s", ctr, "sh", "-c", "wc -c < /bin/ls"]), "0");
  const run = await crictl(["exec", "-s", ctr, "/bin/ls", "/"]);
  assert.notEqual(run.code, 0, "a masked program must not run");
  // A device given: made in the container (same numbers) and usable.
  assert.equal(
    await crictlOk([
      "exec",
      "-s",
      ctr,
      "sh",
      "-c",
      "stat -c '%t:%T' /dev/xnull; echo x > /dev/xnull && echo written",
    ]),
    "1:3\nwritten",
  );
  const touch = await crictl(["exec", "-s", ctr, "touch", "/tmp/x"]);
  assert.notEqual(touch.code, 0);
  assert.match(touch.stdout + touch.stderr, /Read-only file system/);
  await crictlOk(["rmp", "-f", pod]);
  await crictlOk(["rmi", "busybox:1.36"]);
});

test("GetContainerEvents: crictl events sees a container created, started, stopped and deleted", async () => {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = podConfig("events", "uid-events-1");
  const pod = await crictlOk(["runp", podFile]);
  const events = new Deno.Command("crictl", {
    args: ["--runtime-endpoint", `unix://${sock()}`, "events", "-o", "json"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const seen: { containerId: string; containerEventType: string }[] = [];
  const reading = (async () => {
    let text = "";
    for await (const chunk of events.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      // crictl prints one JSON object per event, pretty-printed: split at top-level braces.
      for (;;) {
        const end = text.indexOf("\n}");
        if (end < 0) break;
        seen.push(JSON.parse(text.slice(text.indexOf("{"), end + 2)));
        text = text.slice(end + 2);
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 500)); // the stream is open
  const ctr = await crictlOk(["create", pod, writeJson("ev.json", APP), podFile]);
  await crictlOk(["start", ctr]);
  await crictlOk(["stop", "-t", "1", ctr]);
  await crictlOk(["rm", ctr]);
  await waitFor("four events", () => seen.filter((e) => e.containerId === ctr).length >= 4, 10_000);
  events.kill("SIGTERM");
  await reading.catch(() => {});
  await events.status;
  const types = seen.filter((e) => e.containerId === ctr).map((e) => e.containerEventType);
  for (
    const t of [
      "CONTAINER_CREATED_EVENT",
      "CONTAINER_STARTED_EVENT",
      "CONTAINER_STOPPED_EVENT",
      "CONTAINER_DELETED_EVENT",
    ]
  ) {
    assert.ok(types.includes(t), `${t} in ${types.join(", ")}`);
  }
  assert.equal(types.at(-1), "CONTAINER_DELETED_EVENT");
  await crictlOk(["rmp", "-f", pod]);
  await crictlOk(["rmi", "busybox:1.36"]);
});

test("a shared-PID sandbox's pause comes from registry.k8s.io/pause:3.10, else from rkl's bundle", async () => {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  const shared = (name: string) =>
    writeJson(`${name}-pod.json`, {
      metadata: { name, namespace: "default", uid: `uid-${name}`, attempt: 0 },
      log_directory: `${env!.dir}/logs/${name}`,
      linux: { security_context: { namespace_options: { pid: 0 } } }, // POD
    });
  const pauseOf = async (pod: string) => {
    const all = JSON.parse(await rklOk(env!, ["container", "list", "-o", "json"]));
    return all.find((c: { name: string }) => c.name === `${pod}__pause`);
  };
  // Not in the registry yet: the pull fails at once and the bundle stands in.
  const before = shared("pidpod1");
  const pod1 = await crictlOk(["runp", before]);
  const ctr1 = await crictlOk(["create", pod1, writeJson("pp1.json", APP), before]);
  await crictlOk(["start", ctr1]);
  assert.ok(!(await pauseOf(pod1)).image.startsWith("registry.k8s.io"), "the bundle stood in");
  // The app shares PID 1 with the pause process.
  assert.match(await crictlOk(["exec", "-s", ctr1, "cat", "/proc/1/cmdline"]), /catatonit/);
  await crictlOk(["rmp", "-f", pod1]);

  // With the image in the registry (and a daemon whose last failure is forgotten): the image.
  const catatonit = new TextDecoder().decode(
    (await new Deno.Command("sh", { args: ["-c", "command -v catatonit"], stdout: "piped" })
      .output()).stdout,
  ).trim();
  await pushImage(registry!.url, "pause", "3.10", {
    layers: [tarBytes([{ name: "pause", data: Deno.readFileSync(catatonit), mode: 0o755 }])],
    config: { Entrypoint: ["/pause", "-P"] },
  });
  await stopDaemon(daemon!);
  daemon = startCriDaemon();
  await waitSocket();
  const after = shared("pidpod2");
  const pod2 = await crictlOk(["runp", after]);
  const ctr2 = await crictlOk(["create", pod2, writeJson("pp2.json", APP), after]);
  await crictlOk(["start", ctr2]);
  assert.equal((await pauseOf(pod2))?.image, "registry.k8s.io/pause:3.10");
  assert.match(await crictlOk(["exec", "-s", ctr2, "cat", "/proc/1/cmdline"]), /pause/);
  await crictlOk(["rmp", "-f", pod2]);
  await crictlOk(["rmi", "busybox:1.36"]);
  await crictlOk(["rmi", "registry.k8s.io/pause:3.10"]);
});

test("an image whose /etc/passwd is a FIFO: run_as_username is refused in one line, the daemon keeps serving", async () => {
  await setUp();
  // The FIFO is kept by the unpack (as containerd keeps it); reading it to resolve the name
  // blocked the daemon's one JavaScript thread for good before (a plain read waits for a writer).
  await pushImage(registry!.url, "library/fifopasswd", "1", {
    layers: [
      await dirTar(`${REPO}/bundles/busybox/rootfs`),
      tarBytes([{ name: "etc/passwd", type: "fifo" }]),
    ],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  await crictlOk(["pull", "fifopasswd:1"]);
  const podFile = podConfig("fifo", "uid-fifo-1");
  const pod = await crictlOk(["runp", podFile]);
  const r = await crictl([
    "create",
    pod,
    writeJson("fifo-ctr.json", {
      ...APP,
      image: { image: "fifopasswd:1" },
      linux: { security_context: { run_as_username: "app" } },
    }),
    podFile,
  ]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /run_as_username: user \\"app\\": image .*\/etc\/passwd cannot be read: not a regular file \(a FIFO\)/,
  );
  assert.equal((await crictl(["version"])).code, 0, "the daemon answers after it");
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "", "no container half made");
  await crictlOk(["rmp", "-f", pod]);
  await crictlOk(["rmi", "fifopasswd:1"]);
});

test("kill -9 of the daemon stops no CRI pod; the next one answers with the same ids", async () => {
  await setUp();
  await crictlOk(["pull", "busybox:1.36"]);
  const podFile = podConfig("keep", "uid-keep-1");
  const pod = await crictlOk(["runp", podFile]);
  const ctr = await crictlOk(["create", pod, writeJson("app.json", APP), podFile]);
  await crictlOk(["start", ctr]);
  await stopDaemon(daemon!, "SIGKILL");
  daemon = startCriDaemon();
  await waitSocket();
  assert.equal(await crictlOk(["pods", "-q", "--state", "ready"]), pod);
  assert.equal(await crictlOk(["ps", "-q", "--state", "running"]), ctr);
  assert.equal(await crictlOk(["exec", "-s", ctr, "echo", "alive"]), "alive");
  await crictlOk(["rmp", "-f", pod]);
  assert.equal(await crictlOk(["ps", "-a", "-q"]), "");
  await crictlOk(["rmi", "busybox:1.36"]);
});

cleanupAfterAll(env, async () => {
  if (daemon) await stopDaemon(daemon);
  await registry?.stop();
  const left = await rkl(env!, ["pod", "list", "-q"]);
  assert.equal(left.stdout.trim(), "", "no CRI sandbox is left once the tests are done");
});
