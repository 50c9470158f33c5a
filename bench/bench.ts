/**
 * `deno task bench`: rkl side by side with the raw tools it drives, in one run.
 * Prints a table and writes bench/results/latest.json. Needs root and the
 * parts scripts/setup.sh installs. BENCH_RUNS sets the repetitions (default 10).
 *
 * Rows:
 *   version      `rkl --version`                       vs `deno run` of a hello-world
 *   run-nonet    `rkl container run --network none` (until rkl exits, container started)
 *                                                      vs `<runtime> run -d` of a bundle doing the same
 *   run-rm-net   `rkl container run` + `rkl container rm -f` on a bridge network
 *                                                      vs the same runtime + CNI plugin calls made by hand
 *   list-50      `rkl container list` with 50 containers vs `runc list` of the same
 *   (served)     run-nonet (first runtime), list-50 and rk8s once more while `rkl daemon`
 *                runs and serves the commands to thin clients (cli/remote.ts)
 *   images       `rkl image pull` of a 2-layer image vs skopeo + umoci and vs podman pull;
 *                `container run` of it vs the same spec from the bundle dir and vs podman run
 *   rk8s         `rkl pod run` + `pod rm -f` of the seed pod (one busybox container, bridge
 *                network) vs rk8s's own RKL (../shared/anchors/rk8s-rkl) `pod run` + `pod delete`
 *                of the same pod, run by run alternately; /etc/cni/net.d and /opt/cni/bin are set
 *                up for it and put back; a second row times the same while `rkl daemon` runs and
 *                serves the commands
 *   kube         `rkl kube play` of a 3-replica Deployment (bridge network) vs `podman kube play` of
 *                the same file (podman with a private --root/--runroot), and `kube down` vs
 *                `podman kube down` (BENCH_ONLY=kube runs just these two rows)
 *   cri          `crictl runp` + `create` + `start` of one busybox container vs `rkl pod run` of
 *                the same pod (image from the store); ListContainers with 100 containers (gRPC,
 *                p95); the daemon's RSS with 50 CRI pods
 *   containerd   rkl's CRI vs containerd 1.6's, call by call over one pod's life, lists with
 *                20 pods running, and the node's memory (PSS) with them (bench/containerd.ts)
 *   scale        200 CRI pods made 10 at a time on rkl and on containerd: throughput, list
 *                latency, daemon RSS per pod at 20/50/100/200, relist after a restart (bench/scale.ts)
 *   stats        `rkl stats --no-stream` vs `podman stats --no-stream`, 20 containers each
 *
 * rkl is run as a user runs it from source (`deno run -A cli/main.ts`), so
 * every rkl figure includes Deno's start-up.
 */
import { bridgeConflist } from "../src/net/network.ts";
import { CniClient, LOOPBACK, type NetConfList } from "../src/net/cni.ts";
import { DenoCommandRunner } from "../src/sys/command.ts";
import { pathExists as exists } from "../src/sys/fsutil.ts";
import { which } from "../src/oci/runtime.ts";
import { removeIdlePortmapChains } from "../src/net/portmap.ts";
import { DAEMON_DENO_FLAGS, DAEMON_ENV } from "../src/daemon/install.ts";
import { containerdRows, type PeerFigures, printPeerFigures } from "./containerd.ts";
import { printScale, type ScaleFigures, scaleRows } from "./scale.ts";
import { kubeRows as kubeBench } from "./kube.ts";
import { rootlessRows } from "./rootless.ts";
import { podmanEnv } from "./podman.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? "10");
const BUSYBOX = `${REPO}/bundles/busybox`;

if (Deno.uid() !== 0) {
  console.error("bench: run me as root");
  Deno.exit(1);
}

const dir = await Deno.makeTempDir({ prefix: "rkl-bench-" });
// podman, seeing a CNI config in /etc/cni/net.d, leaves its lock file there: removed after, if new.
const PODMAN_CNI_LOCK = "/etc/cni/net.d/cni.lock";
const hadCniLock = (() => {
  try {
    Deno.lstatSync(PODMAN_CNI_LOCK);
    return true;
  } catch {
    return false;
  }
})();
const root = `${dir}/root`;
const runRoot = `${dir}/run`;
const network = "rklbench0";
const subnet = "10.250.7.0/24";
const env = { RKL_ROOT: root, RKL_RUN_ROOT: runRoot, RKL_CGROUP_PARENT: "rklbench" };
await Deno.mkdir(`${root}/net.d`, { recursive: true });
const conflist: NetConfList = bridgeConflist(network, {
  subnet,
  ipamDataDir: `${root}/cni/networks`,
});
await Deno.writeTextFile(`${root}/net.d/${network}.conflist`, JSON.stringify(conflist));

