/** `rkl container` (alias `c`): one subcommand per action, each one src/ call. */
import type { Command } from "commander";
import type { LoadedContainer } from "../../src/spec/container.ts";

import { formatBytes } from "../../src/spec/quantity.ts";
import {
  type ContainerRecord,
  createContainer,
  exitReason,
  getContainer,
  listContainers,
  refresh,
  removeContainer,
  runContainer,
  startContainer,
  stopContainer,
} from "../../src/workloads/container.ts";
import type { Host } from "../../src/workloads/host.ts";
import { isPaused } from "../../src/workloads/pause.ts";
import { registerPause } from "./pause.ts";

import { ago, keyValues, table, write } from "../format.ts";
import type { Context } from "../app.ts";
import {
  execIn,
  networkOption,
  parseSeconds,
  printLogs,
  readSpecFile,
  whileCreating,
} from "./_shared.ts";

/**
 * The spec parser (yaml + zod, ~45 ms to load) is imported only by commands
 * that read a file; `ls`, `rm`, `state` and friends never pay for it.
 */
export async function loadContainerFile(
  file: string,
  warn: (m: string) => void,
): Promise<LoadedContainer> {
  const { text, baseDir } = readSpecFile(file);
  const [{ loadContainer }, { formatWarning }] = await Promise.all([
    import("../../src/spec/container.ts"),
    import("../../src/spec/source.ts"),
  ]);
  const loaded = loadContainer(text, file, { baseDir });
  for (const w of loaded.warnings) warn(formatWarning(w));
  return loaded;
}

function statusText(r: ContainerRecord, host?: Host): string {
  if (host && isPaused(host, r)) return "paused";
  return r.status === "exited" ? `exited (${r.exitCode ?? "?"})` : r.status;
}

/** Who made it: a compose project's service, a pod, or nobody (a plain container). */
function ownerText(r: ContainerRecord): string {
  const project = r.labels["com.docker.compose.project"];
  if (project) return `compose ${project}/${r.labels["com.docker.compose.service"]}`;
  return r.pod ? `pod ${r.pod}` : "-";
}

function portsText(r: ContainerRecord): string {
  return (r.network?.portMappings ?? []).map((m) =>
    `${m.hostIP ?? "0.0.0.0"}:${m.hostPort}->${m.containerPort}/${m.protocol}`
  )
    .join(", ");
}

/** The JSON shape of `state -o json` (stable; the record's internals are not part of it). */
export function containerState(host: Host, r: ContainerRecord) {
  const live = r.status === "running" || r.status === "created"
    ? host.cgroups.read(r.cgroupPath)
    : undefined;
  return {
    name: r.name,
    id: r.id,
    status: isPaused(host, r) ? "paused" : r.status,
    pid: r.pid ?? null,
    exitCode: r.exitCode ?? null,
    /** Why it exited, as the CRI says it (`OOMKilled`, `Completed`, `Error`); null unless exited. */
    reason: exitReason(host, r) ?? null,
    restarts: r.restarts ?? 0,
    ip: r.network?.ip ?? null,
    network: r.network?.name ?? "none",
    ports: r.network?.portMappings ?? [],
    limits: {
      cpuQuota: r.limits.cpuQuota ?? null,
      cpuPeriod: r.limits.cpuPeriod ?? null,
      cpuShares: r.limits.cpuShares ?? null,
      memory: r.limits.memoryLimit ?? null,
    },
    cgroup: { path: r.cgroupPath, ...(live ? { live } : {}) },
    created: r.createdAt,
    started: r.startedAt ?? null,
    finished: r.finishedAt ?? null,
    image: r.image,
    specFile: r.specFile,
    runtime: r.runtime.name,
    logPath: r.dirs.log,
    labels: r.labels,
  };
}

