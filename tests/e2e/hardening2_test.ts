/**
 * More attacks and leaks, through the CLI, the daemon and the CRI against the
 * real runtime: a caller's fds (a flock, a pipe) kept by conmon and monitors,
 * io_uring and the rest of docker's seccomp refusals, forged names and env
 * names, control characters in tables, and an image pull killed mid-layer.
 * Each ends with the host census unchanged.
 */
import assert from "node:assert/strict";
import {
  assertRejected,
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rklArgv,
  type RunResult,
  waitFor,
  waitForSocket,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { type Member, pushImage, type Registry, startRegistry, tarBytes } from "../_helpers/oci.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("hard2", 21) : undefined;
const { test } = censusTests(ready, () => env!);

const BUSYBOX = `${REPO}/bundles/busybox`;

// ---------------------------------------------------------------------------
// A caller's fds

interface Caller {
  lock: string;
  /** What `readlink /proc/self/fd/8` said in the caller: `pipe:[INODE]`. */
  pipe: string;
  /** Written by the pipe's reader once it sees EOF, i.e. once nobody holds the write end. */
  eof: string;
}

async function callerFiles(label: string): Promise<Caller> {
  const dir = `${env!.dir}/caller-${label}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/lock`, "");
  return { lock: `${dir}/lock`, pipe: `${dir}/pipe`, eof: `${dir}/eof` };
}

/**
 * `argv` run as a script would: holding `flock LOCK` and the write end of a
 * pipe (fd 8) whose reader waits for EOF. Resolves when argv exits.
 */
function asCaller(
  c: Caller,
  argv: string[],
  options: { cwd?: string; background?: boolean } = {},
): Deno.ChildProcess {
  // The lock is taken on fd 9 and argv exec'd, as scripts do: argv is then
  // this child itself, and killing the child ends it.
  const script =
    `exec 8> >(exec >/dev/null 2>&1; cat; echo eof > "$EOF"); readlink /proc/$$/fd/8 > "$PIPE"; ` +
    `exec 9>>"$LOCK"; flock 9; exec "$@"`;
  return new Deno.Command("bash", {
    args: ["-c", script, "bash", ...argv],
    env: { ...env!.env, LOCK: c.lock, PIPE: c.pipe, EOF: c.eof },
    cwd: options.cwd,
    stdin: "null",
    stdout: options.background ? "null" : "piped",
    stderr: options.background ? "null" : "piped",
  }).spawn();
}

async function rklAsCaller(c: Caller, args: string[], cwd?: string): Promise<RunResult> {
  const r = await asCaller(c, rklArgv(args), { cwd }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** pid → ppid of every process. */
function processTree(): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    const stat = readOr(`/proc/${pid}/stat`);
    const m = stat.match(/\) \S (\d+)/);
    if (m) out.set(pid, Number(m[1]));
  }
  return out;
}

/**
 * The long-lived processes this env's commands left: every conmon and health
 * monitor whose argv names the env's root, and all their descendants
 * (pause/catatonit, the containers' processes).
 */
function envProcesses(): { pid: number; argv: string }[] {
  const tree = processTree();
  const roots = new Set<number>();
  for (const pid of tree.keys()) {
    const argv = readOr(`/proc/${pid}/cmdline`).split("\0").join(" ");
    if (!argv.includes(env!.dir)) continue;
    if (/(^|\/)conmon /.test(argv) || argv.includes("__health-monitor")) roots.add(pid);
  }
  const all = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of tree) {
      if (all.has(ppid) && !all.has(pid)) {
        all.add(pid);
        grew = true;
      }
    }
  }
  return [...all].map((pid) => ({
    pid,
    argv: readOr(`/proc/${pid}/cmdline`).split("\0").join(" "),
  }));
}

/** The targets of a process's open fds. */
function fdTargets(pid: number): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        out.push(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      } catch { /* closed meanwhile */ }
    }
  } catch { /* exited */ }
  return out;
}

/** Fails naming every listed process that holds the caller's lock file or pipe. */
function assertNoneHolds(c: Caller, procs: { pid: number; argv: string }[]): void {
  const pipe = readOr(c.pipe).trim();
  assert.match(pipe, /^pipe:\[\d+\]$/, "the caller recorded its pipe");
  const holders = procs.filter((p) => {
    const t = fdTargets(p.pid);
    return t.includes(c.lock) || t.includes(pipe);
  });
  assert.deepEqual(holders, [], "processes holding the caller's lock file or pipe");
}