/** Runs a command whose stdio a detached container inherits: no pipes to wait on. */
async function detached(
  cmd: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<void> {
  const r = await new Deno.Command(cmd, {
    args,
    env: extraEnv,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}`);
}

async function sh(
  cmd: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<string> {
  const r = await new Deno.Command(cmd, { args, env: extraEnv, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout);
}

function rkl(args: string[]): Promise<string> {
  return sh(Deno.execPath(), ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, ...args], env);
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

interface Stat {
  median: number;
  p95: number;
  min: number;
  runs: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { median: at(0.5), p95: at(0.95), min: s[0], runs: s.length };
}

/** Runs `setup` (untimed), `measured` (timed), `cleanup` (untimed), RUNS times. */
async function series(
  measured: (i: number) => Promise<unknown>,
  hooks: { setup?: (i: number) => Promise<unknown>; cleanup?: (i: number) => Promise<unknown> } =
    {},
): Promise<Stat> {
  const xs: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    await hooks.setup?.(i);
    const t = await time(() => measured(i));
    await hooks.cleanup?.(i);
    if (i > 0) xs.push(t); // the first run warms caches
  }
  return stat(xs);
}

/**
 * A peer's command and rkl's, alternating run by run (each followed by its
 * untimed clean-up), RUNS times after a warm-up: both see the same load on
 * the shared host, so their ratio holds even when the load moves.
 */
async function alternate(
  theirs: (i: number) => Promise<unknown>,
  ours: (i: number) => Promise<unknown>,
  cleanup: { theirs?: (i: number) => Promise<unknown>; ours?: (i: number) => Promise<unknown> } =
    {},
): Promise<[Stat, Stat]> {
  const t: number[] = [];
  const o: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const a = await time(() => theirs(i));
    await cleanup.theirs?.(i);
    const b = await time(() => ours(i));
    await cleanup.ours?.(i);
    if (i > 0) { // the first run warms caches
      t.push(a);
      o.push(b);
    }
  }
  return [stat(t), stat(o)];
}

interface Row {
  name: string;
  rkl: Stat;
  baseline: Stat;
  baselineLabel: string;
  goal?: number;
}
const rows: Row[] = [];
let unpackMs: number | undefined;

/** Up and down measured in the same iteration, RUNS times after a warm-up. */
async function upDown(
  up: (i: number) => Promise<unknown>,
  down: (i: number) => Promise<unknown>,
): Promise<[Stat, Stat]> {
  const u: number[] = [];
  const d: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const tu = await time(() => up(i));
    const td = await time(() => down(i));
    if (i > 0) {
      u.push(tu);
      d.push(td);
    }
  }
  return [stat(u), stat(d)];
}

const POD_CONTAINERS = ["a", "b"];

function podManifest(image: string, pauseLabel: string): string {
  const ctrs = POD_CONTAINERS.map((n) =>
    `    - name: ${n}\n      image: ${image}\n      command: ["sleep", "3600"]\n      resources: {limits: {cpu: 200m, memory: 64Mi}}\n`
  ).join("");
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: benchpod\n${pauseLabel}spec:\n  containers:\n${ctrs}`;
}

const COMPOSE_SERVICES = ["web", "api", "worker", "cache", "db"];

/** Five services on one network; each exits on SIGTERM so that neither tool waits out a stop timeout. */
function composeFile(image: string): string {
  const svc = (n: string) =>
    `  ${n}:\n    image: ${image}\n    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]\n    networks: [app]\n`;
  return `services:\n${COMPOSE_SERVICES.map(svc).join("")}networks:\n  app: {}\n`;
}

async function composeRows(): Promise<void> {
  const rklDir = `${dir}/compose-rkl`;
  await Deno.mkdir(rklDir, { recursive: true });
  await Deno.writeTextFile(`${rklDir}/compose.yaml`, composeFile(`${BUSYBOX}`));
  const rklCompose = (args: string[]) =>
    sh(Deno.execPath(), [
      "run",
      "-A",
      "--quiet",
      `${REPO}/cli/main.ts`,
      "compose",
      "-f",
      `${rklDir}/compose.yaml`,
      "-p",
      "benchapp",
      ...args,
    ], env);
  const rklUpDown = () => upDown(() => rklCompose(["up", "-d"]), () => rklCompose(["down"]));
  const [rklUp, rklDown] = await rklUpDown();
  // The same commands while `rkl daemon` runs: thin clients it serves.
  const [servedUp, servedDown] = await whileServing(rklUpDown);
  if (!which("podman-compose")) return;
  const pDir = `${dir}/compose-podman`;
  await Deno.mkdir(pDir, { recursive: true });
  await Deno.writeTextFile(`${pDir}/compose.yaml`, composeFile("localhost/rkl-busybox:bench"));
  const penv = { CONTAINERS_CONF: `${dir}/containers.conf` };
  await sh("sh", [
    "-c",
    `tar -C ${BUSYBOX}/rootfs -c . | podman import --change "ENV PATH=/bin:/sbin" - localhost/rkl-busybox:bench`,
  ], penv);
  const pc = (args: string[]) =>
    sh("podman-compose", ["-f", `${pDir}/compose.yaml`, "-p", "benchapp", ...args], penv);
  const [pUp, pDown] = await upDown(() => pc(["up", "-d"]), () => pc(["down"]));
  await sh("podman", ["rmi", "-f", "localhost/rkl-busybox:bench"], penv).catch(() => {});
  rows.push({
    name: "compose up -d, 5 services",
    rkl: rklUp,
    baseline: pUp,
    baselineLabel: "podman-compose up -d",
    goal: 0.3,
  });
  rows.push({
    name: "compose down, 5 services",
    rkl: rklDown,
    baseline: pDown,
    baselineLabel: "podman-compose down",
    goal: 0.3,
  });
  rows.push({
    name: "compose up -d, 5 services, daemon running",
    rkl: servedUp,
    baseline: pUp,
    baselineLabel: "podman-compose up -d",
    goal: 0.3,
  });
  rows.push({
    name: "compose down, 5 services, daemon running",
    rkl: servedDown,
    baseline: pDown,
    baselineLabel: "podman-compose down",
    goal: 0.3,
  });
}

interface DaemonFigures {
  latency: Stat;
  rssMb: number;
  idleCpuSecPerMin: number;
  pods: number;
}
let daemonFigures: DaemonFigures | undefined;

/** Reads a record straight from the store (polling through the CLI would time the CLI). */
/** `rkl daemon` on the bench's network, with the V8 flags the systemd unit gives it. */
function spawnDaemon(
  manifests: string,
  extra: string[],
  daemonEnv: Record<string, string>,
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...DAEMON_DENO_FLAGS, // as the systemd unit runs it
      "-A",
      "--quiet",
      `${REPO}/cli/main.ts`,
      "daemon",
      "--manifests",
      manifests,
      "--network",
      network,
      ...extra,
    ], // deno-fmt-ignore
    env: { ...daemonEnv, ...DAEMON_ENV }, // as the systemd unit runs it
    stdin: "null",
    stdout: "null",
    // BENCH_DAEMON_LOG=1 (with RKL_MEMORY_LOG=1, RKL_TRACE=1 …): the daemons' logs, in the run's output.
    stderr: Deno.env.get("BENCH_DAEMON_LOG") === "1" ? "inherit" : "null",
  }).spawn();
}

