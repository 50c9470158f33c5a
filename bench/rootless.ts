/**
 * Rootless rkl against rootless podman (issue 34), as the same unprivileged
 * user, in one run: `rkl container run` vs `podman run -d` (start to
 * running) and `rkl container rm -f` vs `podman rm -f -t 0` (running to
 * removed), with `--network none` and with each tool's default rootless
 * network (slirp4netns for both). BENCH_ONLY=rootless runs just these rows.
 *
 * The user is made for the run (tests/e2e/rootless_user.ts: subordinate
 * ranges, a home and an XDG_RUNTIME_DIR of its own) and removed after. Both
 * tools run the same image: busybox's rootfs imported into podman, saved
 * as a docker-archive and imported into rkl. podman gets a private storage
 * root and run root under the user's home (`--root`, `--runroot`), runc and
 * cgroupfs (as the root rows configure it), events to a file; rkl runs the
 * runtime a user's rkl picks (rkl's youki on cgroup v1 when installed, else
 * runc), or BENCH_ROOTLESS_RUNTIME as its RKL_RUNTIME, named in each row;
 * everything it
 * made is removed with `podman system reset` and the user's dirs. Each
 * iteration runs podman's command then rkl's (run, then rm), so the two
 * see the same load on the shared host; the first iteration warms caches
 * and is not counted. Then the same with the user's own `rkl daemon`
 * running (no CRI): rkl's commands are served by it through the thin client
 * (cli/remote.ts, the user's socket), the "served" rows.
 */
import {
  asUser,
  makeUser,
  openTun,
  processesOf,
  removeUser,
  rklArgv,
  rklAs,
  sh,
  spawnUserDaemon,
  type User,
  waitFor,
  writeAs,
} from "../tests/e2e/rootless_user.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export interface RootlessStat {
  median: number;
  p95: number;
  min: number;
  runs: number;
}

export interface RootlessRow {
  name: string;
  rkl: RootlessStat;
  baseline: RootlessStat;
  baselineLabel: string;
  goal: number;
}

function stat(xs: number[]): RootlessStat {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { median: at(0.5), p95: at(0.95), min: s[0], runs: s.length };
}

