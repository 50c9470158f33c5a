/** start, stop, restart, rm, kill, wait and rename, docker's way. */
import type { Command } from "commander";
import type { Context } from "../../app.ts";
import { parseSignal } from "../../../src/workloads/signals.ts";
import { about, noteEvent } from "../../../src/workloads/event_log.ts";
import {
  getContainer,
  killContainer,
  refresh,
  removeContainer,
  restartContainer,
  startContainer,
  stopContainer,
} from "../../../src/workloads/container.ts";
import { write } from "../../format.ts";
import { parseSeconds } from "../_shared.ts";
import { attachTo, each, names, type Verb, waitExit } from "./shared.ts";

/** start, stop, restart, rm, kill, wait, rename, by name. */
export const LIFECYCLE_VERBS: Record<string, Verb> = {
  start(program: Command, ctx: Context): void {
    program.command("start").argument("<names...>").description(
      "start created or exited containers",
    ).option("-a, --attach", "attach to its output (one container)")
      .option("-i, --interactive", "attach stdin too")
      .action(async (list: string[], o: { attach?: boolean; interactive?: boolean }) => {
        const host = ctx.host();
        const startOne = async (n: string) => {
          const rec = await refresh(host, getContainer(host, n));
          if (rec.status === "running") return rec;
          if (rec.status === "exited" || rec.status === "unknown") {
            return await restartContainer(host, n, { byUser: true });
          }
          return await startContainer(host, n);
        };
        if ((o.attach || o.interactive) && list.length === 1) {
          const rec = await refresh(host, getContainer(host, list[0]));
          if (rec.status === "created") {
            const r = await attachTo(host, rec, {
              stdin: !!o.interactive && rec.stdin !== undefined,
              then: () => startContainer(host, rec.name),
            });
            if (r !== "detached") ctx.exitCode = r;
            return;
          }
          const started = await startOne(list[0]);
          const r = await attachTo(host, started, {
            stdin: !!o.interactive && started.stdin !== undefined,
          });
          if (r !== "detached") ctx.exitCode = r;
          return;
        }
        await each(ctx, names(list), async (n) => {
          await startOne(n);
          write(`${n}\n`);
        });
      });
  },
  stop(program: Command, ctx: Context): void {
    program.command("stop").argument("<names...>").description(
      "stop containers: the stop signal, then SIGKILL after -t seconds",
    ).option("-t, --time <seconds>", "grace period", "10")
      .action(async (list: string[], o: { time: string }) => {
        const t = parseSeconds("--time", o.time);
        await each(ctx, names(list), async (n) => {
          await stopContainer(ctx.host(), n, t, { byUser: true });
          write(`${n}\n`);
        });
      });
  },
  restart(program: Command, ctx: Context): void {
    program.command("restart").argument("<names...>").description(
      "stop (if running) and start containers again",
    ).option("-t, --time <seconds>", "grace period", "10")
      .action(async (list: string[], o: { time: string }) => {
        const t = parseSeconds("--time", o.time);
        const host = ctx.host();
        await each(ctx, names(list), async (n) => {
          const rec = await refresh(host, getContainer(host, n));
          if (rec.status === "created") await startContainer(host, n);
          else {
            if (rec.status === "running") await stopContainer(host, n, t, { byUser: true });
            const after = await restartContainer(host, n, { byUser: true });
            // docker's sequence: kill, die, stop, start, then restart.
            noteEvent(host, { action: "restart", ...about(after) });
          }
          write(`${n}\n`);
        });
      });
  },
  rm(program: Command, ctx: Context): void {
    program.command("rm").argument("<names...>").description("remove containers")
      .option("-f, --force", "kill and remove running ones too")
      .option("-v, --volumes", "remove their anonymous volumes too (named ones stay)")
      .action(async (list: string[], o: { force?: boolean; volumes?: boolean }) => {
        await each(ctx, names(list), async (n) => {
          await removeContainer(ctx.host(), n, { force: o.force, volumes: o.volumes });
          write(`${n}\n`);
        });
      });
  },
  kill(program: Command, ctx: Context): void {
    program.command("kill").argument("<names...>").description(
      "send a signal (default SIGKILL) to containers' main process",
    ).option("-s, --signal <sig>", "signal name or number", "KILL")
      .action(async (list: string[], o: { signal: string }) => {
        const host = ctx.host();
        const sig = parseSignal(o.signal, "-s");
        await each(ctx, names(list), async (n) => {
          await killContainer(host, n, sig);
          write(`${n}\n`);
        });
      });
  },
  wait(program: Command, ctx: Context): void {
    program.command("wait").argument("<names...>").description(
      "wait for containers to exit; print each exit code",
    ).action(async (list: string[]) => {
      const host = ctx.host();
      await each(ctx, names(list), async (n) => {
        const rec = await refresh(host, getContainer(host, n));
        if (rec.status === "created") {
          // docker waits for a created container to run and exit; so does this.
          while ((await refresh(host, getContainer(host, n))).status === "created") {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        write(`${await waitExit(host, n)}\n`);
      });
    });
  },
  rename(program: Command, ctx: Context): void {
    program.command("rename").argument("<old>").argument("<new>").description(
      "rename a container (running or not); its id stays",
    ).action(async (old: string, next: string) => {
      const { renameContainer } = await import("../../../src/workloads/container/rename.ts");
      const host = ctx.host();
      const rec = await renameContainer(host, old, next);
      // docker's `rename` event (oldName), in the log `rkl events` reads, daemon or not:
      // a record's times tell its create, start and die, not a rename.
      // Its labels and pod as every container event's (about); a log that cannot be
      // written is a warning naming it, the rename stands.
      const { about, noteEvent } = await import("../../../src/workloads/event_log.ts");
      noteEvent(host, { action: "rename", ...about(rec), oldName: old });
    });
  },
};
