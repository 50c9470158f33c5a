/** Starting and stopping `rkl daemon` from tests, as an operator would. */
import { rkl, type RklEnv } from "./env.ts";
import { REPO } from "./requires.ts";

export function startDaemon(
  env: RklEnv,
  manifests: string,
  options: {
    env?: Record<string, string>;
    stderr?: "null" | "piped" | "inherit";
    /** More flags (`--cri-socket PATH`). */
    args?: string[];
  } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      `${REPO}/cli/main.ts`,
      "daemon",
      "--manifests",
      manifests,
      "--network",
      env.network,
      "--relist",
      "1",
      // Longer than the 1 s relist, so that the growing back-off shows in the restart times.
      "--backoff",
      "700",
      "--backoff-max",
      "5000",
      ...(options.args ?? []),
    ],
    env: { ...env.env, ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: options.stderr ?? "null",
  }).spawn();
}

export async function stopDaemon(
  d: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
): Promise<void> {
  try {
    d.kill(signal);
  } catch { /* gone */ }
  await d.status;
}

export async function podState(env: RklEnv, name: string) {
  const r = await rkl(env, ["pod", "state", name, "-o", "json"]);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}
