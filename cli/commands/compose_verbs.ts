/**
 * `rkl compose run|create|pull|kill|rm|top|port|images|wait|pause|unpause|cp`:
 * the compose verbs beyond up/down/ps/logs/start/stop/restart/exec
 * (src/workloads/compose/verbs.ts does the work).
 */
import type { Command } from "commander";
import { NotFoundError, UsageError } from "../../src/errors.ts";
import type { ComposeProject } from "../../src/spec/compose.ts";
import { composeStop, composeUp, requireProject } from "../../src/workloads/compose.ts";
import { humanSize } from "../../src/workloads/stats.ts";
import {
  checkServices,
  composeKill,
  composePause,
  composePort,
  composeRm,
  composeRunCreate,
  membersOf,
  splitImage,
  waitExit,
} from "../../src/workloads/compose/verbs.ts";
import {
  type ContainerRecord,
  quickRefresh,
  refresh,
  removeContainer,
} from "../../src/workloads/container.ts";
import { LABEL_NUMBER, LABEL_PROJECT, LABEL_SERVICE } from "../../src/workloads/compose/names.ts";
import type { Host } from "../../src/workloads/host.ts";
import { formatEntry, streamLog } from "../../src/workloads/logs.ts";
import { readExitCode } from "../../src/oci/conmon.ts";
import type { Context } from "../app.ts";
import { table, write } from "../format.ts";
import { cwd, stderr } from "../io.ts";
import { whileCreating } from "./_shared.ts";

type Load = () => Promise<ComposeProject>;

/** `-e K=V` (or `-e K`: the value from this environment), repeatable. */
function parseEnv(list: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of list) {
    const eq = e.indexOf("=");
    const k = eq < 0 ? e : e.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k)) {
      throw new UsageError(`-e ${JSON.stringify(e)}: give KEY=VALUE`);
    }
    const v = eq < 0 ? Deno.env.get(k) : e.slice(eq + 1);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** Prints a container's output as it comes until it exits. */
