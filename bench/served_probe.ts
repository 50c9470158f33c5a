/**
 * A probe for the served docker-style rows (issue 33), not part of `deno task
 * bench`: one `rkl daemon` (no CRI, its own root and run root) per code tree
 * given, and podman 4.3 on a private root with PODMAN=1, timed in a new random
 * order each round, so every tree and podman see the same load. Root only,
 * under both locks:
 *
 *   flock /tmp/rkl-bench.lock flock /tmp/rkl-e2e.lock \
 *     deno run -A bench/served_probe.ts run|stats|ps N TREE... (TREE: a checkout of rkl)
 *
 * `run`: `rkl run -d --name drun --network none busybox sleep 3600` (then an
 * untimed `rm -f`); `stats`: `rkl stats --no-stream` with 20 running
 * containers; `ps`: `rkl ps` with 50. TRACE=1 gives each daemon RKL_TRACE=1 (logs kept in the temp
 * dir printed at the end), DFLAGS adds `deno run` flags to the daemons,
 * SAVECONF=1 copies the first container's config.json into the temp dir.
 */
import { dirTar, pushImage, startRegistry } from "../tests/_helpers/oci.ts";
import { DAEMON_DENO_FLAGS, DAEMON_ENV } from "../src/daemon/install.ts";
import { podmanEnv } from "./podman.ts";

const [mode, nArg, ...trees] = Deno.args;
const N = Number(nArg);
if (!["run", "stats", "ps"].includes(mode) || !(N > 0) || trees.length === 0 || Deno.uid() !== 0) {
  console.error("usage (as root): deno run -A bench/served_probe.ts run|stats|ps N TREE...");
  Deno.exit(2);
}
const BUSYBOX = new URL("../bundles/busybox", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "rkl-served-probe-" });
const withPodman = Deno.env.get("PODMAN") === "1";
const trace = Deno.env.get("TRACE") === "1";
const deno = Deno.execPath();

async function sh(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout);
}

