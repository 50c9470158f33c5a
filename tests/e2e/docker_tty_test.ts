/**
 * A real terminal, driven through tmux as a person would type: `rkl run -it
 * busybox sh`, typing, a resize (`tmux resize-window` → `stty size` inside),
 * detach with ctrl-p ctrl-q, `rkl attach`, the exit code passed through, and
 * `rkl exec -it`. tmux runs on its own socket (-L) with a fixed size.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirTar, pushImage, type Registry, startRegistry } from "../_helpers/oci.ts";
import { which } from "../../src/oci/runtime.ts";

function tmuxPresent(): boolean {
  if (which("tmux")) return true;
  if (Deno.env.get("CI") === "true") {
    throw new Error("tmux is not installed (scripts/setup.sh installs it)");
  }
  console.error("skipping: tmux is not installed (scripts/setup.sh installs it)");
  return false;
}

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry") &&
  tmuxPresent();
const env = ready ? await makeEnv("dtty", 48) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
const SOCK = `rkl-dtty-${Deno.pid}`;

async function tmux(...args: string[]): Promise<string> {
  const r = await new Deno.Command("tmux", {
    args: ["-L", SOCK, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  if (!r.success) throw new Error(`tmux ${args.join(" ")}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

const screen = () => tmux("capture-pane", "-p", "-J", "-t", "t");

async function until(what: string, re: RegExp): Promise<void> {
  let last = "";
  try {
    await waitFor(what, async () => re.test(last = await screen()), 20_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; the screen:\n${last}`);
  }
}

async function type(text: string): Promise<void> {
  await tmux("send-keys", "-t", "t", "-l", text);
  await tmux("send-keys", "-t", "t", "Enter");
}

async function setUp(): Promise<void> {
  if (registry) return;
  registry = await startRegistry(`${env!.dir}/registry`);
  await pushImage(registry.url, "library/busybox", "latest", {
    layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  Deno.writeTextFileSync(
    `${env!.dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
  );
  env!.env.RKL_REGISTRIES_CONFIG = `${env!.dir}/registries.yaml`;
  // Pulled before the first census: the image stays for the file's tests.
  await rklOk(env!, ["pull", "-q", "busybox"]);
  // `rkl` in the terminal: this checkout, this test's state roots.
  const vars = Object.entries(env!.env).map(([k, v]) => `${k}='${v}'`).join(" ");
  Deno.writeTextFileSync(
    `${env!.dir}/rkl`,
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
    `env PATH='${env!.dir}:/usr/sbin:/usr/bin:/sbin:/bin' PS1='host$ ' sh`,
  );
  await until("the host shell", /host\$/);
}

test("run -it busybox sh: typing, resize, ctrl-p ctrl-q, attach, exit code", async () => {
  await setUp();
  await type(`clear; rkl run -it --name tty1 --network ${env!.network} busybox sh; echo "rc=$?"`);
  await until("the container's prompt", /\/ # $/m);
  await type("echo typed-$((6*7))");
  await until("the shell's answer", /^typed-42$/m);
  await type("stty size");
  await until("the first size", /^30 100$/m);
  await tmux("resize-window", "-t", "t", "-x", "120", "-y", "40");
  await type("stty size");
  await until("the new size (SIGWINCH)", /^40 120$/m);
  await tmux("send-keys", "-t", "t", "C-p", "C-q");
  await until("detached", /read escape sequence\s*\nrc=0/);
  assert.equal(await rklOk(env!, ["ps", "-q"]), "tty1\n", "still running after detach");

  await type('clear; rkl attach tty1; echo "rc=$?"');
  await new Promise((r) => setTimeout(r, 1_500)); // the attach to be made
  await type("echo back-$((2*3))");
  await until("the shell after attach", /^back-6$/m);
  await type("exit 5");
  await until("the exit code passed through", /^rc=5$/m);
  assert.match(await rklOk(env!, ["ps", "-a"]), /tty1 .*Exited \(5\)/);
  await rklOk(env!, ["rm", "tty1"]);
});

test("exec -it: a terminal in a running container, its size and exit code", async () => {
  await setUp();
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "tty2",
    "--network",
    "none",
    "busybox",
    "sleep",
    "300",
  ]);
  await tmux("resize-window", "-t", "t", "-x", "90", "-y", "25");
  await type(`clear; rkl exec -it tty2 sh; echo "rc=$?"`);
  await until("the exec'd shell's prompt", /\/ # $/m);
  await type("stty size; tty");
  await until("its terminal", /^25 90\n\/dev\/pts\/\d+$/m);
  await type("exit 4");
  await until("the exec's exit code", /^rc=4$/m);
  await rklOk(env!, ["rm", "-f", "tty2"]);
});

test("run --rm -it: the container goes when the shell exits", async () => {
  await setUp();
  await type(
    `clear; rkl run --rm -it --network none busybox sh -c 'read x; exit $x'; echo "rc=$?"`,
  );
  await new Promise((r) => setTimeout(r, 1_500));
  await type("3");
  await until("the exit code", /^rc=3$/m);
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");
});

// Before any test takes its census (the pulled image is part of the baseline).
if (ready) {
  try {
    await setUp();
  } catch (e) {
    await registry?.stop();
    throw e;
  }
}

cleanupAfterAll(env, async () => {
  await tmux("kill-server").catch(() => "");
  await registry?.stop();
});
