/** ps, logs, inspect, port and top: what docker's verbs show of containers. */
import type { Command } from "commander";
import type { Context } from "../../app.ts";
import { ConflictError, NotFoundError, UsageError } from "../../../src/errors.ts";
import {
  type ContainerRecord,
  getContainer,
  listExitFiles,
  quickRefresh,
  refresh,
} from "../../../src/workloads/container.ts";
import { trace } from "../../../src/trace.ts";
import { write } from "../../format.ts";
import { printLogs } from "../_shared.ts";
import { containerState } from "../container.ts";
import { psFilter, type PsFlags, psSelect, psText } from "./ps_format.ts";
import { collect, type Verb } from "./shared.ts";

/** `rkl top`: the rows of `ps ARGS` whose PID is in the container's cgroup (docker's way). */
export function filterPs(psOut: string, pids: Set<number>): string {
  const lines = psOut.split("\n").filter((l) => l !== "");
  if (lines.length === 0) return "";
  const head = lines[0].trim().split(/\s+/);
  const col = head.indexOf("PID");
  if (col < 0) throw new UsageError("ps options must keep the PID column (try -ef or -o pid,args)");
  const rows = lines.slice(1).filter((l) => pids.has(Number(l.trim().split(/\s+/)[col])));
  return [lines[0], ...rows].join("\n") + "\n";
}

/** ps, logs, inspect, port, top, by name. */
export const INSPECT_VERBS: Record<string, Verb> = {
  ps(program: Command, ctx: Context): void {
    program.command("ps").description("list containers (running ones; -a all)")
      .option("-a, --all", "also created and exited containers")
      .option("-q, --quiet", "names only")
      .option(
        "-f, --filter <key=value>",
        "name=, status=, label=, id=, ancestor= (repeatable)",
        collect,
        [],
      )
      .option("--format <template>", "a template ({{.Names}}\\t{{.Status}}), 'table …' or json")
      .option("--no-trunc", "do not cut the COMMAND column")
      .option("-n, --last <n>", "the n most recently created")
      .action(async (o: PsFlags) => {
        const host = ctx.host();
        const keep = psFilter(o.filter);
        trace("ps: host");
        // One listing of the exit directory for all records (listContainers reads a file each).
        const stored = host.store.list<ContainerRecord>("containers");
        const exits = listExitFiles(host, stored.map((r) => r.dirs.exitDir));
        trace("ps: records read");
        const recs = psSelect(
          await Promise.all(stored.map((r) => quickRefresh(host, r, exits))),
          o,
          keep,
        );
        trace("ps: refreshed");
        write(psText(recs, o));
      });
  },
  logs(program: Command, ctx: Context): void {
    program.command("logs").argument("<name>").description("print a container's output")
      .option("-f, --follow", "keep printing until the container exits")
      .option("-n, --tail <n>", "only the last n lines ('all' for every line)")
      .option("-t, --timestamps", "show each line's time")
      .action(
        async (name: string, o: { follow?: boolean; tail?: string; timestamps?: boolean }) => {
          const host = ctx.host();
          await printLogs(host, getContainer(host, name), {
            ...o,
            tail: o.tail === "all" ? undefined : o.tail,
          });
        },
      );
  },
  inspect(program: Command, ctx: Context): void {
    program.command("inspect").argument("<names...>").description(
      "a container's state as JSON (images: rkl image inspect)",
    ).action(async (list: string[]) => {
      const host = ctx.host();
      const out = [];
      for (const n of list) {
        out.push(containerState(host, await refresh(host, getContainer(host, n))));
      }
      write(JSON.stringify(out, null, 2) + "\n");
    });
  },
  port(program: Command, ctx: Context): void {
    program.command("port").argument("<name>").argument("[port]", "CONTAINER_PORT[/proto]")
      .description("list a container's published ports")
      .action((name: string, port?: string) => {
        const host = ctx.host();
        const rec = getContainer(host, name);
        const maps = rec.network?.portMappings ?? [];
        if (port === undefined) {
          write(
            maps.map((m) =>
              `${m.containerPort}/${m.protocol} -> ${m.hostIP ?? "0.0.0.0"}:${m.hostPort}\n`
            ).join(""),
          );
          return;
        }
        const [p, proto = "tcp"] = port.split("/");
        const hit = maps.filter((m) =>
          String(m.containerPort) === p && m.protocol.toLowerCase() === proto.toLowerCase()
        );
        if (hit.length === 0) {
          throw new NotFoundError(
            `No public port ${JSON.stringify(`${p}/${proto}`)} published for ${name}`,
          );
        }
        write(hit.map((m) => `${m.hostIP ?? "0.0.0.0"}:${m.hostPort}\n`).join(""));
      });
  },
  top(program: Command, ctx: Context): void {
    program.command("top").argument("<name>").argument(
      "[ps-options...]",
      "options for ps (default -ef)",
    )
      .description("the processes of a container (its cgroup), as ps shows them")
      .allowUnknownOption()
      .passThroughOptions()
      .action(async (name: string, psArgs: string[]) => {
        const host = ctx.host();
        const rec = await refresh(host, getContainer(host, name));
        if (rec.status !== "running") {
          throw new ConflictError(
            `Cannot list processes of container ${JSON.stringify(name)}: it is ${rec.status}`,
          );
        }
        const pids = new Set(host.cgroups.pids(rec.cgroupPath));
        const out = await new Deno.Command("ps", {
          args: psArgs.length > 0 ? psArgs : ["-ef"],
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!out.success) {
          throw new UsageError(
            `ps ${psArgs.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
          );
        }
        write(filterPs(new TextDecoder().decode(out.stdout), pids));
      });
  },
};
