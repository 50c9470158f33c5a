/** `rkl daemon` (alias `rkl pod daemon`): static pods from a manifests directory, and its install. */
import type { Command } from "commander";
import {
  daemonAlive,
  DEFAULT_MANIFESTS,
  type LoadPodsFn,
  readStatus,
  runDaemon,
} from "../../src/daemon/daemon.ts";
import {
  formatCheck,
  installPaths,
  preflight,
  tmpfilesEntry,
  unitFile,
} from "../../src/daemon/install.ts";
import { listPods, type PodRecord } from "../../src/workloads/pod.ts";
import { UsageError } from "../../src/errors.ts";
import { parseMetricsAddress, startMetrics } from "../../src/daemon/metrics.ts";
import type { Context } from "../app.ts";
import { table, write } from "../format.ts";
import { networkOption } from "./_shared.ts";
import { selfArgv } from "../self.ts";
import { VERSION } from "../version.ts";
import { COMMIT } from "../build_info.ts";

/** The manifests' parser, its modules loaded at the first manifest (LoadPodsFn's `prepare`). */
function podLoader(): LoadPodsFn {
  let load: typeof import("../../src/spec/pod.ts").loadPods | undefined;
  const fn: LoadPodsFn = (text: string, file: string) => {
    if (!load) throw new Error("the manifest parser is not loaded yet");
    return load(text, file);
  };
  fn.prepare = async () => {
    load ??= (await import("../../src/spec/pod.ts")).loadPods;
  };
  return fn;
}