export function registerContainer(program: Command, ctx: Context): void {
  const c = program.command("container").alias("c").description("run and manage single containers")
    .enablePositionalOptions();

  c.command("run").argument("<file>", "container YAML").description(
    "create and start a container; prints its name",
  )
    .option("--network <name>", "CNI network, or 'none' for loopback only", "rkl0")
    .option("--strict-limits", "rootless: refuse limits that cannot apply instead of warning")
    .action(async (file: string, o: { network?: string; strictLimits?: boolean }) => {
      const host = ctx.host();
      const spec = await loadContainerFile(file, ctx.warn);
      const rec = await whileCreating(() =>
        runContainer(host, spec, {
          network: networkOption(o.network),
          strictLimits: o.strictLimits,
        })
      );
      write(`${rec.name}\n`);
    });

  c.command("create").argument("<file>", "container YAML").description(
    "create a container without starting it",
  )
    .option("--network <name>", "CNI network, or 'none' for loopback only", "rkl0")
    .option("--strict-limits", "rootless: refuse limits that cannot apply instead of warning")
    .action(async (file: string, o: { network?: string; strictLimits?: boolean }) => {
      const host = ctx.host();
      const spec = await loadContainerFile(file, ctx.warn);
      const rec = await whileCreating(() =>
        createContainer(host, spec, {
          network: networkOption(o.network),
          strictLimits: o.strictLimits,
        })
      );
      write(`${rec.name}\n`);
    });

  c.command("start").argument("<name>").description("start a created container").action(
    async (name: string) => {
      const rec = await startContainer(ctx.host(), name);
      write(`${rec.name}\n`);
    },
  );

  c.command("stop").argument("<name>").description("SIGTERM, wait up to -t seconds, then SIGKILL")
    .option("-t, --time <seconds>", "grace period", "10")
    .action(async (name: string, o: { time: string }) => {
      const rec = await stopContainer(ctx.host(), name, parseSeconds("--time", o.time), {
        byUser: true,
      });
      write(`${rec.name}\n`);
    });

  c.command("rm").alias("delete").argument("<name>").description(
    "remove a container and everything it holds",
  )
    .option("-f, --force", "stop it first when running")
    .action(async (name: string, o: { force?: boolean }) => {
      await removeContainer(ctx.host(), name, { force: o.force });
      write(`${name}\n`);
    });

  registerPause(c, ctx);

  c.command("list").alias("ls").description("list containers").option(
    "-o, --output <format>",
    "table or json",
    "table",
  )
    .option("-q, --quiet", "names only")
    .action(async (o: { output: string; quiet?: boolean }) => {
      const host = ctx.host();
      const recs = await listContainers(host);
      // Damaged records are listed, never fatal: `rm -f NAME` cleans them.
      const damaged = host.store.damaged("containers");
      if (o.output === "json") {
        const states = await Promise.all(recs.map((r) => containerState(host, r)));
        const bad = damaged.map((d) => ({ name: d.name, status: "unknown", damaged: d.reason }));
        write(JSON.stringify([...states, ...bad], null, 2) + "\n");
      } else if (o.quiet) {
        write([...recs, ...damaged].map((r) => `${r.name}\n`).join(""));
      } else {
        write(table(
          ["NAME", "STATUS", "PID", "IP", "PORTS", "CREATED", "OWNER"],
          recs.map((r) => [
            r.name,
            statusText(r, host),
            r.pid ? String(r.pid) : "-",
            r.network?.ip ?? (r.hostNetwork ? "host" : "-"),
            portsText(r) || "-",
            ago(r.createdAt),
            ownerText(r),
          ]).concat(
            damaged.map((d) => [d.name, `unknown (damaged: ${d.reason})`, "-", "-", "-", "-", "-"]),
          ),
        ));
      }
    });

  c.command("state").alias("inspect").argument("<name>").description("show a container's state")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (name: string, o: { output: string }) => {
      const host = ctx.host();
      const s = containerState(host, await refresh(host, getContainer(host, name)));
      if (o.output === "json") {
        write(JSON.stringify(s, null, 2) + "\n");
        return;
      }
      const lim = s.limits;
      const lines: [string, unknown][] = [
        ["Name", s.name],
        [
          "Status",
          s.status +
          (s.exitCode !== null
            ? ` (exit code ${s.exitCode}${s.reason ? `, ${s.reason}` : ""})`
            : ""),
        ],
        ["PID", s.pid ?? "-"],
        ["IP", s.ip ?? "-"],
        ["Network", s.network],
        ["Ports", portsText(getContainer(host, name)) || "-"],
        [
          "CPU",
          lim.cpuQuota
            ? `${lim.cpuQuota}/${lim.cpuPeriod} µs (${
              (lim.cpuQuota / (lim.cpuPeriod ?? 100000)).toFixed(2)
            } cpu)`
            : "unlimited",
        ],
        ["Memory", lim.memory ? formatBytes(lim.memory) : "unlimited"],
        ["Cgroup", s.cgroup.path],
        ["Created", s.created],
        ["Started", s.started ?? "-"],
        ["Finished", s.finished ?? "-"],
        ["Image", s.image],
        ["Runtime", s.runtime],
        ["Log", s.logPath],
      ];
      write(keyValues(lines, 10));
    });

  c.command("exec").argument("<name>").argument("<command...>").description(
    "run a command in a running container",
  )
    .option("-i, --interactive", "keep stdin open").option("-t, --tty", "allocate a terminal")
    .passThroughOptions()
    .action(
      async (name: string, command: string[], o: { interactive?: boolean; tty?: boolean }) => {
        const host = ctx.host();
        ctx.exitCode = await execIn(host, getContainer(host, name), command, o);
      },
    );

  c.command("logs").argument("<name>").description("print a container's output")
    .option("-f, --follow", "keep printing until the container exits")
    .option("--tail <n>", "only the last n lines")
    .option("--timestamps", "show each line's time")
    .action(async (name: string, o: { follow?: boolean; tail?: string; timestamps?: boolean }) => {
      const host = ctx.host();
      await printLogs(host, getContainer(host, name), o);
    });
}