/** Runs `fn` while a `rkl daemon` (no CRI) serves this root's CLI commands on RUN_ROOT/cli.sock. */
async function whileServing<T>(fn: () => Promise<T>): Promise<T> {
  const manifests = `${dir}/serving-manifests`;
  Deno.mkdirSync(manifests, { recursive: true });
  const daemon = spawnDaemon(manifests, ["--no-cri"], env);
  try {
    const up = () => {
      try {
        return Deno.lstatSync(`${runRoot}/cli.sock`).isSocket === true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 200 && !up(); i++) await new Promise((r) => setTimeout(r, 50));
    if (!up()) throw new Error("bench: the daemon made no cli.sock");
    return await fn();
  } finally {
    daemon.kill("SIGTERM");
    await daemon.status;
  }
}

function podRunning(name: string): boolean {
  try {
    const pod = JSON.parse(Deno.readTextFileSync(`${root}/records/pods/${name}.json`));
    if (!pod.created) return false;
    return pod.containers.every((c: string) =>
      JSON.parse(Deno.readTextFileSync(`${root}/records/containers/${c}.json`)).status === "running"
    );
  } catch {
    return false;
  }
}

async function until(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const end = performance.now() + ms;
  while (!fn()) {
    if (performance.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function procFigures(pid: number): { rssKb: number; cpuTicks: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    rssKb: Number(/VmRSS:\s+(\d+)/.exec(status)![1]),
    cpuTicks: Number(f[11]) + Number(f[12]),
  };
}

async function daemonRows(): Promise<void> {
  const manifests = `${dir}/manifests`;
  await Deno.mkdir(manifests, { recursive: true });
  const daemon = spawnDaemon(manifests, [], env);
  const manifest = (name: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers:\n    - {name: main, image: ${BUSYBOX}, command: [sleep, "3600"]}\n`;
  try {
    await new Promise((r) => setTimeout(r, 1000)); // the daemon's start-up
    const lat: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await Deno.writeTextFile(`${manifests}/lat.yaml`, manifest("lat"));
      await until("lat running", () => podRunning("lat"));
      lat.push(performance.now() - t0);
      await Deno.remove(`${manifests}/lat.yaml`);
      await until("lat gone", () => {
        try {
          Deno.statSync(`${root}/records/pods/lat.json`);
          return false;
        } catch {
          return true;
        }
      });
    }
    const N = 50;
    for (let i = 0; i < N; i++) {
      await Deno.writeTextFile(`${manifests}/p${i}.yaml`, manifest(`p${i}`));
    }
    await until(
      "50 pods running",
      () => Array.from({ length: N }, (_, i) => podRunning(`p${i}`)).every(Boolean),
      300_000,
    );
    await new Promise((r) => setTimeout(r, 6000)); // settle: a relist or so
    const a = procFigures(daemon.pid);
    const idleMs = 30_000;
    await new Promise((r) => setTimeout(r, idleMs));
    const b = procFigures(daemon.pid);
    const hz = 100; // USER_HZ on Linux
    daemonFigures = {
      latency: stat(lat),
      rssMb: b.rssKb / 1024,
      idleCpuSecPerMin: ((b.cpuTicks - a.cpuTicks) / hz) * (60_000 / idleMs),
      pods: N,
    };
    for (let i = 0; i < N; i++) await Deno.remove(`${manifests}/p${i}.yaml`);
    await until("50 pods gone", () => {
      try {
        return [...Deno.readDirSync(`${root}/records/pods`)].length === 0;
      } catch {
        return true;
      }
    }, 300_000);
  } finally {
    try {
      daemon.kill("SIGTERM");
    } catch { /* gone */ }
    await daemon.status;
  }
}

async function podRows(runtimes: string[], rawBusybox: string): Promise<void> {
  // rkl
  const rklFile = `${dir}/benchpod.yaml`;
  await Deno.writeTextFile(
    rklFile,
    podManifest(BUSYBOX, `  labels: {bundle: ${REPO}/bundles/pause}\n`),
  );
  const rklUpDown = () =>
    upDown(
      () => rkl(["pod", "run", "--network", network, rklFile]),
      () => rkl(["pod", "rm", "-f", "benchpod"]),
    );
  const [rklUp, rklDown] = await rklUpDown();
  // The same two commands while `rkl daemon` runs: thin clients it serves.
  const [servedUp, servedDown] = await whileServing(rklUpDown);

  // podman, configured the way these hosts need (rlimits below the hard limits, runc, cgroupfs)
  let podman: [Stat, Stat] | undefined;
  if (which("podman")) {
    const conf = `${dir}/containers.conf`;
    const penv = await podmanEnv(conf);
    await sh("sh", [
      "-c",
      `tar -C ${BUSYBOX}/rootfs -c . | podman import --change "ENV PATH=/bin:/sbin" - localhost/rkl-busybox:bench`,
    ], penv);
    const kube = `${dir}/kube.yaml`;
    await Deno.writeTextFile(kube, podManifest("localhost/rkl-busybox:bench", ""));
    podman = await upDown(
      () => sh("podman", ["kube", "play", kube], penv),
      () => sh("podman", ["kube", "down", kube], penv),
    );
    await sh("podman", ["rmi", "-f", "localhost/rkl-busybox:bench"], penv).catch(() => {});
  }

  // the raw calls rkl makes for the same pod, by hand
  const rt = runtimes[0];
  const rtRoot = `${runRoot}/rawrt-${rt}`;
  const cni = new CniClient(new DenoCommandRunner(), ["/opt/cni/bin", "/usr/lib/cni"]);
  const base = JSON.parse(await Deno.readTextFile(`${rawBusybox}/config.json`));
  const bundleFor = async (
    name: string,
    rootfs: string,
    args: string[],
    ns: Record<string, string>,
  ) => {
    const cfg = structuredClone(base);
    cfg.root = { path: rootfs, readonly: true };
    cfg.process.args = args;
    cfg.linux.cgroupsPath = `/rklbench-raw/${name}`;
    cfg.linux.namespaces = cfg.linux.namespaces.map((n: { type: string }) =>
      ns[n.type] ? { type: n.type, path: ns[n.type] } : n
    );
    const b = `${dir}/rawpod-${name}`;
    await Deno.mkdir(b, { recursive: true });
    await Deno.writeTextFile(`${b}/config.json`, JSON.stringify(cfg));
    return b;
  };
  let result: Awaited<ReturnType<typeof cni.add>> | undefined;
  const [rawUp, rawDown] = await upDown(
    async (i) => {
      const ns = `rklbenchpod${i}`;
      await sh("ip", ["netns", "add", ns]);
      const att = { containerId: `rawpod${i}`, netns: `/run/netns/${ns}`, ifName: "eth0" };
      await cni.add(LOOPBACK, { ...att, ifName: "lo" });
      result = await cni.add(conflist, att);
      const pause = await bundleFor(`pause${i}`, `${REPO}/bundles/pause/rootfs`, [
        "/bin/catatonit",
        "-P",
      ], { network: att.netns });
      await detached(rt, ["--root", rtRoot, "run", "-d", "--bundle", pause, `rawpause${i}`]);
      const pid = JSON.parse(await sh(rt, ["--root", rtRoot, "state", `rawpause${i}`])).pid;
      for (const c of POD_CONTAINERS) {
        const b = await bundleFor(`${c}${i}`, `${BUSYBOX}/rootfs`, ["sleep", "3600"], {
          network: att.netns,
          ipc: `/proc/${pid}/ns/ipc`,
          uts: `/proc/${pid}/ns/uts`,
        });
        await detached(rt, ["--root", rtRoot, "run", "-d", "--bundle", b, `raw${c}${i}`]);
      }
    },
    async (i) => {
      for (const id of [...POD_CONTAINERS.map((c) => `raw${c}${i}`), `rawpause${i}`]) {
        await sh(rt, ["--root", rtRoot, "delete", "--force", id]);
      }
      const att = {
        containerId: `rawpod${i}`,
        netns: `/run/netns/rklbenchpod${i}`,
        ifName: "eth0",
      };
      await cni.del(conflist, att, result);
      await cni.del(LOOPBACK, { ...att, ifName: "lo" });
      await sh("ip", ["netns", "delete", `rklbenchpod${i}`]);
    },
  );
  const served = { up: servedUp, down: servedDown };
  for (
    const [label, r, p, w, goal] of [
      ["pod up: pause + 2 + bridge", rklUp, podman?.[0], rawUp, "up"],
      ["pod down", rklDown, podman?.[1], rawDown, "down"],
    ] as const
  ) {
    if (p) {
      for (
        const [name, ours] of [[label, r], [`${label}, daemon running`, served[goal]]] as const
      ) {
        rows.push({
          name: `${name} (${rt})`,
          rkl: ours,
          baseline: p,
          baselineLabel: `podman kube ${goal === "up" ? "play" : "down"}`,
          goal: 0.5,
        });
      }
    }
    rows.push({
      name: `${label} (${rt})`,
      rkl: r,
      baseline: w,
      baselineLabel: `${rt} + CNI by hand`,
      goal: 1.2,
    });
  }
}

/** `rkl kube play`/`down` of a 3-replica Deployment vs podman's, alternating (bench/kube.ts). */
function kubeRows(): Promise<void> {
  return kubeBench({
    repo: REPO,
    runs: RUNS,
    dir,
    network,
    busybox: BUSYBOX,
    env,
    sh,
    whileServing,
    stat,
    which,
    push: (r) => rows.push(r),
  });
}

async function specFile(name: string, body: string): Promise<string> {
  const path = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(path, `name: ${name}\nimage: ${BUSYBOX}\n${body}`);
  return path;
}

// A raw bundle for the runtimes: config.json as rkl would write it, but on the
// bundle's rootfs directly (read-only, so it is never modified) and a fresh netns.
async function rawBundle(): Promise<string> {
  const b = `${dir}/rawbundle`;
  await Deno.mkdir(b, { recursive: true });
  await sh("sh", ["-c", `cd ${b} && rm -f config.json && runc spec`]);
  const cfg = JSON.parse(await Deno.readTextFile(`${b}/config.json`));
  cfg.root = { path: `${BUSYBOX}/rootfs`, readonly: true };
  cfg.process.terminal = false;
  cfg.process.args = ["sleep", "3600"];
  cfg.process.rlimits = [];
  cfg.linux.cgroupsPath = "/rklbench-raw/c";
  await Deno.writeTextFile(`${b}/config.json`, JSON.stringify(cfg));
  return b;
}

/**
 * Images: a two-layer image in a local docker-registry, pulled by rkl (through
 * a docker.io mirror entry), by skopeo + umoci and by podman; then a container
 * of it started by rkl (image vs the same spec from the bundle dir) and by podman.
 */
class Done extends Error {}

interface CriFigures {
  listP50: number;
  listP95: number;
  containers: number;
  rssMb: number;
  /** 3 s after the last pod started. */
  busyRssMb: number;
  pods: number;
}
let criFigures: CriFigures | undefined;
let peerFigures: PeerFigures | undefined;
let scaleFigures: ScaleFigures | undefined;

/**
 * rkl vs rk8s's RKL on the seed pod's whole life. RKL reads the first file
 * of /etc/cni/net.d and plugins from /opt/cni/bin: for the row, the files
 * in /etc/cni/net.d are moved aside (and put back after) so that RKL's
 * conflist is the only one, and missing plugins are linked from
 * /usr/lib/cni into /opt/cni/bin (the links removed after).
 */
async function rk8sRows(): Promise<void> {
  const anchor = [`${REPO}/../shared/anchors/rk8s-rkl`, "/work/shared/anchors/rk8s-rkl"]
    .find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  if (!anchor) {
    console.error("bench: rk8s-rkl not found (../shared/anchors): the rk8s row is left out");
    return;
  }
  const netd = "/etc/cni/net.d";
  const cniBin = "/opt/cni/bin";
  const madeNetd = !exists(netd), madeBin = !exists(cniBin), madeOpt = !exists("/opt/cni");
  const aside = `${dir}/net.d-aside`;
  const moved: string[] = [];
  const bridge = "rk8sbench0";
  const rk8sNet = "rk8sbench";
  const leases = `${dir}/rk8s-leases`;
  Deno.mkdirSync(netd, { recursive: true });
  Deno.mkdirSync(cniBin, { recursive: true });
  const links: string[] = [];
  try {
    Deno.mkdirSync(aside);
    for (const e of [...Deno.readDirSync(netd)]) {
      await sh("mv", [`${netd}/${e.name}`, `${aside}/${e.name}`]);
      moved.push(e.name);
    }
    for (const e of Deno.readDirSync("/usr/lib/cni")) {
      if (exists(`${cniBin}/${e.name}`)) continue;
      Deno.symlinkSync(`/usr/lib/cni/${e.name}`, `${cniBin}/${e.name}`);
      links.push(`${cniBin}/${e.name}`);
    }
    const list = bridgeConflist(rk8sNet, {
      subnet: "10.250.9.0/24",
      ipamDataDir: leases,
      bridge,
    });
    // RKL passes no port mappings: the chain is bridge alone.
    await Deno.writeTextFile(
      `${netd}/10-rk8sbench.conflist`,
      JSON.stringify({ ...list, plugins: [list.plugins[0]] }),
    );
    // Its own copies: RKL rewrites the bundles' config.json.
    const busy = `${dir}/rk8s-busybox`, pause = `${dir}/rk8s-pause`;
    await sh("cp", ["-a", BUSYBOX, busy]);
    await sh("cp", ["-a", `${REPO}/bundles/pause`, pause]);
    await Deno.copyFile(
      anchor.replace(/rk8s-rkl$/, "rk8s-pause-config.json"),
      `${pause}/config.json`,
    );
    // RKL reads `args` (not `command`); for a bundle with no entrypoint the
    // two mean the same to rkl, so both tools get the same file but for the
    // bundle copy. RKL's containers keep its stdio: it runs detached.
    const seed = (image: string) =>
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: seed\n  labels: {bundle: ${pause}}\n` +
      `spec:\n  containers:\n    - name: app\n      image: ${image}\n      args: ["sleep", "3600"]\n`;
    const rk8sFile = `${dir}/rk8s-seed.yaml`;
    await Deno.writeTextFile(rk8sFile, seed(busy));
    const quiet = { RUST_BACKTRACE: "0" };
    const rk8sLife = async () => {
      await detached(anchor, ["pod", "run", rk8sFile], quiet);
      await detached(anchor, ["pod", "delete", "seed"], quiet);
    };
    const rklFile = `${dir}/rkl-seed.yaml`;
    await Deno.writeTextFile(rklFile, seed(BUSYBOX));
    const rklLife = async () => {
      await rkl(["pod", "run", "--network", network, rklFile]);
      await rkl(["pod", "rm", "-f", "seed"]);
    };
    // RKL and rkl alternate, run by run, so both see the same load on the host.
    const alternating = () => alternate(rk8sLife, rklLife);
    const row = (name: string, [baseline, ours]: [Stat, Stat], goal: number) =>
      rows.push({ name, rkl: ours, baseline, baselineLabel: "rk8s RKL pod run + delete", goal });
    row("seed pod run + removal", await alternating(), 2);
    // The same two commands while `rkl daemon` runs: thin clients it serves (cli/remote.ts).
    row("seed pod run + removal, daemon running", await whileServing(alternating), 0.8);
  } finally {
    await new Deno.Command(anchor, {
      args: ["pod", "delete", "seed"],
      stdout: "null",
      stderr: "null",
    })
      .output().catch(() => {});
    for (const l of links) await Deno.remove(l).catch(() => {});
    await Deno.remove(`${netd}/10-rk8sbench.conflist`).catch(() => {});
    for (const name of moved) await sh("mv", [`${aside}/${name}`, `${netd}/${name}`]);
    if (madeBin) await Deno.remove(cniBin).catch(() => {});
    if (madeOpt) await Deno.remove("/opt/cni").catch(() => {});
    if (madeNetd) await Deno.remove(netd).catch(() => {});
    await new Deno.Command("ip", { args: ["link", "delete", bridge], stderr: "null" }).output();
  }
}

/** The CRI rows: a daemon serving the CRI, crictl and a grpc-js client against it. */
async function criRows(): Promise<void> {
  const { dirTar, pushImage, startRegistry } = await import("../tests/_helpers/oci.ts");
  const grpc = await import("@grpc/grpc-js");
  const { serviceDefinition } = await import("../src/cri/grpc.ts");
  const reg = await startRegistry(`${dir}/cri-registry`);
  const sock = `${dir}/cri/rkl.sock`;
  const cenv = { ...env, RKL_REGISTRIES_CONFIG: `${dir}/cri-registries.yaml` };
  await pushImage(reg.url, "library/busybox", "1.36", {
    layers: [await dirTar(`${BUSYBOX}/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  await Deno.writeTextFile(
    cenv.RKL_REGISTRIES_CONFIG,
    `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
  );
  await Deno.mkdir(`${dir}/cri-manifests`, { recursive: true });
  const daemon = spawnDaemon(`${dir}/cri-manifests`, ["--cri-socket", sock], cenv);
  const crictl = (args: string[]) =>
    sh("crictl", [
      "--runtime-endpoint",
      `unix://${sock}`,
      "--image-endpoint",
      `unix://${sock}`,
      ...args,
    ]);
  try {
    await until("the CRI socket", () => {
      try {
        return Deno.statSync(sock).isSocket === true;
      } catch {
        return false;
      }
    });
    await crictl(["pull", "busybox:1.36"]);
    const podJson = (name: string) => ({
      metadata: { name, namespace: "bench", uid: `uid-${name}`, attempt: 0 },
      log_directory: `${dir}/cri-logs/${name}`,
      linux: {},
    });
    const ctrJson = (name: string) => ({
      metadata: { name },
      image: { image: "busybox:1.36" },
      command: ["sleep", "3600"],
      log_path: `${name}.log`,
      linux: {},
    });
    await Deno.writeTextFile(`${dir}/cri-pod.json`, JSON.stringify(podJson("one")));
    await Deno.writeTextFile(`${dir}/cri-ctr.json`, JSON.stringify(ctrJson("app")));
    const cri = await series(async () => {
      const pod = (await crictl(["runp", `${dir}/cri-pod.json`])).trim();
      const ctr = (await crictl(["create", pod, `${dir}/cri-ctr.json`, `${dir}/cri-pod.json`]))
        .trim();
      await crictl(["start", ctr]);
    }, {
      cleanup: async () => {
        for (const p of (await crictl(["pods", "-q"])).split("\n").filter(Boolean)) {
          await crictl(["rmp", "-f", p]);
        }
      },
    });
    const podFile = `${dir}/cri-same.yaml`;
    await Deno.writeTextFile(
      podFile,
      "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  containers:\n" +
        "    - {name: app, image: 'busybox:1.36', imagePullPolicy: IfNotPresent, command: [sleep, '3600']}\n",
    );
    const cli = await series(() => rkl(["pod", "run", "--network", network, podFile]), {
      cleanup: () => rkl(["pod", "rm", "-f", "one"]),
    });
    rows.push({
      name: "CRI runp + create + start (crictl)",
      rkl: cri,
      baseline: cli,
      baselineLabel: "rkl pod run (same pod)",
      goal: 1,
    });

    // ListContainers with 100 containers (10 sandboxes of 10), straight over gRPC.
    const Client = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
    const client = new Client(`unix://${sock}`, grpc.credentials.createInsecure());
    const call = (m: string, req: unknown) =>
      new Promise<Record<string, unknown>>((resolve, reject) =>
        // deno-lint-ignore no-explicit-any
        (client as any)[m](req, (err: Error | null, res: Record<string, unknown>) =>
          err ? reject(err) : resolve(res))
      );
    const sandboxes: string[] = [];
    for (let p = 0; p < 10; p++) {
      const config = podJson(`many${p}`);
      const { pod_sandbox_id } = await call("RunPodSandbox", { config }) as {
        pod_sandbox_id: string;
      };
      sandboxes.push(pod_sandbox_id);
      for (let c = 0; c < 10; c++) {
        const { container_id } = await call("CreateContainer", {
          pod_sandbox_id,
          config: ctrJson(`c${c}`),
          sandbox_config: config,
        }) as { container_id: string };
        await call("StartContainer", { container_id });
      }
    }
    const lat: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const res = await call("ListContainers", {}) as { containers: unknown[] };
      lat.push(performance.now() - t0);
      if (res.containers.length !== 100) {
        throw new Error(`${res.containers.length} containers listed`);
      }
    }
    const l = stat(lat.slice(5));
    // RSS with 50 CRI pods (one container each): 40 more sandboxes beside the 10 above.
    for (const p of sandboxes) {
      await call("RemovePodSandbox", { pod_sandbox_id: p }).catch(() => {});
    }
    for (let p = 0; p < 50; p++) {
      const config = podJson(`rss${p}`);
      const { pod_sandbox_id } = await call("RunPodSandbox", { config }) as {
        pod_sandbox_id: string;
      };
      const { container_id } = await call("CreateContainer", {
        pod_sandbox_id,
        config: ctrJson("app"),
        sandbox_config: config,
      }) as { container_id: string };
      await call("StartContainer", { container_id });
    }
    for (let i = 0; i < 5; i++) await call("ListPodSandbox", {});
    await new Promise((r) => setTimeout(r, 3000));
    const busyRss = procFigures(daemon.pid).rssKb / 1024;
    // Steady state, as the static-pod daemon row measures it: 30 s later, with the kubelet's
    // relist (ListPodSandbox + ListContainers every second) going on.
    for (let i = 0; i < 30; i++) {
      await call("ListPodSandbox", {});
      await call("ListContainers", {});
      await new Promise((r) => setTimeout(r, 1000));
    }
    criFigures = {
      listP50: l.median,
      listP95: l.p95,
      containers: 100,
      rssMb: procFigures(daemon.pid).rssKb / 1024,
      busyRssMb: busyRss,
      pods: 50,
    };
    const all = await call("ListPodSandbox", {}) as { items: { id: string }[] };
    for (const p of all.items) await call("RemovePodSandbox", { pod_sandbox_id: p.id });
    client.close();
  } finally {
    for (const p of (await crictl(["pods", "-q"]).catch(() => "")).split("\n").filter(Boolean)) {
      await crictl(["rmp", "-f", p]).catch(() => {});
    }
    await crictl(["rmi", "busybox:1.36"]).catch(() => {});
    try {
      daemon.kill("SIGTERM");
    } catch { /* gone */ }
    await daemon.status;
    await reg.stop();
  }
}

async function imageRows(): Promise<void> {
  const { dirTar, pushImage, startRegistry, tarBytes } = await import("../tests/_helpers/oci.ts");
  const reg = await startRegistry(`${dir}/registry`);
  try {
    const top = tarBytes([{ name: "etc/motd", data: "bench\n" }, { name: "bin/.wh.vi" }]);
    await pushImage(reg.url, "library/benchimg", "1", {
      layers: [await dirTar(`${BUSYBOX}/rootfs`), top],
      config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sleep", "3600"] },
    });
    await Deno.writeTextFile(
      `${dir}/registries.yaml`,
      `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
    );
    Object.assign(env, { RKL_REGISTRIES_CONFIG: `${dir}/registries.yaml` });
    const pull = await series(() => rkl(["image", "pull", "-q", "docker.io/library/benchimg:1"]), {
      cleanup: () => rkl(["image", "prune", "-a"]),
    });
    const oci = `${dir}/oci`;
    rows.push({
      name: "image pull, 2 layers (local registry)",
      rkl: pull,
      baseline: await series(async () => {
        await sh("skopeo", [
          "copy",
          "--src-tls-verify=false",
          `docker://${reg.host}/library/benchimg:1`,
          `oci:${oci}:1`,
        ]);
        await sh("umoci", ["unpack", "--image", `${oci}:1`, `${dir}/umoci-bundle`]);
      }, {
        cleanup: () =>
          Deno.remove(`${dir}/umoci-bundle`, { recursive: true }).then(() =>
            Deno.remove(oci, { recursive: true })
          ),
      }),
      baselineLabel: "skopeo copy + umoci unpack",
    });
    const penv = { CONTAINERS_CONF: `${dir}/containers.conf` };
    if (which("podman")) {
      await podmanEnv(penv.CONTAINERS_CONF);
      const podmanPull = await series(
        () =>
          sh(
            "podman",
            ["pull", "-q", "--tls-verify=false", `${reg.host}/library/benchimg:1`],
            penv,
          ),
        { cleanup: () => sh("podman", ["rmi", "-f", `${reg.host}/library/benchimg:1`], penv) },
      );
      rows.push({
        name: "image pull, 2 layers (local registry)",
        rkl: pull,
        baseline: podmanPull,
        baselineLabel: "podman pull",
        goal: 0.5,
      });
      rows.push({
        name: "image pull, 2 layers, daemon running",
        rkl: await whileServing(() =>
          series(() => rkl(["image", "pull", "-q", "docker.io/library/benchimg:1"]), {
            cleanup: () => rkl(["image", "prune", "-a"]),
          })
        ),
        baseline: podmanPull,
        baselineLabel: "podman pull",
        goal: 0.5,
      });
    }
    await rkl(["image", "pull", "-q", "docker.io/library/benchimg:1"]);
    const fromImage = await specFile("fromimg", `command: [sleep, "3600"]\n`);
    await Deno.writeTextFile(
      fromImage,
      (await Deno.readTextFile(fromImage)).replace(/image: .*/, "image: benchimg:1"),
    );
    const fromBundle = await specFile("frombundle", `command: [sleep, "3600"]\n`);
    const runOnce = (f: string, name: string) =>
      series(() => rkl(["container", "run", "--network", "none", f]), {
        cleanup: () => rkl(["container", "rm", "-f", name]),
      });
    const img = await runOnce(fromImage, "fromimg");
    rows.push({
      name: "container run --network none, from an image",
      rkl: img,
      baseline: await runOnce(fromBundle, "frombundle"),
      baselineLabel: "rkl, same spec from the bundle dir",
      goal: 1.2,
    });
    if (which("podman")) {
      await sh(
        "podman",
        ["pull", "-q", "--tls-verify=false", `${reg.host}/library/benchimg:1`],
        penv,
      );
      rows.push({
        name: "container run --network none, from an image",
        rkl: img,
        baseline: await series(
          () =>
            sh("podman", [
              "run",
              "-d",
              "--network",
              "none",
              "--name",
              "pbench",
              `${reg.host}/library/benchimg:1`,
            ], penv),
          { cleanup: () => sh("podman", ["rm", "-f", "-t", "0", "pbench"], penv) },
        ),
        baselineLabel: "podman run -d",
      });
      await sh("podman", ["rmi", "-f", `${reg.host}/library/benchimg:1`], penv).catch(() => {});
    }
    await rkl(["image", "prune", "-a"]);
  } finally {
    await reg.stop();
  }
}

