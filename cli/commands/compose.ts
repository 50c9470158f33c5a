/** `rkl compose`: compose-spec applications on rkl containers. */
import type { Command } from "commander";
import { SpecError, UsageError } from "../../src/errors.ts";
import type { ComposeProject } from "../../src/spec/compose.ts";
import { parseDotEnv } from "../../src/spec/interpolate.ts";
import {
  composeDown,
  composeStop,
  composeUp,
  LABEL_NUMBER,
  LABEL_SERVICE,
  projectContainers,
  requireProject,
  serviceContainer,
  withRestartDependents,
} from "../../src/workloads/compose.ts";
import {
  type ContainerRecord,
  quickRefresh,
  startContainer,
} from "../../src/workloads/container.ts";
import { readExitCode } from "../../src/oci/conmon.ts";
import type { Host } from "../../src/workloads/host.ts";
import { formatEntry, streamLog } from "../../src/workloads/logs.ts";
import type { Context } from "../app.ts";
import { ago, table, write } from "../format.ts";
import { execIn, parseSeconds, readInput, whileCreating } from "./_shared.ts";
import {
  FileReadError,
  MAX_INPUT_BYTES,
  readBounded,
  readTextBounded,
} from "../../src/sys/readfile.ts";
import { absolute, cwd, environment, stderr } from "../io.ts";
import { registerComposeVerbs } from "./compose_verbs.ts";

const DEFAULT_FILES = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

interface ComposeFlags {
  file?: string[];
  projectName?: string;
  profile?: string[];
}

const OVERRIDE_FILES = [
  "compose.override.yaml",
  "compose.override.yml",
  "docker-compose.override.yaml",
  "docker-compose.override.yml",
];

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** `KEY=VALUE` lines of DIR/.env; {} when there is none, an error when it cannot be read. */
function readDotEnv(dir: string): Record<string, string> {
  try {
    return parseDotEnv(readTextBounded(`${dir}/.env`, { max: MAX_INPUT_BYTES }));
  } catch (e) {
    // No .env is fine; one that cannot be read (a FIFO, /dev/zero, too big) is not.
    if (!(e instanceof FileReadError)) throw e;
    if (!e.notFound) throw new SpecError({ file: e.path }, `Cannot read file: ${e.reason}`);
    return {};
  }
}

/**
 * Finds, reads and loads the compose files (yaml + zod loaded only here), as
 * docker compose does: `-f` files; else COMPOSE_FILE (split on
 * COMPOSE_PATH_SEPARATOR, default ':'); else the first of compose.yaml, ... in
 * the working directory with its compose.override.yaml (or .yml, or
 * docker-compose.override.*) after it. COMPOSE_* variables come from the
 * environment, else from the project directory's `.env`.
 */
export async function loadProject(
  flags: ComposeFlags,
  warn: (m: string) => void,
): Promise<ComposeProject> {
  let files = flags.file ?? [];
  // Without -f the project directory is the working directory: its .env may name the files.
  let dotenv = files.length === 0 ? readDotEnv(cwd()) : {};
  const outer = environment();
  if (files.length === 0) {
    const listed = outer.COMPOSE_FILE ?? dotenv.COMPOSE_FILE;
    if (listed) {
      const sep = outer.COMPOSE_PATH_SEPARATOR ?? dotenv.COMPOSE_PATH_SEPARATOR ?? ":";
      files = listed.split(sep || ":").filter(Boolean);
      for (const f of files) {
        if (!isFile(absolute(f))) {
          throw new UsageError(`Cannot find a compose file: COMPOSE_FILE names ${absolute(f)}`);
        }
      }
    } else {
      const found = DEFAULT_FILES.find((f) => isFile(absolute(f)));
      if (!found) {
        throw new UsageError(
          `Cannot find a compose file: none of ${DEFAULT_FILES.join(", ")} in ${cwd()}`,
        );
      }
      const override = OVERRIDE_FILES.find((f) => isFile(absolute(f)));
      files = override ? [found, override] : [found];
    }
  }
  const texts = files.map((file) => {
    const abs = absolute(file);
    return { file, text: readInput(file), dir: abs.slice(0, abs.lastIndexOf("/")) || "/" };
  });
  const dir = texts[0].dir;
  if (flags.file?.length) dotenv = readDotEnv(dir);
  const env = { ...dotenv, ...outer };
  const profiles = flags.profile?.length
    ? flags.profile
    : (env.COMPOSE_PROFILES ?? "").split(",").filter(Boolean);
  const [{ loadCompose }, { formatWarning }] = await Promise.all([
    import("../../src/spec/compose.ts"),
    import("../../src/spec/source.ts"),
  ]);
  const { project, warnings } = loadCompose(texts, {
    env,
    projectName: flags.projectName ?? env.COMPOSE_PROJECT_NAME,
    dir,
    profiles,
    // An env_file: undefined when missing; FileReadError when it is not a
    // regular file of at most 1 MiB (the loader names the line that asks for it).
    readFile: (path) => {
      try {
        return readTextBounded(path, { max: MAX_INPUT_BYTES });
      } catch (e) {
        if (e instanceof FileReadError && e.notFound) return undefined;
        throw e;
      }
    },
  });
  for (const w of warnings) warn(formatWarning(w));
  return project;
}