async function flockFree(lock: string): Promise<boolean> {
  const r = await new Deno.Command("flock", { args: ["-n", lock, "true"] }).output();
  return r.code === 0;
}

const podYaml = (name: string) =>
  `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: true
  containers:
    - {name: main, image: ${BUSYBOX}, command: [sleep, "600"]}
`;

test("conmon, pause, containers and the health monitor keep none of the caller's fds (in-process)", async () => {
  const c = await callerFiles("cli");
  await Deno.writeTextFile(`${env!.dir}/fd-pod.yaml`, podYaml("fdpod"));
  const dir = `${env!.dir}/fdproj`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    `services:
  web:
    image: ${BUSYBOX}
    command: ["sleep", "600"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
`,
  );
  try {
    const pod = await rklAsCaller(c, [
      "pod",
      "run",
      "--network",
      env!.network,
      `${env!.dir}/fd-pod.yaml`,
    ]);
    assert.equal(pod.code, 0, pod.stderr);
    const c2 = await callerFiles("cli-compose");
    const up = await rklAsCaller(c2, ["compose", "up", "-d"], dir);
    assert.equal(up.code, 0, up.stderr);

    const procs = envProcesses();
    const kinds = procs.map((p) => p.argv).join("\n");
    // The pod's two conmons, pause and sleep; the compose service's conmon and sleep; the monitor.
    assert.ok(procs.length >= 7, `the env's long-lived processes:\n${kinds}`);
    assert.match(kinds, /__health-monitor/);
    assert.match(kinds, /catatonit/);
    assertNoneHolds(c, procs);
    assertNoneHolds(c2, procs);
    // A script waiting on either gets on with its life.
    assert.ok(await flockFree(c.lock), "flock -n on the caller's lock after `pod run`");
    assert.ok(await flockFree(c2.lock), "flock -n on the caller's lock after `compose up`");
    await waitFor("EOF on the caller's pipe", () => readOr(c.eof) === "eof\n", 5_000);
    await waitFor("EOF on the caller's pipe (compose)", () => readOr(c2.eof) === "eof\n", 5_000);
  } finally {
    await rklOkQuiet(["compose", "down", "-t", "0"], dir);
    await rklOkQuiet(["pod", "rm", "-f", "fdpod"]);
  }
});

test("a daemon started while holding a lock passes it to none of its pods' processes", async () => {
  const c = await callerFiles("daemon");
  const manifests = `${env!.dir}/fd-manifests`;
  await Deno.mkdir(manifests, { recursive: true });
  await Deno.writeTextFile(`${manifests}/fdstatic.yaml`, podYaml("fdstatic"));
  const daemon = asCaller(
    c,
    rklArgv(["daemon", "--manifests", manifests, "--network", env!.network, "--relist", "1"]),
    { background: true },
  );
  const client = await callerFiles("client");
  try {
    await waitFor("static pod running", async () => {
      const r = await rklQuiet(["pod", "state", "fdstatic", "-o", "json"]);
      return r.code === 0 && JSON.parse(r.stdout).phase === "Running";
    }, 30_000);
    // A thin client (served by the daemon) holding its own lock and pipe.
    await Deno.writeTextFile(`${env!.dir}/fd-served.yaml`, podYaml("fdserved"));
    const served = await rklAsCaller(client, [
      "pod",
      "run",
      "--network",
      env!.network,
      `${env!.dir}/fd-served.yaml`,
    ]);
    assert.equal(served.code, 0, served.stderr);
    const procs = envProcesses();
    assert.ok(procs.length >= 8, procs.map((p) => p.argv).join("\n"));
    assertNoneHolds(c, procs);
    assertNoneHolds(client, procs);
    assert.ok(await flockFree(client.lock));
    await waitFor("EOF on the client's pipe", () => readOr(client.eof) === "eof\n", 5_000);
    // The daemon is the caller's own command: it holds the lock until it ends,
    // and not a moment longer, though its pods keep running.
    assert.equal(await flockFree(c.lock), false);
    daemon.kill("SIGTERM");
    await daemon.status;
    await waitFor("lock free once the daemon is gone", () => flockFree(c.lock), 10_000);
    await waitFor("EOF once the daemon is gone", () => readOr(c.eof) === "eof\n", 5_000);
    assert.ok(envProcesses().length >= 8, "the pods outlive the daemon");
  } finally {
    try {
      daemon.kill("SIGKILL");
    } catch { /* gone */ }
    await daemon.status;
    await rklOkQuiet(["pod", "rm", "-f", "fdstatic"]);
    await rklOkQuiet(["pod", "rm", "-f", "fdserved"]);
  }
});

