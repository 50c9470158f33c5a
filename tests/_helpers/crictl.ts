/** crictl against a test daemon's CRI socket, for the CRI e2e files. */
import type { RklEnv, RunResult } from "./env.ts";

export function crictlTools(env: () => RklEnv, sock: () => string, defaultTimeout = "60s"): {
  crictl(args: string[], timeout?: string): Promise<RunResult>;
  /** stdout, trimmed; throws with crictl's stderr unless it exits 0. */
  crictlOk(args: string[]): Promise<string>;
} {
  const crictl = async (args: string[], timeout = defaultTimeout) => {
    // The env's own config file, so the host's /etc/crictl.yaml never applies.
    const config = `${env().dir}/crictl.yaml`;
    try {
      Deno.statSync(config);
    } catch {
      Deno.writeTextFileSync(config, "debug: false\n");
    }
    const endpoint = `unix://${sock()}`;
    const out = await new Deno.Command("crictl", {
      args: [
        ...["--config", config, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint],
        ...["--timeout", timeout, ...args],
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { RUST_BACKTRACE: "0" },
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  return {
    crictl,
    async crictlOk(args) {
      const r = await crictl(args);
      if (r.code !== 0) throw new Error(`crictl ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
      return r.stdout.trim();
    },
  };
}
