/**
 * A real terminal, driven through tmux as a person would type: `rkl run -it
 * busybox sh`, typing, a resize (`tmux resize-window` → `stty size` inside),
 * detach with ctrl-p ctrl-q, `rkl attach`, the exit code passed through, and
 * `rkl exec -it`. tmux runs on its own socket (-L) with a fixed size.
 */
import assert from "node:assert/strict";
import { censusTests, makeEnv, rklOk } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import { busyboxTerminal, tmuxPresent } from "../_helpers/terminal.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry") &&
  tmuxPresent();
const env = ready ? await makeEnv("dtty", 48) : undefined;
const { test } = censusTests(ready, () => env!);

const { tmux, until, type } = await busyboxTerminal(ready, env, `rkl-dtty-${Deno.pid}`);

test("run -it busybox sh: typing, resize, ctrl-p ctrl-q, attach, exit code", async () => {
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
  await type(
    `clear; rkl run --rm -it --network none busybox sh -c 'read x; exit $x'; echo "rc=$?"`,
  );
  await new Promise((r) => setTimeout(r, 1_500));
  await type("3");
  await until("the exit code", /^rc=3$/m);
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");
});