function statusText(c: ContainerRecord, health?: string): string {
  const s = c.status === "exited" ? `exited (${c.exitCode ?? "?"})` : c.status;
  return health && c.status === "running" ? `${s} (${health})` : s;
}

function prefixOf(c: ContainerRecord, width: number): string {
  return `${`${c.labels[LABEL_SERVICE]}-${c.labels[LABEL_NUMBER]}`.padEnd(width)} | `;
}

/** Prints the logs of several containers, prefixed by service, like compose. */
async function followLogs(
  host: Host,
  members: ContainerRecord[],
  o: { follow?: boolean; tail?: number; since?: number; until?: number },
): Promise<void> {
  const width = Math.max(
    ...members.map((c) => `${c.labels[LABEL_SERVICE]}-${c.labels[LABEL_NUMBER]}`.length),
  );
  const enc = new TextEncoder();
  await Promise.all(members.map((c) =>
    streamLog(c.dirs.log, (e) => {
      const t = Date.parse(e.time);
      if ((o.since !== undefined && t < o.since) || (o.until !== undefined && t > o.until)) return;
      const bytes = enc.encode(formatEntry(e, { prefix: prefixOf(c, width) }));
      (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(bytes);
    }, {
      tail: o.tail,
      follow: o.follow,
      done: () =>
        readExitCode(c.dirs.exitDir, c.id) !== undefined || !host.store.get("containers", c.name),
    })
  ));
}

export function registerCompose(program: Command, ctx: Context): void {
  const c = program.command("compose").description("run compose applications")
    .enablePositionalOptions()
    .option(
      "-f, --file <file>",
      "compose file (repeatable; later ones override)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("-p, --project-name <name>", "project name (default: the directory name)")
    .option(
      "--profile <name>",
      "enable services of this profile (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    );
  const flags = () => c.opts<ComposeFlags>();

  c.command("up").argument("[services...]").description("create and start the services")
    .option("-d, --detach", "return once everything runs")
    .option("--remove-orphans", "remove containers of services no longer in the files")
    .option("--wait", "return once every container runs, and is healthy if it has a healthcheck")
    .option("--wait-timeout <seconds>", "how long --wait waits (default 60)")
    .option("--abort-on-container-exit", "stop every container when one exits; exit with its code")
    .option("--strict-limits", "rootless: refuse limits that cannot apply instead of warning")
    .action(async (
      services: string[],
      o: {
        strictLimits?: boolean;
        detach?: boolean;
        removeOrphans?: boolean;
        wait?: boolean;
        waitTimeout?: string;
        abortOnContainerExit?: boolean;
      },
    ) => {
      if (o.abortOnContainerExit && (o.detach || o.wait)) {
        throw new UsageError("--abort-on-container-exit cannot go with --detach or --wait");
      }
      const waitSec = parseSeconds("--wait-timeout", o.waitTimeout);
      const host = ctx.host();
      if (o.strictLimits && host.rootless) host.rootless.strictLimits = true;
      const project = await loadProject(flags(), ctx.warn);
      await whileCreating(() =>
        composeUp(host, project, {
          services,
          removeOrphans: o.removeOrphans,
          warn: ctx.warn,
          log: (m) => stderr(`${m}\n`),
        })
      );
      if (o.wait) {
        const { waitReady } = await import("../../src/workloads/compose/verbs.ts");
        return await waitReady(host, project.name, services, (waitSec ?? 60) * 1000);
      }
      if (o.detach) return;
      if (o.abortOnContainerExit) {
        const { firstExit } = await import("../../src/workloads/compose/verbs.ts");
        const members = projectContainers(host, project.name);
        const logs = followLogs(host, members, { follow: true });
        const first = await firstExit(host, members);
        stderr(`${first?.name} exited with code ${first?.code}; stopping the others\n`);
        await composeStop(host, project, []);
        await logs;
        ctx.exitCode = first?.code ?? 1;
        return;
      }
      // Attached: print every service's output until they all exit; Ctrl-C stops them.
      const stop = () => composeStop(host, project, []).then(() => Deno.exit(130));
      Deno.addSignalListener("SIGINT", stop);
      await followLogs(host, projectContainers(host, project.name), { follow: true });
      Deno.removeSignalListener("SIGINT", stop);
    });

  c.command("down").description("stop and remove the containers and networks")
    .option("-v, --volumes", "remove named volumes too")
    .option("--remove-orphans", "remove containers of services no longer in the files")
    .option("-t, --timeout <seconds>", "grace period before SIGKILL (default: stop_grace_period)")
    .action(async (o: { volumes?: boolean; removeOrphans?: boolean; timeout?: string }) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      const timeoutSec = parseSeconds("--timeout", o.timeout);
      for (const n of await composeDown(host, project, project.name, { ...o, timeoutSec })) {
        stderr(`removed ${n}\n`);
      }
    });

  c.command("ps").description("list the project's containers")
    .option("--services", "print the services' names only")
    .option(
      "--status <status>",
      "only containers in this state (created, running, paused, exited); repeatable",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("-a, --all", "also stopped ones").option(
      "-o, --output <format>",
      "table or json",
      "table",
    )
    .action(async (o: { all?: boolean; output: string; services?: boolean; status?: string[] }) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      const { readHealth } = await import("../../src/workloads/health.ts");
      const { composeStatus } = await import("../../src/workloads/compose/verbs.ts");
      for (const st of o.status ?? []) {
        if (!["created", "running", "paused", "exited"].includes(st)) {
          throw new UsageError(
            `--status ${JSON.stringify(st)}: created, running, paused or exited`,
          );
        }
      }
      const health = (m: ContainerRecord) =>
        m.healthcheck && m.status === "running" ? readHealth(host, m).status : undefined;
      const members = await Promise.all(
        projectContainers(host, project.name).map((m) => quickRefresh(host, m)),
      );
      const shown = members.filter((m) =>
        o.status?.length
          ? o.status.includes(composeStatus(host, m))
          : o.all || m.status === "running"
      );
      if (o.services) {
        const names = new Set(shown.map((m) => m.labels[LABEL_SERVICE]));
        return write(
          project.services.filter((s) => names.has(s.name)).map((s) => `${s.name}\n`).join(""),
        );
      }
      if (o.output === "json") {
        return write(
          JSON.stringify(
            shown.map((m) => ({
              name: m.name,
              service: m.labels[LABEL_SERVICE],
              status: composeStatus(host, m),
              exitCode: m.exitCode ?? null,
              health: health(m) ?? null,
              ip: m.network?.ip ?? null,
              ports: m.network?.portMappings ?? [],
            })),
            null,
            2,
          ) + "\n",
        );
      }
      write(table(
        ["NAME", "SERVICE", "STATUS", "IP", "PORTS", "CREATED"],
        shown.map((m) => [
          m.name,
          m.labels[LABEL_SERVICE],
          composeStatus(host, m) === "paused" ? "paused" : statusText(m, health(m)),
          m.network?.ip ?? "-",
          (m.network?.portMappings ?? []).map((p) =>
            `${p.hostIP ?? "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${p.protocol}`
          ).join(", ") || "-",
          ago(m.createdAt),
        ]),
      ));
    });

  c.command("logs").argument("[services...]").description(
    "print the services' output, prefixed by service",
  )
    .option("-f, --follow", "keep printing until the containers exit").option(
      "--tail <n>",
      "only the last n lines of each",
    )
    .option("--since <time>", "only lines since: RFC 3339, Unix seconds or a duration (10m)")
    .option("--until <time>", "only lines before: the same forms")
    .action(async (
      services: string[],
      o: { follow?: boolean; tail?: string; since?: string; until?: string },
    ) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      const { parseTimeArg } = await import("../../src/workloads/events.ts");
      const now = Date.now();
      const since = o.since === undefined ? undefined : parseTimeArg("--since", o.since, now);
      const until = o.until === undefined ? undefined : parseTimeArg("--until", o.until, now);
      const members = projectContainers(host, project.name).filter((m) =>
        services.length === 0 || services.includes(m.labels[LABEL_SERVICE])
      );
      if (members.length === 0) return;
      await followLogs(host, members, {
        follow: o.follow,
        tail: o.tail === undefined ? undefined : Number(o.tail),
        since,
        until,
      });
    });

  c.command("config").description("print the resolved project").option(
    "-o, --output <format>",
    "yaml or json",
    "yaml",
  )
    .action(async (o: { output: string }) => {
      const project = await loadProject(flags(), ctx.warn);
      if (o.output === "json") return write(JSON.stringify(project, null, 2) + "\n");
      const { stringify } = await import("yaml");
      write(stringify(project));
    });

  c.command("start").argument("[services...]").description("start existing containers").action(
    async (services: string[]) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      requireProject(host, project.name);
      for (const svc of project.services) {
        if (services.length && !services.includes(svc.name)) continue;
        for (
          const m of projectContainers(host, project.name).filter((m) =>
            m.labels[LABEL_SERVICE] === svc.name
          )
        ) {
          const live = await quickRefresh(host, m);
          if (live.status === "created") await startContainer(host, m.name);
          else if (live.status === "exited") {
            throw new UsageError(
              `container ${m.name} has exited; run \`rkl compose up\` to recreate it`,
            );
          }
        }
      }
    },
  );

  c.command("stop").argument("[services...]").description("stop the services")
    .option("-t, --timeout <seconds>", "grace period before SIGKILL (default: stop_grace_period)")
    .action(async (services: string[], o: { timeout?: string }) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      const timeoutSec = parseSeconds("--timeout", o.timeout);
      for (const n of await composeStop(host, project, services, { timeoutSec })) {
        stderr(`stopped ${n}\n`);
      }
    });

  c.command("restart").argument("[services...]").description("stop and recreate the services")
    .action(async (services: string[]) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      // Services that depend on these with `restart: true` restart with them.
      services = withRestartDependents(project, services);
      await composeStop(host, project, services);
      // A stopped rkl container is recreated by up (same config, same names, fresh process).
      await composeUp(host, project, { services, warn: ctx.warn, log: (m) => stderr(`${m}\n`) });
    });

  c.command("convert").description(
    "write the project as Kubernetes YAML: a Pod per service replica (or Deployments, Services and claims)",
  )
    .option("-o, --output <dir|->", "a directory (one FILE per service) or - for stdout", "-")
    .option("--workloads", "Deployment + Service + PersistentVolumeClaim, for a cluster")
    .action(async (o: { output: string; workloads?: boolean }) => {
      const host = ctx.host();
      const project = await loadProject(flags(), ctx.warn);
      const [{ convertProject }, { stringify }, { formatWarning }] = await Promise.all([
        import("../../src/workloads/convert.ts"),
        import("yaml"),
        import("../../src/spec/source.ts"),
      ]);
      const { services, warnings } = convertProject(project, {
        volumesDir: `${host.paths.root}/volumes`,
        workloads: o.workloads,
        fs: host.fs,
        readFile: (path) => {
          try {
            return readBounded(path, { max: MAX_INPUT_BYTES });
          } catch (e) {
            if (!(e instanceof FileReadError)) throw e;
            throw new SpecError({ file: path }, `Cannot read file: ${e.reason}`, { cause: e });
          }
        },
      });
      for (const w of warnings) ctx.warn(formatWarning(w));
      const text = (docs: Record<string, unknown>[]) =>
        docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
      const header = `# From ${
        project.files.join(", ")
      } by rkl compose convert (project ${project.name})\n`;
      if (o.output === "-") {
        write(header + text(services.flatMap((x) => x.docs)));
        return;
      }
      Deno.mkdirSync(o.output, { recursive: true });
      for (const x of services) {
        const file = `${o.output}/${x.name.replace(/[^A-Za-z0-9_.-]/g, "_")}.yaml`;
        Deno.writeTextFileSync(file, header + text(x.docs));
        write(`${file}\n`);
      }
    });

  registerComposeVerbs(c, ctx, () => loadProject(flags(), ctx.warn));

  c.command("exec").argument("<service>").argument("<command...>").description(
    "run a command in a service's first container",
  )
    // As docker compose: everything after the service is the command, `-c` included.
    .passThroughOptions()
    .option("-i, --interactive", "keep stdin open").option("-t, --tty", "allocate a terminal")
    .action(
      async (service: string, command: string[], o: { interactive?: boolean; tty?: boolean }) => {
        const host = ctx.host();
        const project = await loadProject(flags(), ctx.warn);
        ctx.exitCode = await execIn(
          host,
          serviceContainer(host, project.name, service),
          command,
          o,
        );
      },
    );
}
