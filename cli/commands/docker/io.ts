/** exec, attach and cp: into and out of a running container. */
import type { Command } from "commander";
import type { Context } from "../../app.ts";
import { ConflictError, UsageError } from "../../../src/errors.ts";
import { type ContainerRecord, getContainer, refresh } from "../../../src/workloads/container.ts";
import type { Host } from "../../../src/workloads/host.ts";
import { cwd, stderr } from "../../io.ts";
import { execIn } from "../_shared.ts";
import { attachTo, collect, type Verb } from "./shared.ts";

/**
 * `exec -u USER[:GROUP]`: ids as given; names looked up in the container's
 * own /etc/passwd and /etc/group (read beneath its root, never following a
 * link out), as docker does. A user id alone gets group 0 (docker: the
 * passwd entry's group when there is one).
 */
async function execUser(
  host: Host,
  rec: ContainerRecord,
  spec: string,
): Promise<{ uid: number; gid: number }> {
  const NAME = "[A-Za-z_][A-Za-z0-9_.-]{0,31}\\$?";
  const m = new RegExp(`^(\\d{1,10}|${NAME})(?::(\\d{1,10}|${NAME}))?$`).exec(spec);
  if (!m) {
    throw new UsageError(`-u ${JSON.stringify(spec)}: use USER[:GROUP] (names or numbers)`);
  }
  const num = (x?: string) => x !== undefined && /^\d+$/.test(x) ? Number(x) : undefined;
  const [uid, gid] = [num(m[1]), num(m[2])];
  if (uid !== undefined && (m[2] === undefined || gid !== undefined)) return { uid, gid: gid ?? 0 };
  const [{ readUserFiles, resolveNames }, { containerRoot }] = await Promise.all([
    import("../../../src/workloads/users.ts"),
    import("../../../src/workloads/copy.ts"),
  ]);
  const live = await refresh(host, rec);
  const files = readUserFiles(host.sys, containerRoot(live), host.fs);
  try {
    return resolveNames(
      {
        ...(uid === undefined ? { user: m[1] } : {}),
        ...(m[2] !== undefined && gid === undefined ? { group: m[2] } : {}),
        path: [],
      },
      { uid, gid },
      { ...files, where: "" },
    );
  } catch (e) {
    throw new UsageError(
      `-u ${JSON.stringify(spec)}: ${
        (e as Error).message.replace(/ \/etc\//, " the container's /etc/")
      }`,
    );
  }
}

/** exec, attach, cp, by name. */
export const IO_VERBS: Record<string, Verb> = {
  exec(program: Command, ctx: Context): void {
    program.command("exec").argument("<name>").argument("<command...>").description(
      "run a command in a running container",
    ).option("-i, --interactive", "keep stdin open")
      .option("-t, --tty", "allocate a terminal (ctrl-p ctrl-q ends the session)")
      .option("-e, --env <K=V>", "set an environment variable (repeatable)", collect, [])
      .option("-w, --workdir <dir>", "working directory")
      .option("-u, --user <user[:group]>", "user and group: names (the container's files) or ids")
      .passThroughOptions()
      .action(async (name: string, command: string[], o: {
        interactive?: boolean;
        tty?: boolean;
        env: string[];
        workdir?: string;
        user?: string;
      }) => {
        const host = ctx.host();
        const rec = getContainer(host, name);
        for (const kv of o.env) {
          if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(kv)) {
            throw new UsageError(`-e ${JSON.stringify(kv)}: use NAME=VALUE`);
          }
        }
        if (o.workdir !== undefined && !o.workdir.startsWith("/")) {
          throw new UsageError(`-w ${JSON.stringify(o.workdir)}: must be an absolute path`);
        }
        const user = o.user === undefined ? undefined : await execUser(host, rec, o.user);
        if (!o.tty) {
          ctx.exitCode = await execIn(host, rec, command, {
            interactive: o.interactive,
            env: o.env,
            cwd: o.workdir,
            user,
          });
          return;
        }
        const live = await refresh(host, rec);
        if (live.status !== "running") {
          throw new ConflictError(
            `Cannot exec in container ${JSON.stringify(name)}: it is ${live.status}`,
          );
        }
        if (command[0] === "--") command = command.slice(1);
        if (command.length === 0) throw new UsageError("exec needs a command");
        if (o.interactive && !Deno.stdin.isTerminal()) {
          throw new UsageError(
            "the input device is not a TTY: run it from a terminal, or without -t",
          );
        }
        const [{ execStream }, { withExecEvents }, { terminalIO }] = await Promise.all([
          import("../../../src/workloads/exec.ts"),
          import("../../../src/workloads/exec_events.ts"),
          import("../../tty.ts"),
        ]);
        const t = terminalIO({ tty: true, stdin: !!o.interactive });
        try {
          // The core's one exec path, as `container exec` and the CRI's Exec take it.
          ctx.exitCode = await withExecEvents(host, live, command, () =>
            execStream(host, {
              container: live,
              argv: command,
              env: o.env,
              cwd: o.workdir,
              user,
              tty: true,
              stdin: !!o.interactive,
            }, t.io));
        } finally {
          t.done();
        }
        if (t.detached()) {
          stderr("\r\nread escape sequence\r\n");
          ctx.exitCode = 0;
        }
      });
  },
  attach(program: Command, ctx: Context): void {
    program.command("attach").argument("<name>").description(
      "join a running container's terminal or output (detach: ctrl-p ctrl-q)",
    ).option("--no-stdin", "do not send what you type")
      .action(async (name: string, o: { stdin: boolean }) => {
        const host = ctx.host();
        const rec = await refresh(host, getContainer(host, name));
        if (rec.status !== "running") {
          throw new ConflictError(
            `Cannot attach to container ${JSON.stringify(name)}: it is ${rec.status}`,
          );
        }
        const r = await attachTo(host, rec, { stdin: o.stdin && rec.stdin !== undefined });
        if (r !== "detached") ctx.exitCode = r;
      });
  },
  cp(program: Command, ctx: Context): void {
    program.command("cp").argument("<src>", "NAME:PATH or a host path").argument(
      "<dest>",
      "NAME:PATH or a host path",
    ).description(
      "copy files between a container and the host (container paths resolved inside its root)",
    ).option("-L, --follow-link", "follow a symlink at the source (inside the container's root)")
      .action(async (src: string, dest: string, o: { followLink?: boolean }) => {
        const host = ctx.host();
        const { splitCpArg, copyFromContainer, copyToContainer } = await import(
          "../../../src/workloads/copy.ts"
        );
        const a = splitCpArg(src), b = splitCpArg(dest);
        if ((a.container === undefined) === (b.container === undefined)) {
          throw new UsageError("cp copies between a container and the host: one side is NAME:PATH");
        }
        const abs = (p: string) => p.startsWith("/") ? p : `${cwd()}/${p}`;
        const r = a.container !== undefined
          ? copyFromContainer(host.sys, await refresh(host, getContainer(host, a.container)), {
            path: a.path,
            dest: abs(b.path),
            followLink: o.followLink,
          }, host.fs)
          : copyToContainer(host.sys, await refresh(host, getContainer(host, b.container!)), {
            src: abs(a.path),
            path: b.path,
          }, host.fs);
        for (const s of r.skipped) stderr(`warning: skipped ${s}: not a file, directory or link\n`);
      });
  },
};
