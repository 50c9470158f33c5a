/**
 * One process of a kind per run root: a pid file made with O_EXCL holding
 * the pid and its start time (so a reused pid is not taken for the owner).
 * A file left by a process that died is taken over.
 */
import { ConflictError } from "../errors.ts";
import { procStat } from "./procstat.ts";

export function processAlive(pid: number, start: number | undefined): boolean {
  const s = procStat(pid);
  return !!s && s.state !== "Z" && (start === undefined || s.startTime === start);
}

/** The live owner of `path`, if any: its pid. */
export function pidLockOwner(path: string): number | undefined {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
  const [pid, start] = text.trim().split(" ").map(Number);
  return pid > 0 && processAlive(pid, start) ? pid : undefined;
}

/**
 * Takes the lock or throws a ConflictError made by `busy(pid)`. Returns the
 * release function (which removes the file only while it is still ours).
 */
export function takePidLock(path: string, busy: (pid: number) => ConflictError): () => void {
  const me = `${Deno.pid} ${procStat(Deno.pid)?.startTime ?? 0}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      Deno.writeTextFileSync(path, me, { createNew: true, mode: 0o600 });
      return () => {
        try {
          if (Deno.readTextFileSync(path) === me) Deno.removeSync(path);
        } catch { /* gone */ }
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const owner = pidLockOwner(path);
    if (owner !== undefined) throw busy(owner);
    try {
      Deno.removeSync(path); // a dead owner's
    } catch { /* another starter took it over first */ }
  }
  throw new ConflictError(`Cannot take ${path}: it keeps coming back`);
}