/**
 * The docker-style commands against podman 4.3 (its own --root/--runroot in
 * the bench dir, so the host's podman state is not touched): `rkl run -d
 * busybox sleep` vs `podman run -d`, then `rkl ps` vs `podman ps` with 50
 * containers each. rkl's busybox comes from a local registry (docker.io
 * mirror), podman's is the same rootfs imported; both are local before timing.
 */
async function dockerRows(): Promise<void> {
  const { dirTar, pushImage, startRegistry } = await import("../tests/_helpers/oci.ts");
  const reg = await startRegistry(`${dir}/registry-docker`);
  const N = 50;
  const conf = `${dir}/containers-docker.conf`;
  const penv = await podmanEnv(conf);
  const podman = (args: string[]) =>
    sh("podman", ["--root", `${dir}/podman/root`, "--runroot", `${dir}/podman/run`, ...args], penv);
  const hasPodman = !!which("podman");
  try {
    await pushImage(reg.url, "library/busybox", "latest", {
      layers: [await dirTar(`${BUSYBOX}/rootfs`)],
      config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
    });
    await Deno.writeTextFile(
      `${dir}/registries-docker.yaml`,
      `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
    );
    Object.assign(env, { RKL_REGISTRIES_CONFIG: `${dir}/registries-docker.yaml` });
    await rkl(["pull", "-q", "busybox"]);
    const pimg = "localhost/rkl-busybox:bench";
    if (hasPodman) {
      await sh("sh", [
        "-c",
        `tar -C ${BUSYBOX}/rootfs -c . | podman --root ${dir}/podman/root --runroot ${dir}/podman/run import --change "ENV PATH=/bin:/sbin" - ${pimg}`,
      ], penv);
    }
    const rklRun = await series(
      () => rkl(["run", "-d", "--name", "drun", "--network", "none", "busybox", "sleep", "3600"]),
      { cleanup: () => rkl(["rm", "-f", "drun"]) },
    );
    if (hasPodman) {
      rows.push({
        name: "run -d busybox sleep (--network none)",
        rkl: rklRun,
        baseline: await series(
          () => podman(["run", "-d", "--name", "prun", "--network", "none", pimg, "sleep", "3600"]),
          { cleanup: () => podman(["rm", "-f", "-t", "0", "prun"]) },
        ),
        baselineLabel: "podman run -d",
        goal: 0.5,
      });
      // The same while `rkl daemon` runs: it serves a detached run to the thin client.
      rows.push({
        name: "run -d busybox sleep (--network none), daemon running",
        rkl: await whileServing(() =>
          series(
            () =>
              rkl(["run", "-d", "--name", "drun", "--network", "none", "busybox", "sleep", "3600"]),
            { cleanup: () => rkl(["rm", "-f", "drun"]) },
          )
        ),
        baseline: rows[rows.length - 1].baseline,
        baselineLabel: "podman run -d",
        goal: 0.5,
      });
    }
    for (let i = 0; i < N; i++) {
      await rkl(["run", "-d", "--name", `ps${i}`, "--network", "none", "busybox", "sleep", "3600"]);
      if (hasPodman) {
        await podman(["run", "-d", "--name", `ps${i}`, "--network", "none", pimg, "sleep", "3600"]);
      }
    }
    const rklPs = await series(() => rkl(["ps"]));
    if (hasPodman) {
      rows.push({
        name: `ps with ${N} running containers`,
        rkl: rklPs,
        baseline: await series(() => podman(["ps"])),
        baselineLabel: "podman ps",
        goal: 0.5,
      });
      rows.push({
        name: `ps with ${N} running containers, daemon running`,
        rkl: await whileServing(() => series(() => rkl(["ps"]))),
        baseline: rows[rows.length - 1].baseline,
        baselineLabel: "podman ps",
        goal: 0.5,
      });
    }
  } finally {
    for (let i = 0; i < N; i++) {
      await rkl(["rm", "-f", `ps${i}`]).catch(() => {});
    }
    if (hasPodman) {
      await podman(["rm", "-a", "-f", "-t", "0"]).catch(() => {});
      await podman(["rmi", "-a", "-f"]).catch(() => {});
      // podman's overlay mounts under its private root go before the dir does.
      await sh("sh", ["-c", `umount -R ${dir}/podman/root/overlay 2>/dev/null; true`]);
    }
    await reg.stop();
  }
}

/**
 * `rkl stats --no-stream` with 20 running containers against `podman stats
 * --no-stream` with 20 (podman on a private --root/--runroot with the vfs
 * driver, so nothing of the host's podman is touched and nothing is mounted).
 */
async function statsRows(): Promise<void> {
  const N = 20;
  const names = Array.from({ length: N }, (_, i) => `st${i}`);
  for (const n of names) {
    await rkl([
      "container",
      "run",
      "--network",
      "none",
      await specFile(n, `command: [sleep, "3600"]\n`),
    ]);
  }
  let rklStats: Stat;
  let servedStats: Stat;
  try {
    rklStats = await series(() => rkl(["stats", "--no-stream"]));
    // The same while `rkl daemon` runs: a thin client it serves.
    servedStats = await whileServing(() => series(() => rkl(["stats", "--no-stream"])));
  } finally {
    for (const n of names) await rkl(["container", "rm", "-f", n]).catch(() => {});
  }
  if (!which("podman")) return;
  const conf = `${dir}/containers.conf`;
  const penv = await podmanEnv(conf);
  const P = [
    "--root",
    `${dir}/podman-root`,
    "--runroot",
    `${dir}/podman-run`,
    "--storage-driver",
    "vfs",
  ];
  await sh("sh", [
    "-c",
    `tar -C ${BUSYBOX}/rootfs -c . | podman ${
      P.join(" ")
    } import --change "ENV PATH=/bin:/sbin" - localhost/rkl-busybox:bench`,
  ], penv);
  try {
    for (const n of names) {
      await sh("podman", [
        ...P,
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        `p${n}`,
        "localhost/rkl-busybox:bench",
        "sleep",
        "3600",
      ], penv);
    }
    const podmanStats = await series(() => sh("podman", [...P, "stats", "--no-stream"], penv));
    rows.push({
      name: `stats --no-stream, ${N} containers, daemon running`,
      rkl: servedStats,
      baseline: podmanStats,
      baselineLabel: "podman stats --no-stream",
      goal: 0.5,
    }, {
      name: `stats --no-stream, ${N} containers, in-process`,
      rkl: rklStats,
      baseline: podmanStats,
      baselineLabel: "podman stats --no-stream",
    });
  } finally {
    await sh("podman", [...P, "rm", "-a", "-f", "-t", "0"], penv).catch(() => {});
    await sh("podman", [...P, "rmi", "-a", "-f"], penv).catch(() => {});
  }
}

try {
  const runtimes = ["youki", "runc"].filter((r) => which(r));
  const raw = await rawBundle();
  // BENCH_ONLY=images runs just the image rows.
  const only = Deno.env.get("BENCH_ONLY");
  // BENCH_ONLY=stats runs just `rkl stats --no-stream` vs `podman stats --no-stream`.
  if (!only || only === "stats") await statsRows();
  if (only === "stats") throw new Done();
  // BENCH_ONLY=docker runs just the docker-style rows (run -d, ps with 50 containers).
  if (only === "docker") {
    await dockerRows();
    throw new Done();
  }
  if (!only || only === "images") await imageRows();
  if (only === "images") throw new Done();
  // BENCH_ONLY=rk8s runs just the row against rk8s's RKL.
  if (only === "rk8s" || !only) await rk8sRows();
  if (only === "rk8s") throw new Done();
  // BENCH_ONLY=rootless runs just rootless rkl against rootless podman (bench/rootless.ts).
  if (only === "rootless") {
    rows.push(...await rootlessRows(RUNS));
    throw new Done();
  }
  // BENCH_ONLY=kube runs just kube play/down of a Deployment against podman's.
  if (only === "kube") {
    await kubeRows();
    throw new Done();
  }
  // BENCH_ONLY=daemon runs just the static-pod daemon's rows (latency, RSS with 50 pods).
  if (only === "daemon") {
    await daemonRows();
    throw new Done();
  }
  // BENCH_ONLY=containerd runs just the CRI rows against containerd 1.6 (bench/containerd.ts).
  if (!only || only === "containerd") peerFigures = await containerdRows({ runs: RUNS });
  if (only === "containerd") throw new Done();
  // BENCH_ONLY=scale runs just 200 CRI pods against containerd's (bench/scale.ts).
  if (!only || only === "scale") scaleFigures = await scaleRows();
  if (only === "scale") throw new Done();
  // BENCH_ONLY=cri runs just the CRI rows.
  if (only !== "run") await criRows();
  if (only === "cri") throw new Done();

  // 1. --version against a Deno hello-world.
  const hello = `${dir}/hello.ts`;
  await Deno.writeTextFile(hello, 'console.log("hello");\n');
  rows.push({
    name: "rkl --version",
    rkl: await series(() =>
      sh(Deno.execPath(), ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "--version"])
    ),
    baseline: await series(() => sh(Deno.execPath(), ["run", "--quiet", hello])),
    baselineLabel: "deno run hello.ts",
    goal: 1.5,
  });

  // 2. run without network, against `<runtime> run -d` of the same rootfs.
  const nonet = await specFile("nonet", `command: [sleep, "3600"]\n`);
  for (const rt of runtimes) {
    const rtRoot = `${runRoot}/rawrt-${rt}`;
    rows.push({
      name: `run, no network (${rt})`,
      rkl: await series(
        () => rkl(["--runtime", rt, "container", "run", "--network", "none", nonet]),
        {
          cleanup: () => rkl(["container", "rm", "-f", "nonet"]),
        },
      ),
      baseline: await series(
        (i) => detached(rt, ["--root", rtRoot, "run", "-d", "--bundle", raw, `raw${i}`]),
        { cleanup: (i) => sh(rt, ["--root", rtRoot, "delete", "--force", `raw${i}`]) },
      ),
      baselineLabel: `${rt} run -d`,
      goal: 1.5,
    });
  }
  {
    // Served, alternating with the runtime's own run -d (goal: issue 35).
    const rt = runtimes[0];
    const rtRoot = `${runRoot}/rawrt-${rt}`;
    const [baseline, ours] = await whileServing(() =>
      alternate(
        (i) => detached(rt, ["--root", rtRoot, "run", "-d", "--bundle", raw, `raw${i}`]),
        () => rkl(["--runtime", rt, "container", "run", "--network", "none", nonet]),
        {
          theirs: (i) => sh(rt, ["--root", rtRoot, "delete", "--force", `raw${i}`]),
          ours: () => rkl(["container", "rm", "-f", "nonet"]),
        },
      )
    );
    rows.push({
      name: `run, no network (${rt}), daemon running`,
      rkl: ours,
      baseline,
      baselineLabel: `${rt} run -d`,
      goal: 2,
    });
  }
  // BENCH_ONLY=run runs just --version and the run-without-network rows.
  if (only === "run") throw new Done();

  // 3. run → rm on a bridge network, against the same calls made by hand.
  const withNet = await specFile(
    "withnet",
    `command: [sleep, "3600"]\nports:\n  - containerPort: 80\n    hostPort: 18999\n`,
  );
  const cni = new CniClient(new DenoCommandRunner(), ["/opt/cni/bin", "/usr/lib/cni"]);
  for (const rt of runtimes) {
    const rtRoot = `${runRoot}/rawrt-${rt}`;
    rows.push({
      name: `run → rm, bridge + port (${rt})`,
      rkl: await series(async () => {
        await rkl(["--runtime", rt, "container", "run", "--network", network, withNet]);
        await rkl(["container", "rm", "-f", "withnet"]);
      }),
      baseline: await series(async (i) => {
        const id = `rawnet${i}`;
        const ns = `rklbench${i}`;
        const nsPath = `/run/netns/${ns}`;
        await sh("ip", ["netns", "add", ns]);
        const att = { containerId: id, netns: nsPath, ifName: "eth0" };
        const pm = {
          portMappings: [{ hostPort: 18999, containerPort: 80, protocol: "tcp" as const }],
        };
        await cni.add(LOOPBACK, { ...att, ifName: "lo" });
        const result = await cni.add(conflist, { ...att, capabilityArgs: pm });
        const cfg = JSON.parse(await Deno.readTextFile(`${raw}/config.json`));
        cfg.linux.namespaces = cfg.linux.namespaces.map((n: { type: string }) =>
          n.type === "network" ? { type: "network", path: nsPath } : n
        );
        const b = `${dir}/rawnet`;
        await Deno.mkdir(b, { recursive: true });
        await Deno.writeTextFile(`${b}/config.json`, JSON.stringify(cfg));
        await detached(rt, ["--root", rtRoot, "run", "-d", "--bundle", b, id]);

        await sh(rt, ["--root", rtRoot, "delete", "--force", id]);
        await cni.del(conflist, { ...att, capabilityArgs: pm }, result);
        await cni.del(LOOPBACK, { ...att, ifName: "lo" });
        await sh("ip", ["netns", "delete", ns]);
      }),
      baselineLabel: `${rt} + CNI by hand`,
      goal: 1.2,
    });
  }

  // 5. A pod: pause + 2 containers + bridge network, up and down, against
  //    podman kube play/down of the same pod and the raw runtime + CNI calls.
  await podRows(runtimes, raw);

  // 5b. kube play/down of a 3-replica Deployment, against podman's.
  await kubeRows();

  // 6. A 5-service compose app on one network, up -d and down, against podman-compose.
  await composeRows();

  // 7. The static-pod daemon: manifest → running latency, RSS with 50 pods, idle CPU.
  await daemonRows();

  // 4. list with 50 containers.
  const fifty = await specFile("many", `command: [sleep, "3600"]\n`);
  const text = await Deno.readTextFile(fifty);
  for (let i = 0; i < 50; i++) {
    const f = `${dir}/many${i}.yaml`;
    await Deno.writeTextFile(f, text.replace("name: many", `name: many${i}`));
    await rkl(["--runtime", "runc", "container", "run", "--network", "none", f]);
  }
  rows.push({
    name: "container list, 50 containers",
    rkl: await series(() => rkl(["container", "list"])),
    baseline: await series(() => sh("runc", ["--root", `${runRoot}/runtime/runc`, "list"])),
    baselineLabel: "runc list",
  });
  rows.push({
    name: "container list, 50 containers, daemon running",
    rkl: await whileServing(() => series(() => rkl(["container", "list"]))),
    baseline: await series(() => sh("runc", ["--root", `${runRoot}/runtime/runc`, "list"])),
    baselineLabel: "runc list",
    goal: 2,
  });
  for (let i = 0; i < 50; i++) await rkl(["container", "rm", "-f", `many${i}`]);

  // The artifact a user copies (scripts/dist.sh): start-up after its first run, which unpacks.
  await sh("bash", [`${REPO}/scripts/dist.sh`, `${dir}/dist`]);
  const artifact = `${dir}/dist/rkl-x86_64-linux`;
  unpackMs = await time(() => sh(artifact, ["--version"], env));
  await Deno.writeTextFile(`${dir}/hello.ts`, 'console.log("hello");\n');
  rows.push({
    name: "artifact --version (unpacked)",
    rkl: await series(() => sh(artifact, ["--version"], env)),
    baseline: await series(() => sh(Deno.execPath(), ["run", `${dir}/hello.ts`])),
    baselineLabel: "deno run hello.ts",
    goal: 1.5,
  });
} catch (e) {
  if (!(e instanceof Done)) throw e;
} finally {
  if (!hadCniLock) await Deno.remove(PODMAN_CNI_LOCK).catch(() => {});
  await new Deno.Command("ip", { args: ["link", "delete", network] }).output();
  // The by-hand runs used portmap too; leave its shared chains as rkl does.
  await removeIdlePortmapChains(new DenoCommandRunner());
  // The raw runs' cgroups (the runtimes leave the parent behind), in every hierarchy.
  for (const h of Deno.readDirSync("/sys/fs/cgroup")) {
    const parent = `/sys/fs/cgroup/${h.name}/rklbench-raw`;
    try {
      for (const c of Deno.readDirSync(parent)) {
        if (c.isDirectory) await Deno.remove(`${parent}/${c.name}`).catch(() => {});
      }
      await Deno.remove(parent).catch(() => {});
    } catch { /* not there */ }
  }

  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
if (unpackMs !== undefined) console.log(`artifact first run (unpack + --version): ${ms(unpackMs)}`);
console.log(`runs per row: ${RUNS} (after one warm-up)\n`);
const header = ["row", "rkl median", "rkl p95", "baseline", "baseline median", "ratio", "goal"];
const table = rows.map((r) => {
  const ratio = r.rkl.median / r.baseline.median;
  return [
    r.name,
    ms(r.rkl.median),
    ms(r.rkl.p95),
    r.baselineLabel,
    ms(r.baseline.median),
    `${ratio.toFixed(2)}×`,
    r.goal ? `≤ ${r.goal}× ${ratio <= r.goal ? "met" : "NOT met"}` : "-",
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
for (const line of [header, ...table]) {
  console.log(line.map((c, i) => c.padEnd(widths[i])).join("  "));
}

if (criFigures) {
  const f = criFigures;
  console.log(
    `\nCRI ListContainers with ${f.containers} containers: p50 ${ms(f.listP50)}, p95 ${
      ms(f.listP95)
    } (45 calls over gRPC; goal p95 ≤ 20 ms: ${f.listP95 <= 20 ? "met" : "NOT met"})`,
  );
  console.log(
    `CRI daemon RSS with ${f.pods} CRI pods: ${f.rssMb.toFixed(1)} MB after 30 s of relists, ${
      f.busyRssMb.toFixed(1)
    } MB right after the last start (goal ≤ 100 MB: ${f.rssMb <= 100 ? "met" : "NOT met"})`,
  );
}

if (peerFigures) {
  console.log("\nrkl's CRI vs containerd 1.6's CRI (same runc, CNI plugins, images, gRPC client):");
  printPeerFigures(peerFigures);
}

if (scaleFigures) {
  console.log("\nrkl's CRI vs containerd 1.6's at scale (bench/scale.ts):");
  printScale(scaleFigures);
}

if (daemonFigures) {
  const f = daemonFigures;
  console.log(
    `\nrkl daemon: manifest written → all containers running: p50 ${ms(f.latency.median)}, p95 ${
      ms(f.latency.p95)
    } ` +
      `(20 runs; goal p95 ≤ 1 s: ${f.latency.p95 <= 1000 ? "met" : "NOT met"})`,
  );
  console.log(
    `rkl daemon: RSS with ${f.pods} static pods: ${f.rssMb.toFixed(1)} MB (goal ≤ 80 MB: ${
      f.rssMb <= 80 ? "met" : "NOT met"
    })`,
  );
  console.log(
    `rkl daemon: idle CPU with ${f.pods} pods: ${
      f.idleCpuSecPerMin.toFixed(2)
    } s per minute (goal ≤ 1 s: ${f.idleCpuSecPerMin <= 1 ? "met" : "NOT met"})`,
  );
}

await Deno.mkdir(`${REPO}/bench/results`, { recursive: true });
await Deno.writeTextFile(
  `${REPO}/bench/results/latest.json`,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      runs: RUNS,
      rows,
      daemon: daemonFigures ?? null,
      cri: criFigures ?? null,
      containerd: peerFigures ?? null,
      scale: scaleFigures ?? null,
    },
    null,
    2,
  ) + "\n",
);
console.log(`\nwritten: bench/results/latest.json`);
