/** What docker's top-level verbs share: waiting, attaching, removing, per-name loops. */
import type { Command } from "commander";
import type { Context } from "../../app.ts";
import { UsageError } from "../../../src/errors.ts";
import {
  type ContainerRecord,
  getContainer,
  refresh,
  removeContainer,
} from "../../../src/workloads/container.ts";
import type { Host } from "../../../src/workloads/host.ts";
import { readExitCode } from "../../../src/oci/conmon.ts";
import { stderr } from "../../io.ts";

/** One of docker's verbs: registers itself on the program. */
export type Verb = (program: Command, ctx: Context) => void;

export const collect = (v: string, prev: string[]) => prev.concat([v]);

/** The container's exit code, once conmon has written it. */
export async function waitExit(host: Host, name: string): Promise<number> {
  let rec = getContainer(host, name);
  for (let i = 0;; i++) {
    const code = readExitCode(rec.dirs.exitDir, rec.id);
    if (code !== undefined) return code;
    if (i % 20 === 19) {
      // Every second: the runtime's word, for a container that ended without an exit file.
      rec = await refresh(host, getContainer(host, name));
      if (rec.status === "exited" || rec.status === "unknown") return rec.exitCode ?? 255;
    }
    await new Promise((r) => setTimeout(r, i < 20 ? 25 : 50));
  }
}

export async function removeQuietly(host: Host, name: string): Promise<void> {
  try {
    // `--rm` (and a run undone after its create): its anonymous volumes go too, as docker's.
    await removeContainer(host, name, { force: true, volumes: true });
  } catch (e) {
    stderr(`warning: could not remove ${name}: ${(e as Error).message}\n`);
  }
}

/** Joins this terminal to a container's main process; "detached" or its exit code. */
export async function attachTo(
  host: Host,
  rec: ContainerRecord,
  o: { stdin: boolean; then?: () => Promise<unknown> },
): Promise<number | "detached"> {
  const { Attachment } = await import("../../tty.ts");
  const tty = !!rec.terminal;
  if (tty && o.stdin && !Deno.stdin.isTerminal()) {
    throw new UsageError("the input device is not a TTY: run it from a terminal, or without -t");
  }
  const att = Attachment.open({
    socket: `${rec.dirs.bundle}/attach`,
    ctl: `${rec.dirs.bundle}/ctl`,
    sys: host.sys,
    tty,
    stdin: o.stdin,
    detachKeys: o.stdin && tty,
  });
  try {
    await o.then?.();
  } catch (e) {
    att.close();
    throw e;
  }
  const how = await att.session();
  if (how === "detached") {
    stderr("\r\nread escape sequence\r\n");
    return "detached";
  }
  return await waitExit(host, rec.name);
}

export function names(args: string[]): string[] {
  if (args.length === 0) throw new UsageError("give at least one container name");
  return args;
}

/** Runs `fn` for each name; errors are printed per name and make the exit code 1 (docker's way). */
export async function each(
  ctx: Context,
  list: string[],
  fn: (name: string) => Promise<void>,
): Promise<void> {
  const errors: unknown[] = [];
  for (const n of list) {
    try {
      await fn(n);
    } catch (e) {
      if (list.length === 1) throw e;
      errors.push(e);
      stderr(`rkl: ${(e as Error).message}\n`);
    }
  }
  if (errors.length > 0) ctx.exitCode = 1;
}