const reg = await startRegistry(`${dir}/registry`);
const daemons: Deno.ChildProcess[] = [];
const P = ["--root", `${dir}/podman/root`, "--runroot", `${dir}/podman/run`];
const conf = `${dir}/containers.conf`;
const penv = await podmanEnv(conf);
const podman = (a: string[]) => sh("podman", [...P, ...a], penv);
const pimg = "localhost/rkl-busybox:bench";
/** Containers running while `stats` (20) or `ps` (50) is timed, as the bench rows have them. */
const STATS_N = mode === "ps" ? 50 : 20;
try {
  await pushImage(reg.url, "library/busybox", "latest", {
    layers: [await dirTar(`${BUSYBOX}/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  await Deno.writeTextFile(
    `${dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
  );
  const envs = trees.map((_, k) => ({
    RKL_ROOT: `${dir}/t${k}/root`,
    RKL_RUN_ROOT: `${dir}/t${k}/run`,
    RKL_CGROUP_PARENT: `rklprobe${k}`,
    RKL_REGISTRIES_CONFIG: `${dir}/registries.yaml`,
  }));
  const rkl = (k: number, a: string[]) =>
    sh(deno, ["run", "-A", "--quiet", `${trees[k]}/cli/main.ts`, ...a], envs[k]);
  for (let k = 0; k < trees.length; k++) {
    await rkl(k, ["pull", "-q", "busybox"]);
    if (mode !== "run") {
      for (let i = 0; i < STATS_N; i++) {
        await rkl(k, [
          "run",
          "-d",
          "--name",
          `st${i}`,
          "--network",
          "none",
          "busybox",
          "sleep",
          "3600",
        ]);
      }
    }
    Deno.mkdirSync(`${dir}/t${k}/manifests`, { recursive: true });
    const log = await Deno.open(`${dir}/t${k}/daemon.log`, { write: true, create: true });
    daemons.push(
      new Deno.Command(deno, {
        args: [
          "run",
          ...DAEMON_DENO_FLAGS,
          ...(Deno.env.get("DFLAGS") ?? "").split(" ").filter(Boolean).map((f) =>
            f.replace("TREE", String(k))
          ),
          "-A",
          "--quiet",
          `${trees[k]}/cli/main.ts`,
          "daemon",
          "--manifests",
          `${dir}/t${k}/manifests`,
          "--network",
          "none",
          "--no-cri",
        ],
        env: { ...envs[k], ...DAEMON_ENV, ...(trace ? { RKL_TRACE: "1" } : {}) },
        stdin: "null",
        stdout: "null",
        stderr: log.writable ? "piped" : "null",
      }).spawn(),
    );
    const d = daemons[daemons.length - 1];
    d.stderr.pipeTo(log.writable).catch(() => {});
    for (let i = 0; i < 200; i++) {
      try {
        if (Deno.lstatSync(`${dir}/t${k}/run/cli.sock`).isSocket) break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (withPodman) {
    await sh("sh", [
      "-c",
      `tar -C ${BUSYBOX}/rootfs -c . | podman ${
        P.join(" ")
      } import --change "ENV PATH=/bin:/sbin" - ${pimg}`,
    ], penv);
    if (mode !== "run") {
      for (let i = 0; i < STATS_N; i++) {
        await podman([
          "run",
          "-d",
          "--name",
          `pst${i}`,
          "--network",
          "none",
          pimg,
          "sleep",
          "3600",
        ]);
      }
    }
  }
  const labels = [...trees, ...(withPodman ? ["podman"] : [])];
  const xs: number[][] = labels.map(() => []);
  const one = async (j: number) => {
    const t0 = performance.now();
    if (j < trees.length) {
      if (mode === "run") {
        await rkl(j, [
          "run",
          "-d",
          "--name",
          "drun",
          "--network",
          "none",
          "busybox",
          "sleep",
          "3600",
        ]);
      } else await rkl(j, mode === "ps" ? ["ps"] : ["stats", "--no-stream"]);
    } else {
      if (mode === "run") {
        await podman(["run", "-d", "--name", "prun", "--network", "none", pimg, "sleep", "3600"]);
      } else await podman(mode === "ps" ? ["ps"] : ["stats", "--no-stream"]);
    }
    const t = performance.now() - t0;
    if (mode === "run") {
      if (j < trees.length && Deno.env.get("SAVECONF") === "1") {
        await sh("sh", [
          "-c",
          `cp $(find ${dir}/t${j} -name config.json -path '*drun*' | head -1) ${dir}/config_t${j}.json; ls ${dir}/t${j}/root/containers >${dir}/ls_t${j}.txt`,
        ]).catch((e) => console.error(e));
      }
      if (j < trees.length) await rkl(j, ["rm", "-f", "drun"]);
      else await podman(["rm", "-f", "-t", "0", "prun"]);
    }
    return t;
  };
  for (let i = 0; i < N + 1; i++) {
    const order = labels.map((_, j) => j).sort(() => Math.random() - 0.5);
    for (const j of order) {
      const t = await one(j);
      if (i > 0) xs[j].push(t);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const pm = withPodman ? med(xs[labels.length - 1]) : NaN;
  for (let j = 0; j < labels.length; j++) {
    const m = med(xs[j]);
    console.log(
      `${mode} ${labels[j].padEnd(28)} median ${m.toFixed(1)} ms  min ${
        Math.min(...xs[j]).toFixed(1)
      }  ratio ${(m / pm).toFixed(3)}  n=${xs[j].length}`,
    );
  }
  if (trace) console.log(`logs in ${dir}/t*/daemon.log`);
} finally {
  for (const d of daemons) {
    try {
      d.kill("SIGTERM");
    } catch { /* gone */ }
    await d.status;
  }
  for (let k = 0; k < trees.length; k++) {
    const env = {
      RKL_ROOT: `${dir}/t${k}/root`,
      RKL_RUN_ROOT: `${dir}/t${k}/run`,
      RKL_CGROUP_PARENT: `rklprobe${k}`,
    };
    const r = (a: string[]) =>
      sh(deno, ["run", "-A", "--quiet", `${trees[k]}/cli/main.ts`, ...a], env);
    await r(["rm", "-f", "drun"]).catch(() => {});
    for (let i = 0; i < STATS_N; i++) await r(["rm", "-f", `st${i}`]).catch(() => {});
    await r(["image", "prune", "-a"]).catch(() => {});
  }
  if (withPodman) {
    await podman(["rm", "-a", "-f", "-t", "0"]).catch(() => {});
    await podman(["rmi", "-a", "-f"]).catch(() => {});
    await sh("sh", ["-c", `umount -R ${dir}/podman/root/overlay 2>/dev/null; true`]);
  }
  await reg.stop();
  if (Deno.env.get("KEEP") !== "1") {
    await sh("sh", [
      "-c",
      `umount -R ${dir}/t*/root/* 2>/dev/null; rm -rf ${dir}/podman ${dir}/registry; true`,
    ]);
  }
  console.log(`dir ${dir}`);
}
