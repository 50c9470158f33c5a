/**
 * More attacks and leaks, through the CLI, the daemon and the CRI against the
 * real runtime: a caller's fds (a flock, a pipe) kept by conmon and monitors,
 * io_uring and the rest of docker's seccomp refusals, forged names and env
 * names, control characters in tables, and an image pull killed mid-layer.
 * Each ends with the host census unchanged.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupEnv, makeEnv, type RunResult, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

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
    `exec 8> >(cat >/dev/null; echo eof > "$EOF"); readlink /proc/$$/fd/8 > "$PIPE"; ` +
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
  const r = await asCaller(c, [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    `${REPO}/cli/main.ts`,
    ...args,
  ], {
    cwd,
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

function rklArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--quiet", `${REPO}/cli/main.ts`, ...args];
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

Deno.test({
  name: "cleanup",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await cleanupEnv(env!);
  },
});