/** The CRI socket: `--cri-socket` (absolute, or `unix://` + absolute), else in the run root. */
export function criSocketPath(flag: string | undefined, runRoot: string): string {
  if (flag === undefined) return `${runRoot}/rkl.sock`;
  const path = flag.replace(/^unix:\/\//, "");
  if (!path.startsWith("/") || path.split("/").includes("..")) {
    throw new UsageError(`--cri-socket ${JSON.stringify(flag)}: give an absolute path`);
  }
  return path;
}

function addRun(cmd: Command, ctx: Context): void {
  const d = DAEMON_DEFAULTS;
  cmd.option("--manifests <dir>", "static pod manifests", d.manifests)
    .option("--network <name>", "CNI network for the pods", d.network)
    .option("--relist <seconds>", "full rescan interval", d.relist)
    .option("--backoff <ms>", "first restart delay, doubled per restart (kubelet: 10 s)", d.backoff)
    .option("--backoff-max <ms>", "longest restart delay (kubelet: 5 min)", d.backoffMax)
    .option("--cri-socket <path>", "serve the CRI on this unix socket (default: RUN_ROOT/rkl.sock)")
    .option("--no-cri", "do not serve the CRI")
    .option("--no-cli", "do not serve CLI commands on RUN_ROOT/cli.sock (thin clients)")
    .option(
      "--pause-image <ref>",
      "the CRI sandboxes' pause image, pulled once (\"\": rkl's built-in pause)",
      d.pauseImage,
    )
    .option(
      "--runtime-handlers <names>",
      "more CRI runtime handler names (comma-separated) that run as rkl's own, as a RuntimeClass's handler",
    )
    .option(
      "--metrics <addr>",
      "serve Prometheus metrics on HOST:PORT (PORT: 127.0.0.1); off by default",
    )
    .option("--metrics-allow-remote", "let --metrics listen on an address that is not loopback")
    .action((o: DaemonRunOptions) => runDaemonCommand(ctx, o));
}

/** `rkl daemon`'s options, as commander (or cli/daemon_direct.ts) parses them. */
export interface DaemonRunOptions {
  manifests: string;
  network?: string;
  relist: string;
  backoff: string;
  backoffMax: string;
  criSocket?: string;
  cri: boolean;
  cli: boolean;
  pauseImage: string;
  runtimeHandlers?: string;
  metrics?: string;
  metricsAllowRemote?: boolean;
}

/** The defaults of the options above that have one. */
export const DAEMON_DEFAULTS = {
  manifests: DEFAULT_MANIFESTS,
  network: "rkl0",
  relist: "5",
  backoff: "10000",
  backoffMax: "300000",
  pauseImage: "registry.k8s.io/pause:3.10",
  cri: true,
  cli: true,
};

/** Runs the daemon until SIGINT or SIGTERM (`rkl daemon`'s action). */
export async function runDaemonCommand(ctx: Context, o: DaemonRunOptions): Promise<void> {
  // The unit's note to the launcher: not for the helpers this daemon starts.
  Deno.env.delete("RKL_DAEMON_DENO_FLAGS");
  const baseMs = Number(o.backoff);
  const maxMs = Number(o.backoffMax);
  if (!(baseMs >= 0) || !(maxMs >= baseMs)) {
    throw new UsageError("--backoff and --backoff-max must be milliseconds, max >= base");
  }
  const runtimeHandlers = (o.runtimeHandlers ?? "").split(",").filter(Boolean);
  for (const h of runtimeHandlers) {
    // A RuntimeClass's handler is a DNS label.
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(h)) {
      throw new UsageError(`--runtime-handlers: ${JSON.stringify(h)} is not a DNS label`);
    }
  }
  const metricsAt = o.metrics === undefined
    ? undefined
    : parseMetricsAddress(o.metrics, o.metricsAllowRemote);
  const host = ctx.host();
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => ac.abort());
  }
  const manifests = o.manifests.startsWith("/") ? o.manifests : `${Deno.cwd()}/${o.manifests}`;
  // The same checks as `rkl doctor`: what is missing is said once, at start.
  for (const c of preflight()) {
    if (!c.ok) console.error(`rkl daemon: preflight: ${formatCheck(c)}`);
  }
  console.error(`rkl daemon: watching ${manifests}`);
  const metrics = metricsAt &&
    startMetrics(host, metricsAt, {
      version: VERSION,
      log: (m) => console.error(`rkl daemon: ${m}`),
    });
  await runDaemon(host, {
    onCriCall: metrics?.onCriCall,
    manifests,
    network: networkOption(o.network),
    loadPods: podLoader(),
    relistMs: Number(o.relist) * 1000,
    backoff: { baseMs, maxMs },
    signal: ac.signal,
    log: (m) => console.error(`rkl daemon: ${m}`),
    criSocket: o.cri ? criSocketPath(o.criSocket, host.paths.runRoot) : undefined,
    pauseImage: o.pauseImage,
    runtimeHandlers,
    version: VERSION,
    serveCli: o.cli
      ? async () =>
        (await import("../serve.ts")).serveCli(host, {
          build: `${VERSION}+${COMMIT}`,
          log: (m) => console.error(`rkl daemon: ${m}`),
        })
      : undefined,
  }).finally(() => metrics?.close());
}

