/**
 * What the user-mode networks (slirp4netns in slirp.ts, pasta in pasta.ts)
 * share: the short name of an attachment's files, and stopping the helper
 * process a pid file names. Its own module so that neither network's module
 * imports the other's.
 */

/** A short stable name for a CNI id (unix socket paths are at most 107 bytes). */
export function slirpKey(cniId: string): string {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(cniId)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** The pid a helper's pid file holds; undefined when there is none or it is not a pid. */
export function readPidFile(file: string): number | undefined {
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch { /* never started */ }
  return /^\d+\n?$/.test(text) ? Number(text.trim()) : undefined;
}

/**
 * Stops the helper `pidFile` names while `ours(pid)` says the pid is still
 * that helper (never a reused pid): SIGTERM, about 1 s of looking (2 ms steps
 * first: it ends within a few ms), then SIGKILL; then removes `files`.
 */
export async function stopHelper(
  pidFile: string,
  ours: (pid: number) => boolean,
  o: { kill(pid: number, signal: Deno.Signal): void; sleep(ms: number): Promise<void> },
  files: string[],
): Promise<void> {
  const pid = readPidFile(pidFile);
  if (pid !== undefined && ours(pid)) {
    try {
      o.kill(pid, "SIGTERM");
    } catch { /* gone */ }
    for (let i = 0; i < 140 && ours(pid); i++) await o.sleep(i < 50 ? 2 : 10);
    if (ours(pid)) {
      try {
        o.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  for (const f of files) {
    try {
      Deno.removeSync(f);
    } catch { /* gone */ }
  }
}
