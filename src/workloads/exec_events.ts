/**
 * docker's exec events for the commands' execs (`exec`, `pod exec`,
 * `compose exec`): apart from the core's exec path (exec.ts), which the
 * probes also take, so that the event log is not among what they load.
 */
import { RklError } from "../errors.ts";
import { about, noteEvent } from "./event_log.ts";
import type { Host } from "./host.ts";
import { randomHexId } from "../base/hex.ts";

/**
 * docker's events of a user's exec around `run` (which starts the process
 * and resolves to its exit code): `exec_create` and `exec_start` with a new
 * exec id and the command, then `exec_die` with the code. An exec that
 * could not start (`run` throws) dies with the code the command exits with
 * then: 127 for a command not in the container, 1 for any other failure.
 * Only the commands' execs (`exec`, `pod exec`, `compose exec`) are logged:
 * the kubelet's exec probes (ExecSync), rkl's own probes, hooks and
 * healthchecks run far too often for the log.
 */
export async function withExecEvents(
  host: Host,
  target: Parameters<typeof about>[0],
  argv: string[],
  run: () => Promise<number>,
): Promise<number> {
  const execId = randomHexId(); // 64 hex digits, as docker's exec ids
  const it = about(target);
  const command = argv.join(" ");
  noteEvent(host, { action: "exec_create", ...it, execId, command });
  noteEvent(host, { action: "exec_start", ...it, execId, command });
  let code = 1;
  try {
    code = await run();
    return code;
  } catch (e) {
    if (e instanceof RklError) code = e.exitCode;
    throw e;
  } finally {
    noteEvent(host, { action: "exec_die", ...it, execId, exitCode: code });
  }
}