async function follow(host: Host, c: ContainerRecord): Promise<void> {
  const enc = new TextEncoder();
  await streamLog(c.dirs.log, (e) => {
    (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(enc.encode(formatEntry(e, {})));
  }, {
    follow: true,
    done: () =>
      readExitCode(c.dirs.exitDir, c.id, host.fs) !== undefined ||
      !host.store.get("containers", c.name),
  });
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerComposeVerbs(c: Command, ctx: Context, load: Load): void {
  c.command("run").argument("<service>").argument("[command...]").description(
    "run a one-off container of a service (its networks and volumes), print its output, exit with its code",
  )
    .passThroughOptions()
    .option("--rm", "remove the container when it exits")
    .option("-d, --detach", "print its name and return")
    .option("-e, --env <KEY=VALUE>", "set an environment variable (repeatable)", collect)
    .option("--name <name>", "the container's name (default: PROJECT-SERVICE-run-ID)")
    .option("--no-deps", "do not start the services it depends on")
    .action(
      async (
        service: string,
        command: string[],
        o: { rm?: boolean; detach?: boolean; env?: string[]; name?: string; deps: boolean },
      ) => {
        if (o.rm && o.detach) throw new UsageError("--rm and --detach cannot go together");
        const host = ctx.host();
        const project = await load();
        const env = parseEnv(o.env);
        const rec = await whileCreating(() =>
          composeRunCreate(host, project, service, {
            command,
            env,
            name: o.name,
            noDeps: !o.deps,
            warn: ctx.warn,
            log: (m) => stderr(`${m}\n`),
          })
        );
        if (o.detach) return write(`${rec.name}\n`);
        // ^C and SIGTERM go to the container, as docker compose run forwards them.
        const forward = (sig: "SIGINT" | "SIGTERM") => () => {
          host.runtimeFor(rec.runtime).kill(rec.id, sig).catch(() => {});
        };
        const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, forward(s)] as const);
        for (const [s, h] of handlers) Deno.addSignalListener(s, h);
        try {
          await follow(host, rec);
          ctx.exitCode = (await waitExit(host, rec)) ?? 1;
        } finally {
          for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
          if (o.rm) await removeContainer(host, rec.name, { force: true });
        }
      },
    );

  c.command("create").argument("[services...]").description(
    "create the services' containers without starting them",
  )
    .action(async (services: string[]) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      await whileCreating(() =>
        composeUp(host, project, {
          services,
          noStart: true,
          warn: ctx.warn,
          log: (m) => stderr(`${m}\n`),
        })
      );
    });

  c.command("pull").argument("[services...]").description("pull the services' images")
    .option("-q, --quiet", "print nothing while pulling")
    .action(async (services: string[], o: { quiet?: boolean }) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      if (!host.images) throw new UsageError("this host has no image store");
      const seen = new Set<string>();
      for (const svc of project.services) {
        if (services.length && !services.includes(svc.name)) continue;
        if (seen.has(svc.image)) continue;
        seen.add(svc.image);
        if (svc.image.startsWith("/") || svc.image.startsWith(".")) {
          if (!o.quiet) stderr(`${svc.name}: ${svc.image} is a local bundle, nothing to pull\n`);
          continue;
        }
        const rec = await host.images.pull(svc.image, { quiet: o.quiet });
        if (!o.quiet) stderr(`${svc.name}: pulled ${svc.image} (${rec.id.slice(0, 19)})\n`);
      }
    });

  c.command("kill").argument("[services...]").description(
    "send a signal to the services' containers",
  )
    .option("-s, --signal <signal>", "the signal", "SIGKILL")
    .action(async (services: string[], o: { signal: string }) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      for (const n of await composeKill(host, project.name, services, o.signal)) {
        stderr(`killed ${n}\n`);
      }
    });

  c.command("rm").argument("[services...]").description(
    "remove the services' stopped containers",
  )
    .option("-f, --force", "do not ask (rkl never asks)")
    .option("-s, --stop", "stop running containers first")
    .option("-v, --volumes", "also remove their anonymous volumes")
    .action(
      async (services: string[], o: { force?: boolean; stop?: boolean; volumes?: boolean }) => {
        const host = ctx.host();
        const project = await load();
        checkServices(project, services);
        const removed = await composeRm(host, project.name, services, {
          stop: o.stop,
          volumes: o.volumes,
          stopFn: () => composeStop(host, project, services.length ? services : []),
        });
        if (removed.length === 0) stderr("no stopped containers\n");
        for (const n of removed) stderr(`removed ${n}\n`);
      },
    );

  c.command("top").argument("[services...]").description("the processes of each running container")
    .action(async (services: string[]) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      for (const m of membersOf(host, project.name, services)) {
        const live = await quickRefresh(host, m);
        if (live.status !== "running") continue;
        const pids = host.cgroups.pids(live.cgroupPath);
        if (pids.length === 0) continue;
        const out = await new Deno.Command("ps", {
          args: ["-o", "uid,pid,ppid,c,stime,tty,time,args", "-p", pids.join(",")],
          stdout: "piped",
          stderr: "null",
        }).output();
        write(`${live.name}\n${new TextDecoder().decode(out.stdout)}\n`);
      }
    });

  c.command("port").argument("<service>").argument("<port>").description(
    "the host address a service's port is published on",
  )
    .option("--protocol <proto>", "tcp or udp", "tcp")
    .option("--index <n>", "which replica (default 1)")
    .action(async (service: string, port: string, o: { protocol: string; index?: string }) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, [service]);
      const p = Number(port.split("/")[0]);
      if (!Number.isInteger(p) || p < 1 || p > 65535) {
        throw new UsageError(`port ${JSON.stringify(port)}: give a number 1-65535`);
      }
      const proto = port.includes("/") ? port.split("/")[1] : o.protocol;
      if (proto !== "tcp" && proto !== "udp") {
        throw new UsageError(`--protocol ${JSON.stringify(proto)}: tcp or udp`);
      }
      const index = o.index === undefined ? undefined : Number(o.index);
      if (index !== undefined && !(Number.isInteger(index) && index >= 1)) {
        throw new UsageError(`--index ${JSON.stringify(o.index)}: a replica number from 1`);
      }
      const addr = composePort(host, project.name, service, p, { protocol: proto, index });
      if (!addr) {
        throw new NotFoundError(
          `Cannot find port ${p}/${proto} of ${service}: it is not published`,
        );
      }
      write(`${addr}\n`);
    });

  c.command("images").argument("[services...]").description("the images the containers use")
    .action(async (services: string[]) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      const rows = membersOf(host, project.name, services).map((m) => {
        const { repository, tag } = splitImage(m.image);
        const img = m.imageId ? host.images?.store.find(m.imageId) : undefined;
        return [
          m.name,
          repository,
          tag,
          m.imageId ? m.imageId.replace(/^sha256:/, "").slice(0, 12) : "-",
          img?.size !== undefined ? humanSize(img.size) : "-",
        ];
      });
      write(table(["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"], rows));
    });

  c.command("events").argument("[services...]").description(
    "what happens to the project's containers, as it happens (until ^C)",
  ).option("--json", "one JSON object per line (docker compose's shape)")
    .action(async (services: string[], o: { json?: boolean }) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      const [{ followEvents }, { formatEvent }] = await Promise.all([
        import("./events.ts"),
        import("../../src/workloads/events.ts"),
      ]);
      await followEvents(host, {
        print: (events) => {
          for (const e of events) {
            // The project's containers by their compose labels, in records and log alike.
            const service = e.attributes[LABEL_SERVICE];
            if (e.type !== "container" || e.attributes[LABEL_PROJECT] !== project.name) continue;
            if (services.length && !services.includes(service)) continue;
            write(
              o.json
                ? JSON.stringify({
                  time: e.time,
                  type: e.type,
                  action: e.action,
                  id: e.actor,
                  service,
                  attributes: e.attributes,
                }) + "\n"
                : formatEvent(e) + "\n",
            );
          }
        },
      });
    });

  c.command("wait").argument("<services...>").description(
    "wait until the services' containers stop; print each exit code",
  )
    .action(async (services: string[]) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      const members = membersOf(host, project.name, services);
      if (members.length === 0) {
        throw new NotFoundError(`Cannot wait: no containers of ${services.join(", ")}`);
      }
      let first: number | undefined;
      for (const m of members) {
        const code = await waitExit(host, m);
        write(`${m.name} ${code ?? "?"}\n`);
        first ??= code;
      }
      ctx.exitCode = first ?? 1;
    });

  c.command("cp").argument("<src>", "SERVICE:PATH or a host path").argument(
    "<dest>",
    "SERVICE:PATH or a host path",
  ).description(
    "copy files between a service's container and the host (container paths resolved inside its root)",
  )
    .option("--index <n>", "which replica (from: default 1; to: default every replica)")
    .option("-L, --follow-link", "follow a symlink at the source (inside the container's root)")
    .action(async (src: string, dest: string, o: { index?: string; followLink?: boolean }) => {
      const host = ctx.host();
      const { splitCpArg, copyFromContainer, copyToContainer } = await import(
        "../../src/workloads/copy.ts"
      );
      const a = splitCpArg(src), b = splitCpArg(dest);
      if ((a.container === undefined) === (b.container === undefined)) {
        throw new UsageError("cp copies between a service and the host: one side is SERVICE:PATH");
      }
      const index = o.index === undefined ? undefined : Number(o.index);
      if (index !== undefined && !(Number.isInteger(index) && index >= 1)) {
        throw new UsageError(`--index ${JSON.stringify(o.index)}: a replica number from 1`);
      }
      const service = (a.container ?? b.container)!;
      const project = await load();
      checkServices(project, [service]);
      const members = membersOf(host, project.name, [service]);
      // From a service: one replica (the first unless --index); into it: each, as docker compose.
      const chosen = index !== undefined
        ? members.filter((m) => Number(m.labels[LABEL_NUMBER]) === index)
        : a.container !== undefined
        ? members.slice(0, 1)
        : members;
      if (chosen.length === 0) {
        throw new NotFoundError(
          `Cannot copy: service ${JSON.stringify(service)} has no container${
            index !== undefined ? ` number ${index}` : ""
          } (run \`rkl compose up\` first)`,
        );
      }
      const abs = (p: string) => p.startsWith("/") ? p : `${cwd()}/${p}`;
      for (const m of chosen) {
        const live = await refresh(host, m);
        const r = a.container !== undefined
          ? copyFromContainer(host.sys, live, {
            path: a.path,
            dest: abs(b.path),
            followLink: o.followLink,
          }, host.fs)
          : copyToContainer(host.sys, live, { src: abs(a.path), path: b.path }, host.fs);
        for (const s of r.skipped) {
          stderr(`warning: skipped ${s}: not a file, directory or link\n`);
        }
      }
    });

  for (const [verb, on] of [["pause", true], ["unpause", false]] as const) {
    c.command(verb).argument("[services...]").description(
      on ? "freeze the services' containers (cgroup freezer)" : "thaw paused containers",
    ).action(async (services: string[]) => {
      const host = ctx.host();
      const project = await load();
      checkServices(project, services);
      requireProject(host, project.name);
      for (const n of await composePause(host, project.name, services, on)) {
        stderr(`${on ? "paused" : "unpaused"} ${n}\n`);
      }
    });
  }
}
