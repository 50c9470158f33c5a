import { isDenoExe } from "../src/daemon/launch.ts";

/**
 * How to start this same rkl again: the self-extracting artifact (RKL_SELF,
 * set by its launcher), the binary itself when compiled (`deno compile`), or
 * `deno run -A cli/main.ts` from a checkout. Used for the systemd unit's
 * ExecStart and for helper processes.
 */
export function selfArgv(): string[] {
  // The self-extracting artifact (scripts/launcher.sh) says where it is.
  const artifact = Deno.env.get("RKL_SELF");
  if (artifact?.startsWith("/")) {
    try {
      const st = Deno.statSync(artifact);
      if (st.isFile && (st.mode ?? 0) & 0o111) return [artifact];
    } catch { /* gone: fall back */ }
  }
  const exe = Deno.execPath();
  if (!isDenoExe(exe)) return [exe];
  const main = new URL("./main.ts", import.meta.url);
  if (main.protocol !== "file:") return [exe];
  return [exe, "run", "-A", main.pathname];
}