// ---------------------------------------------------------------------------
// seccomp: what docker refuses

const ccReady = ready && requires("cc", "runc");

/** tests/fixtures/seccomp/probe.c, built static into a dir of its own. */
async function buildProbe(): Promise<string> {
  const dir = `${env!.dir}/probe`;
  await Deno.mkdir(dir, { recursive: true });
  const cc = await new Deno.Command("cc", {
    args: ["-static", "-O2", "-o", `${dir}/probe`, `${REPO}/tests/fixtures/seccomp/probe.c`],
    stderr: "piped",
  }).output();
  assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
  return dir;
}

async function probeOutput(name: string): Promise<string> {
  let out = "";
  await waitFor(`${name}'s probe output`, async () => {
    out = (await rklQuiet(["container", "logs", name])).stdout;
    return out.includes("personality_addr_no_randomize=");
  });
  return out;
}

if (ccReady) {
  test("io_uring, AF_VSOCK sockets and odd personalities are refused by the default profile, in run and exec, under youki and runc", async () => {
    const dir = await buildProbe();
    const file = (name: string, extra = "") => {
      const path = `${env!.dir}/${name}.yaml`;
      Deno.writeTextFileSync(
        path,
        `name: ${name}
image: ${BUSYBOX}
command: [sh, -c, "/probe/probe; sleep 600"]
volumeMounts:
  - {mountPath: /probe, hostPath: ${dir}, readOnly: true}
${extra}`,
      );
      return path;
    };
    const refused = [
      "io_uring_setup=EPERM",
      "io_uring_register=EPERM",
      "socket_vsock=EPERM",
      "socket_inet=OK",
      "personality_query=OK",
      "personality_addr_no_randomize=EPERM",
    ].join("\n") + "\n";
    try {
      for (const runtime of ["youki", "runc"]) {
        const r = await rklQuiet([
          "--runtime",
          runtime,
          "container",
          "run",
          "--network",
          "none",
          file("sec"),
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await probeOutput("sec"), refused, runtime);
        const ex = await rklQuiet(["container", "exec", "sec", "--", "/probe/probe"]);
        assert.equal(ex.stdout, refused, `${runtime} exec: ${ex.stderr}`);
        await rklQuiet(["container", "rm", "-f", "sec"]);
      }
      // The control: the same probe unconfined gets an io_uring and the rest.
      const open = await rklQuiet([
        "container",
        "run",
        "--network",
        "none",
        file("open", "securityContext: {seccompProfile: {type: Unconfined}}\n"),
      ]);
      assert.equal(open.code, 0, open.stderr);
      const out = await probeOutput("open");
      assert.match(out, /^io_uring_setup=OK$/m);
      assert.match(out, /^personality_addr_no_randomize=OK$/m);
      assert.doesNotMatch(out, /socket_vsock=EPERM/);
    } finally {
      await rklQuiet(["container", "rm", "-f", "sec"]);
      await rklQuiet(["container", "rm", "-f", "open"]);
    }
  });
}

// ---------------------------------------------------------------------------
// Names: forged ones refused, hostile ones that may exist printed escaped

test("a forged env name or label is refused with one line; a bundle path with a newline and ESC prints escaped", async () => {
  const write = (name: string, text: string) => {
    Deno.writeTextFileSync(`${env!.dir}/${name}`, text);
    return `${env!.dir}/${name}`;
  };
  const envForged = await rklQuiet([
    "container",
    "run",
    "--network",
    "none",
    write(
      "fenv.yaml",
      `name: fenv\nimage: ${BUSYBOX}\ncommand: [env]\nenv: [{name: "A\\nFORGED", value: x}]\n`,
    ),
  ]);
  assertRejected(
    "env name",
    envForged,
    /fenv\.yaml:4:\d+: env\[0\]\.name: environment variable name "A\\nFORGED" must consist only of printable ASCII characters other than '='/,
  );
  const labelForged = await rklQuiet([
    "pod",
    "run",
    "--network",
    "none",
    write(
      "flabel.yaml",
      `apiVersion: v1\nkind: Pod\nmetadata: {name: flabel, labels: {app: "x\\e[2J"}}\nspec:\n  containers: [{name: c, image: ${BUSYBOX}, command: [sleep, "1"]}]\n`,
    ),
  ]);
  assertRejected(
    "label",
    labelForged,
    /flabel\.yaml:3:\d+: metadata\.labels\.app: value "x\\u001b\[2J" is not a label value/,
  );
  // A directory may be called anything: the bundle path shows in `state`.
  const hostile = `${env!.dir}/bb\x1b[2J\nFORGED   row`;
  await Deno.symlink(BUSYBOX, hostile);
  const ok = await rklQuiet([
    "container",
    "run",
    "--network",
    "none",
    write(
      "hostile.yaml",
      `name: hostile\nimage: ${JSON.stringify(hostile)}\ncommand: [sleep, "600"]\n`,
    ),
  ]);
  try {
    assert.equal(ok.code, 0, ok.stderr);
    const state = await rklQuiet(["container", "state", "hostile"]);
    assert.equal(state.code, 0, state.stderr);
    assert.ok(!state.stdout.includes("\x1b"), "no raw ESC reaches the terminal");
    assert.doesNotMatch(state.stdout, /^FORGED/m, "no forged line");
    assert.match(state.stdout, /bb\\x1b\[2J\\nFORGED {3}row/);
  } finally {
    await rklQuiet(["container", "rm", "-f", "hostile"]);
  }
}); // deno-fmt-ignore

const criReady = ready && requires("crictl");

if (criReady) {
  test("CRI: a sandbox name or namespace with a newline or an escape is INVALID_ARGUMENT; nothing is made", async () => {
    const sock = `${env!.dir}/cri/rkl.sock`;
    const manifests = `${env!.dir}/cri-manifests`;
    await Deno.mkdir(manifests, { recursive: true });
    await Deno.writeTextFile(`${env!.dir}/crictl.yaml`, "debug: false\n");
    const daemon = new Deno.Command(Deno.execPath(), {
      args: rklArgv([
        "daemon",
        "--manifests",
        manifests,
        "--network",
        env!.network,
        "--cri-socket",
        sock,
      ]).slice(1),
      env: env!.env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const crictl = async (args: string[]) => {
      const r = await new Deno.Command("crictl", {
        args: [
          "--config",
          `${env!.dir}/crictl.yaml`,
          "--runtime-endpoint",
          `unix://${sock}`,
          "--timeout",
          "30s",
          ...args,
        ],
        stdin: "null",
      }).output();
      const dec = new TextDecoder();
      return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
    };
    try {
      await waitFor("the CRI socket", async () => (await crictl(["version"])).code === 0, 30_000);
      const forged: [Record<string, string>, RegExp][] = [
        [
          { name: "web\nFORGED   1/1   Running", namespace: "default" },
          // crictl quotes the message again: \" and \\n.
          /config\.metadata\.name: \\?"web\\+nFORGED {3}1\/1 {3}Running\\?" is not a DNS-1123 subdomain/,
        ],
        [
          { name: "web", namespace: "default\u001b[2J" },
          /config\.metadata\.namespace: \\?"default\\+u001b\[2J\\?" is not a DNS-1123 label/,
        ],
      ];
      for (const [md, want] of forged) {
        const file = `${env!.dir}/forged-pod.json`;
        await Deno.writeTextFile(
          file,
          JSON.stringify({ metadata: { ...md, uid: "u-1", attempt: 0 }, linux: {} }),
        );
        const r = await crictl(["runp", file]);
        assert.notEqual(r.code, 0, r.stdout);
        assert.match(r.stderr, /InvalidArgument/, r.stderr);
        assert.match(r.stderr, want, r.stderr);
      }
      assert.equal((await crictl(["pods", "-q"])).stdout.trim(), "", "no sandbox was made");
      const list = await rklQuiet(["pod", "list"]);
      assert.equal(list.stdout.trim().split("\n").length, 1, list.stdout);
    } finally {
      daemon.kill("SIGTERM");
      await daemon.status;
    }
  }); // deno-fmt-ignore
}

// ---------------------------------------------------------------------------
// An image pull killed mid-layer

const registryReady = ready && requires("registry");

/** A registry with `library/big:1`: one uncompressed layer of many small files (slow to unpack). */
async function bigImageRegistry(): Promise<Registry> {
  const registry = await startRegistry(`${env!.dir}/registry`);
  const members: Member[] = [{ name: "big/", type: "dir" }];
  const data = new Uint8Array(1024).fill(120);
  for (let i = 0; i < 40_000; i++) members.push({ name: `big/f${i}`, data });
  await pushImage(registry.url, "library/big", "1", {
    layers: [tarBytes(members)],
    compression: "none",
  });
  Deno.writeTextFileSync(
    `${env!.dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
  );
  env!.env.RKL_REGISTRIES_CONFIG = `${env!.dir}/registries.yaml`;
  return registry;
}

function layerTemps(): string[] {
  try {
    return [...Deno.readDirSync(`${env!.root}/images/layers`)].map((e) => e.name).filter((n) =>
      n.startsWith(".tmp-")
    );
  } catch {
    return [];
  }
}

/** Starts `rkl image pull big:1` and SIGKILLs `victim()` once the layer's unpack dir exists. */
async function killMidLayer(victim: (pull: Deno.ChildProcess) => number): Promise<void> {
  const pull = new Deno.Command(Deno.execPath(), {
    args: rklArgv(["image", "pull", "-q", "big:1"]).slice(1),
    env: env!.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitFor("the layer's unpack dir", () => layerTemps().length > 0, 30_000);
    Deno.kill(victim(pull), "SIGKILL");
  } finally {
    await pull.status;
  }
}

if (registryReady) {
  test("kill -9 of an image pull mid-layer, in-process and in the daemon: gc removes the unpack dir (never a running pull's), a later pull works", async () => {
    const registry = await bigImageRegistry();
    try {
      // A running pull's temporaries are not gc's: the pull finishes.
      const pull = new Deno.Command(Deno.execPath(), {
        args: rklArgv(["image", "pull", "-q", "big:1"]).slice(1),
        env: env!.env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await waitFor("the layer's unpack dir", () => layerTemps().length > 0, 30_000);
      const busy = await rklQuiet(["gc"]);
      assert.equal(busy.code, 0, busy.stderr);
      const done = await pull.output();
      assert.equal(done.code, 0, new TextDecoder().decode(done.stderr));
      assert.deepEqual(layerTemps(), []);
      assert.equal((await rklQuiet(["image", "rm", "big:1"])).code, 0);
      assert.equal((await rklQuiet(["image", "prune"])).code, 0);

      // In-process: the pull itself is killed.
      await killMidLayer((p) => p.pid);
      const left = layerTemps();
      assert.equal(left.length, 1, "the killed pull left its unpack dir");
      const dry = await rklQuiet(["gc", "--dry-run"]);
      assert.match(dry.stdout, new RegExp(`layers/\\${left[0]}`), dry.stdout);
      const gc = await rklQuiet(["gc"]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(layerTemps(), [], gc.stdout);
      const again = await rklQuiet(["image", "pull", "-q", "big:1"]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await rklQuiet(["image", "rm", "big:1"])).code, 0);
      assert.equal((await rklQuiet(["image", "prune"])).code, 0);

      // Served: the daemon pulls for the client and is killed.
      const manifests = `${env!.dir}/pull-manifests`;
      await Deno.mkdir(manifests, { recursive: true });
      const daemon = new Deno.Command(Deno.execPath(), {
        args: rklArgv(["daemon", "--manifests", manifests, "--network", env!.network]).slice(1),
        env: env!.env,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await waitForSocket("the daemon's socket", `${env!.runRoot}/cli.sock`, 30_000);
        await killMidLayer(() => daemon.pid);
      } finally {
        try {
          daemon.kill("SIGKILL");
        } catch { /* gone */ }
        await daemon.status;
      }
      assert.equal(layerTemps().length, 1, "the killed daemon left its unpack dir");
      assert.equal((await rklQuiet(["gc"])).code, 0);
      assert.deepEqual(layerTemps(), []);
      const last = await rklQuiet(["image", "pull", "-q", "big:1"]);
      assert.equal(last.code, 0, last.stderr);
    } finally {
      await rklQuiet(["image", "rm", "big:1"]);
      await rklQuiet(["image", "prune"]);
      await registry.stop();
      delete env!.env.RKL_REGISTRIES_CONFIG;
    }
  });
}

// ---------------------------------------------------------------------------

async function rklQuiet(args: string[], cwd?: string): Promise<RunResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, ...args],
    env: env!.env,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

async function rklOkQuiet(args: string[], cwd?: string): Promise<void> {
  await rklQuiet(args, cwd);
}

cleanupAfterAll(env);
