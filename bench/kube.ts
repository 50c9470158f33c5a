/**
 * `rkl kube play` / `kube down` of a 3-replica Deployment against `podman
 * kube play` / `kube down` of the same file (podman on a private state dir,
 * the same busybox rootfs imported as an image). In-process, the two
 * alternate run by run (each play followed by its down), so both see the
 * same load on the shared host; the served rows (a `rkl daemon` running)
 * come after, against the same podman figures.
 *
 * BENCH_KUBE_BEFORE=DIR adds a third tool to the alternation: the rkl of
 * another checkout (`DIR/cli/main.ts`, e.g. a worktree of main), on the same
 * state roots and network, so that a change's before and after are measured
 * in one run beside the same podman runs.
 */
import { podmanEnv } from "./podman.ts";

export interface Stat {
  median: number;
  p95: number;
  min: number;
  runs: number;
}

export interface KubeBench {
  /** The repository whose cli/main.ts is "rkl". */
  repo: string;
  runs: number;
  /** The bench's temp dir, network and the busybox bundle. */
  dir: string;
  network: string;
  busybox: string;
  /** The env rkl runs with (RKL_ROOT, RKL_RUN_ROOT, RKL_CGROUP_PARENT). */
  env: Record<string, string>;
  sh(cmd: string, args: string[], env?: Record<string, string>): Promise<string>;
  whileServing<T>(fn: () => Promise<T>): Promise<T>;
  stat(xs: number[]): Stat;
  which(cmd: string): string | undefined;
  push(
    row: { name: string; rkl: Stat; baseline: Stat; baselineLabel: string; goal?: number },
  ): void;
}

/** A 3-replica Deployment of one busybox container each, as `kube play` benchmarks it. */
export function deploymentFile(image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: benchweb\nspec:\n  replicas: 3\n` +
    `  selector:\n    matchLabels: {app: benchweb}\n  template:\n    metadata:\n      labels: {app: benchweb}\n` +
    `    spec:\n      containers:\n      - name: web\n        image: ${image}\n        command: ["sleep", "3600"]\n`;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function kubeRows(b: KubeBench): Promise<void> {
  const rklFile = `${b.dir}/benchdeploy.yaml`;
  await Deno.writeTextFile(rklFile, deploymentFile(b.busybox));
  const rklOf = (repo: string) => (args: string[]) =>
    b.sh(Deno.execPath(), ["run", "-A", "--quiet", `${repo}/cli/main.ts`, ...args], b.env);
  const play = (rkl: (a: string[]) => Promise<string>) => () =>
    rkl(["kube", "play", "--network", b.network, rklFile]);
  const down = (rkl: (a: string[]) => Promise<string>) => () => rkl(["kube", "down", rklFile]);
  const rkl = rklOf(b.repo);
  const beforeRepo = Deno.env.get("BENCH_KUBE_BEFORE");
  const before = beforeRepo ? rklOf(beforeRepo) : undefined;

  // Each tool: [play, down] per run; the first run of each warms caches.
  type Tool = { label: string; up: () => Promise<unknown>; down: () => Promise<unknown> };
  const tools: Tool[] = [{ label: "rkl", up: play(rkl), down: down(rkl) }];
  if (before) tools.push({ label: "before", up: play(before), down: down(before) });

  let cleanupPodman = async () => {};
  if (b.which("podman")) {
    const pdir = `${b.dir}/podman-kube`;
    await Deno.mkdir(pdir, { recursive: true });
    const conf = `${pdir}/containers.conf`;
    const penv = await podmanEnv(conf);
    const p = ["--root", `${pdir}/root`, "--runroot", `${pdir}/run`];
    await b.sh("sh", [
      "-c",
      `tar -C ${b.busybox}/rootfs -c . | podman ${
        p.join(" ")
      } import --change "ENV PATH=/bin:/sbin" - localhost/rkl-busybox:bench`,
    ], penv);
    const kube = `${pdir}/deploy.yaml`;
    await Deno.writeTextFile(kube, deploymentFile("localhost/rkl-busybox:bench"));
    tools.unshift({
      label: "podman",
      up: () => b.sh("podman", [...p, "kube", "play", kube], penv),
      down: () => b.sh("podman", [...p, "kube", "down", kube], penv),
    });
    // Its storage's mounts and files go with it.
    cleanupPodman = () =>
      b.sh("podman", [...p, "system", "reset", "--force"], penv).then(() => {}, () => {});
  } else {
    console.error("bench: no podman: the kube rows have no baseline");
  }

  try {
    const ups = new Map<string, number[]>(tools.map((t) => [t.label, []]));
    const downs = new Map<string, number[]>(tools.map((t) => [t.label, []]));
    for (let i = 0; i < b.runs + 1; i++) {
      for (const t of tools) {
        const u = await timed(t.up);
        const d = await timed(t.down);
        if (i > 0) {
          ups.get(t.label)!.push(u);
          downs.get(t.label)!.push(d);
        }
      }
    }
    // The same two commands while `rkl daemon` runs: thin clients it serves.
    const served = await b.whileServing(async () => {
      const u: number[] = [], d: number[] = [];
      for (let i = 0; i < b.runs + 1; i++) {
        const tu = await timed(play(rkl));
        const td = await timed(down(rkl));
        if (i > 0) {
          u.push(tu);
          d.push(td);
        }
      }
      return { up: b.stat(u), down: b.stat(d) };
    });
    if (!b.which("podman")) return;
    const pUp = b.stat(ups.get("podman")!), pDown = b.stat(downs.get("podman")!);
    const row = (name: string, ours: Stat, theirs: Stat, label: string) =>
      b.push({ name, rkl: ours, baseline: theirs, baselineLabel: label, goal: 0.5 });
    row("kube play, 3-replica Deployment", b.stat(ups.get("rkl")!), pUp, "podman kube play");
    if (before) {
      row(
        `kube play, 3-replica Deployment (before: ${beforeRepo})`,
        b.stat(ups.get("before")!),
        pUp,
        "podman kube play",
      );
    }
    row("kube play, 3-replica Deployment, daemon running", served.up, pUp, "podman kube play");
    row("kube down, 3-replica Deployment", b.stat(downs.get("rkl")!), pDown, "podman kube down");
    if (before) {
      row(
        `kube down, 3-replica Deployment (before: ${beforeRepo})`,
        b.stat(downs.get("before")!),
        pDown,
        "podman kube down",
      );
    }
    row(
      "kube down, 3-replica Deployment, daemon running",
      served.down,
      pDown,
      "podman kube down",
    );
  } finally {
    await cleanupPodman();
  }
}
