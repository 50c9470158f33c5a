/**
 * How to start this same rkl again: the binary itself when compiled
 * (`deno compile`), or `deno run -A cli/main.ts` from a checkout. Used for
 * the systemd unit's ExecStart.
 */
export function selfArgv(): string[] {
  const exe = Deno.execPath();
  const underDeno = /(^|\/)deno$/.test(exe);
  if (!underDeno) return [exe];
  const main = new URL("./main.ts", import.meta.url);
  if (main.protocol !== "file:") return [exe];
  return [exe, "run", "-A", main.pathname];
}
