/**
 * A real terminal for e2e tests, driven through tmux as a person types: a
 * tmux server on its own socket (-L) with a fixed size, a shell whose `rkl`
 * is this checkout with the test's state roots, and busybox pulled from a
 * local registry (before any census, so the image is part of the baseline).
 */
import { cleanupAfterAll, type RklEnv, waitFor } from "./env.ts";
import { REPO } from "./requires.ts";
import type { Registry } from "./oci.ts";
import { busyboxMirror } from "./busybox_mirror.ts";
import { which } from "../../src/oci/runtime.ts";

/** tmux is there; under CI=true its absence is a failure, never a skip. */
export function tmuxPresent(): boolean {
  if (which("tmux")) return true;
  if (Deno.env.get("CI") === "true") {
    throw new Error("tmux is not installed (scripts/setup.sh installs it)");
  }
  console.error("skipping: tmux is not installed (scripts/setup.sh installs it)");
  return false;
}

export interface Terminal {
  tmux(...args: string[]): Promise<string>;
  /** The pane's text. */
  screen(): Promise<string>;
  /** Waits (20 s at most) until the pane matches `re`; the error shows the pane. */
  until(what: string, re: RegExp): Promise<void>;
  /** Types `text`, then Enter. */
  type(text: string): Promise<void>;
}

/**
 * Sets the terminal up when `ready` (the registry, busybox pulled, the host
 * shell on screen) and tears it down after the file's tests.
 */
export async function busyboxTerminal(
  ready: boolean,
  env: RklEnv | undefined,
  socket: string,
): Promise<Terminal> {
  let registry: Registry | undefined;
  const tmux = async (...args: string[]): Promise<string> => {
    const r = await new Deno.Command("tmux", {
      args: ["-L", socket, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`tmux ${args.join(" ")}: ${dec.decode(r.stderr)}`);
    return dec.decode(r.stdout);
  };
  const screen = () => tmux("capture-pane", "-p", "-J", "-t", "t");
  const until = async (what: string, re: RegExp): Promise<void> => {
    let last = "";
    try {
      await waitFor(what, async () => re.test(last = await screen()), 20_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; the screen:\n${last}`);
    }
  };
  const type = async (text: string): Promise<void> => {
    await tmux("send-keys", "-t", "t", "-l", text);
    await tmux("send-keys", "-t", "t", "Enter");
  };
  const setUp = async (e: RklEnv): Promise<void> => {
    registry = await busyboxMirror(e);
    // `rkl` in the terminal: this checkout, this test's state roots.
    const vars = Object.entries(e.env).map(([k, v]) => `${k}='${v}'`).join(" ");
    Deno.writeTextFileSync(
      `${e.dir}/rkl`,
      `#!/bin/sh\nexec env ${vars} '${Deno.execPath()}' run -A --quiet '${REPO}/cli/main.ts' "$@"\n`,
      { mode: 0o755 },
    );
    await tmux(
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-s",
      "t",
      "-x",
      "100",
      "-y",
      "30",
      `env PATH='${e.dir}:/usr/sbin:/usr/bin:/sbin:/bin' PS1='host$ ' sh`,
    );
    await until("the host shell", /host\$/);
  };
  if (ready && env) {
    try {
      await setUp(env);
    } catch (e) {
      await registry?.stop();
      throw e;
    }
  }
  cleanupAfterAll(env, async () => {
    await tmux("kill-server").catch(() => "");
    await registry?.stop();
  });
  return { tmux, screen, until, type };
}