export function registerDaemon(program: Command, ctx: Context): void {
  const d = program.command("daemon").description(
    "keep the pods of a manifests directory running (static pods)",
  )
    .enablePositionalOptions();
  addRun(d, ctx);
  // rk8s spells it `rkl pod daemon`.
  const pod = program.commands.find((c) => c.name() === "pod");
  if (pod) addRun(pod.command("daemon").description("same as `rkl daemon`"), ctx);

  d.command("status").description("the daemon's pods, their source files, hashes and errors")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (o: { output: string }) => {
      const host = ctx.host();
      const st = readStatus(host);
      const pods = await listPods(host);
      const records = new Map(host.store.list<PodRecord>("pods").map((p) => [p.name, p]));
      const rows = pods.filter((p) => records.get(p.name)?.static).map((p) => ({
        name: p.name,
        file: records.get(p.name)!.static!.file,
        hash: records.get(p.name)!.static!.hash,
        phase: p.phase,
        restarts: p.containers.reduce((a, c) => a + c.restarts, 0),
        lastError: st?.pods[p.name]?.lastError ?? null,
        working: st?.pods[p.name]?.working ?? null,
      }));
      // The status file outlives a daemon that was killed: believe it only while its pid is that daemon.
      const alive = st !== undefined && daemonAlive(st.pid, st.pidStart);
      if (o.output === "json") {
        return write(
          JSON.stringify({ daemon: st ? { ...st, running: alive } : null, pods: rows }, null, 2) +
            "\n",
        );
      }
      if (st && alive) {
        write(`daemon pid ${st.pid}, watching ${st.manifests}, last sync ${st.lastSync}\n`);
      } else if (st) {
        write(`daemon: not running (pid ${st.pid} is gone; its last sync was ${st.lastSync})\n`);
      } else write("daemon: no status (not running under this --run-root)\n");
      write(
        table(
          ["POD", "FILE", "HASH", "PHASE", "RESTARTS", "WORKING", "LAST ERROR"],
          rows.map((r) => [
            r.name,
            r.file,
            r.hash,
            r.phase,
            String(r.restarts),
            alive ? r.working ?? "-" : "-",
            r.lastError ?? "-",
          ]),
        ),
      );
      // Each error already starts with FILE:LINE:COL.
      for (const error of Object.values(st?.errors ?? {})) write(`error: ${error}\n`);
    });

  d.command("install").description(
    "install the systemd unit, tmpfiles entry and manifests dir; run preflight checks",
  )
    .option(
      "--bin <path>",
      "the rkl binary the unit runs (default: this rkl; from a checkout, deno run)",
    )
    .option("--manifests <dir>", "static pod manifests", DEFAULT_MANIFESTS)
    .option("--user", "a systemd user unit for this user's rootless rkl (~/.config/systemd/user)")
    .action(async (o: { bin?: string; manifests: string; user?: boolean }) => {
      if (o.bin !== undefined && !o.bin.startsWith("/")) {
        throw new UsageError(`--bin ${JSON.stringify(o.bin)} must be an absolute path`);
      }
      const bin = o.bin ?? selfArgv();
      if (o.user) {
        const { installUserUnit } = await import("../rootless_daemon.ts");
        return installUserUnit(bin, o.manifests === DEFAULT_MANIFESTS ? undefined : o.manifests);
      }
      const host = ctx.host();
      const INSTALL_PATHS = installPaths(Deno.env.get("RKL_INSTALL_ROOT"));
      const checks = preflight();
      for (const c of checks) write(`${formatCheck(c)}\n`);
      Deno.mkdirSync(o.manifests, { recursive: true });
      Deno.mkdirSync(INSTALL_PATHS.unit.slice(0, INSTALL_PATHS.unit.lastIndexOf("/")), {
        recursive: true,
      });
      Deno.writeTextFileSync(
        INSTALL_PATHS.unit,
        unitFile({ bin, manifests: o.manifests, runRoot: host.paths.runRoot }),
      );
      Deno.mkdirSync(INSTALL_PATHS.tmpfiles.slice(0, INSTALL_PATHS.tmpfiles.lastIndexOf("/")), {
        recursive: true,
      });
      Deno.writeTextFileSync(INSTALL_PATHS.tmpfiles, tmpfilesEntry(host.paths.runRoot));
      write(
        `wrote ${INSTALL_PATHS.unit} and ${INSTALL_PATHS.tmpfiles}; then: systemctl daemon-reload && systemctl enable --now rkl\n`,
      );
      if (checks.some((c) => c.required && !c.ok)) ctx.exitCode = 1;
    });

  d.command("uninstall").description("remove what install wrote (the manifests dir stays)")
    .option("--user", "the user unit that install --user wrote")
    .action(async (o: { user?: boolean }) => {
      const paths = installPaths(Deno.env.get("RKL_INSTALL_ROOT"));
      const user = o.user
        ? (await import("../../src/daemon/install_user.ts")).userInstallPaths(Deno.env.toObject())
        : undefined;
      for (const f of user ? [user.unit] : [paths.unit, paths.tmpfiles]) {
        try {
          Deno.removeSync(f);
          write(`removed ${f}\n`);
        } catch { /* not there */ }
      }
    });
}