async function ok(u: User, argv: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await asUser(u, argv, env);
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} (as ${u.name}): exit ${r.code}: ${r.stderr}`);
  }
  return r.stdout;
}

function havePasta(): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(`${d}/pasta`).isFile;
    } catch {
      return false;
    }
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function rootlessRows(runs: number): Promise<RootlessRow[]> {
  // BENCH_ROOTLESS_RUNTIME=runc: the user's rkl (and its daemon) with RKL_RUNTIME=runc.
  const forced = Deno.env.get("BENCH_ROOTLESS_RUNTIME");
  const rklEnv: Record<string, string> = forced ? { RKL_RUNTIME: forced } : {};
  let u: User | undefined;
  let tunMode: number | undefined;
  const rows: RootlessRow[] = [];
  const pm = (user: User) => [
    "podman",
    "--root",
    `${user.home}/podman/root`,
    "--runroot",
    `${user.xdg}/podman-run`,
    "--storage-driver",
    "overlay",
  ];
  let penv: Record<string, string> = {};
  try {
    u = await makeUser();
    const user = u;
    tunMode = openTun();
    Deno.mkdirSync(`${user.home}/podman`, { recursive: true });
    const conf = `${user.home}/podman/containers.conf`;
    writeAs(
      user,
      conf,
      `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n` +
        `events_logfile_path = "${user.home}/podman/events.log"\n`,
    );
    await sh("chown", ["-R", `${user.uid}:${user.gid}`, `${user.home}/podman`]);
    penv = { CONTAINERS_CONF: conf };
    // The same image for both: busybox's rootfs into podman, then saved and imported into rkl.
    const rootfsTar = `${user.home}/busybox-rootfs.tar`;
    await sh("tar", ["-C", `${REPO}/bundles/busybox/rootfs`, "-cf", rootfsTar, "."]);
    await sh("chown", [`${user.uid}:${user.gid}`, rootfsTar]);
    const image = "localhost/rkl-busybox:bench";
    await ok(user, [
      ...pm(user),
      "import",
      "--change",
      "ENV PATH=/bin:/sbin",
      rootfsTar,
      image,
    ], penv);
    const archive = `${user.home}/busybox.tar`;
    await ok(user, [...pm(user), "save", "--format", "docker-archive", "-o", archive, image], penv);
    const rkl = (args: string[]) => ok(user, rklArgv(args), rklEnv);
    await rkl(["image", "import", archive]);
    Deno.removeSync(rootfsTar);
    Deno.removeSync(archive);

    /** The user's own `rkl daemon` (no CRI): the thin client's served path. Stop with stop(). */
    const startDaemon = async () => {
      const manifests = `${user.home}/manifests`;
      Deno.mkdirSync(manifests, { recursive: true });
      Deno.chownSync(manifests, user.uid, user.gid);
      const child = spawnUserDaemon(user, ["--no-cri", "--manifests", manifests], rklEnv);
      const log = new Response(child.stderr).text();
      const sock = `${user.xdg}/rkl/cli.sock`;
      await waitFor("the user's daemon", () => {
        try {
          return Deno.lstatSync(sock).isSocket === true;
        } catch {
          return false;
        }
      }, 60_000);
      return {
        log,
        async stop() {
          await new Deno.Command("kill", { args: ["-TERM", "--", `-${child.pid}`] }).output();
          await child.status;
        },
      };
    };

    // pasta: rkl's `--network pasta` against podman's slirp4netns (podman 4.3 has no pasta).
    const nets = ["none", "default", ...(havePasta() ? ["pasta" as const] : [])] as const;
    for (const served of [false, true]) {
      const daemon = served ? await startDaemon() : undefined;
      try {
        for (const net of nets) {
          const spec = `${user.home}/rb-${net}.yaml`;
          writeAs(
            user,
            spec,
            `name: rb\nimage: ${image}\nimagePullPolicy: Never\ncommand: [sleep, "3600"]\n`,
          );
          const rklNet = net === "default" ? [] : ["--network", net];
          const pmNet = net === "none" ? ["--network", "none"] : [];
          const pRun: number[] = [], pRm: number[] = [], rRun: number[] = [], rRm: number[] = [];
          let rklRuntime = "?";
          for (let i = 0; i < runs + 1; i++) {
            const a = await timed(() =>
              ok(
                user,
                [...pm(user), "run", "-d", ...pmNet, "--name", "pb", image, "sleep", "3600"],
                penv,
              )
            );
            const b = await timed(() => rkl(["container", "run", ...rklNet, spec]));
            const c = await timed(() => ok(user, [...pm(user), "rm", "-f", "-t", "0", "pb"], penv));
            const d = await timed(() => rkl(["container", "rm", "-f", "rb"]));
            if (i === 0) {
              // The warm-up also checks that both made what is timed (outside the timing).
              await ok(
                user,
                [...pm(user), "run", "-d", ...pmNet, "--name", "pc", image, "sleep", "60"],
                penv,
              );
              const st = await ok(
                user,
                [...pm(user), "inspect", "pc", "--format", "{{.State.Status}}"],
                penv,
              );
              if (st.trim() !== "running") {
                throw new Error(`bench: podman's container is ${st.trim()}`);
              }
              await ok(user, [...pm(user), "rm", "-f", "-t", "0", "pc"], penv);
              await rkl(["container", "run", ...rklNet, spec]);
              const list = await rkl(["container", "list"]);
              if (!/^rb +running/m.test(list)) throw new Error(`bench: rkl's container: ${list}`);
              // The runtime rkl picked (rkl's youki or runc on cgroup v1), for the rows' names.
              const state = await rkl(["container", "state", "rb"]);
              rklRuntime = /^Runtime: +(\S+)$/m.exec(state)?.[1] ?? "?";
              await rkl(["container", "rm", "-f", "rb"]);
            }
            if (i > 0) {
              pRun.push(a);
              rRun.push(b);
              pRm.push(c);
              rRm.push(d);
            }
          }
          const what = `${
            net === "none"
              ? "--network none"
              : net === "pasta"
              ? "rkl pasta vs podman slirp4netns"
              : "slirp4netns"
          }${served ? ", served by the user's daemon" : ""}`;
          rows.push({
            name: `rootless run, ${what} (rkl: ${rklRuntime}, podman: runc)`,
            rkl: stat(rRun),
            baseline: stat(pRun),
            baselineLabel: "podman run -d (rootless)",
            goal: 0.5,
          }, {
            name: `rootless rm -f, ${what} (rkl: ${rklRuntime}, podman: runc)`,
            rkl: stat(rRm),
            baseline: stat(pRm),
            baselineLabel: "podman rm -f -t 0 (rootless)",
            goal: 0.5,
          });
        }
      } finally {
        await daemon?.stop();
      }
      // The served rows must have been served: the daemon says so for each command.
      if (daemon) {
        const log = await daemon.log;
        const n = [...log.matchAll(/cli: served container (run|rm) \(exit 0\)/g)].length;
        if (n < 2 * nets.length * (runs + 1)) {
          throw new Error(`bench: the daemon served ${n} commands: ${log}`);
        }
      }
    }
    return rows;
  } finally {
    if (u) {
      const user = u;
      await asUser(user, [...pm(user), "system", "reset", "--force"], penv).catch(() => {});
      await rklAs(user, ["container", "rm", "-f", "rb"], rklEnv).catch(() => {});
      await waitFor(
        "podman's and rkl's pause processes only",
        () => processesOf(user.uid).every((p) => / (sleep infinity|catatonit|podman)/.test(p)),
        5_000,
      )
        .catch(() => {});
      await removeUser(user);
    }
    if (tunMode !== undefined) Deno.chmodSync("/dev/net/tun", tunMode);
  }
}

if (import.meta.main) {
  const rows = await rootlessRows(Number(Deno.env.get("BENCH_RUNS") ?? "10"));
  for (const r of rows) {
    console.log(
      `${r.name}: rkl ${r.rkl.median.toFixed(0)} ms (p95 ${r.rkl.p95.toFixed(0)}), ` +
        `${r.baselineLabel} ${r.baseline.median.toFixed(0)} ms (p95 ${
          r.baseline.p95.toFixed(0)
        }): ${(r.rkl.median / r.baseline.median).toFixed(2)}x (goal <= ${r.goal}x)`,
    );
  }
}
