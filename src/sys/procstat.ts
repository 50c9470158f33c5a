/** State letter and start time (clock ticks after boot) of a process, from /proc/PID/stat. */
export function procStat(pid: number): { state: string; startTime: number } | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0], startTime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}
