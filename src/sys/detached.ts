/**
 * A helper process that outlives this one (the health monitor): in its own
 * session (setsid), so a terminal's ^C for this command does not reach it,
 * with no fd of this process's caller and no stdio.
 */
import { cloexecInheritedFds } from "./cloexec.ts";

export function spawnDetached(argv: string[]): void {
  // It outlives this command: no fd of this process's caller goes along.
  cloexecInheritedFds();
  const child = new Deno.Command("setsid", {
    args: argv,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  child.unref();
  child.status.catch(() => {});
}
