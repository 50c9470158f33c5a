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
import { which } from "../../src/oci/runtime.ts";

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
  // A process that reads its size as it starts, three times: the PTY is made at the client's
  // size (consoleSize), never 0x0 until the first resize (`stty size` then failed every time).
  await type(`clear; for i in 1 2 3; do rkl exec -it tty2 stty size; done; echo "done=$?"`);
  await until("three sizes", /^done=0$/m);
  const sized = (await tmux("capture-pane", "-p", "-t", "t")).match(/^25 90$/gm) ?? [];
  assert.equal(sized.length, 3, "each exec -it saw 25 90 at once");
  await rklOk(env!, ["rm", "-f", "tty2"]);
});

test("run --rm -it: a process that reads its size at once sees the terminal's", async () => {
  await tmux("resize-window", "-t", "t", "-x", "95", "-y", "28");
  await type(`clear; rkl run --rm -it --network none busybox stty size; echo "rc=$?"`);
  await until("the size and the exit code", /^28 95\s*\nrc=0$/m);
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");
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

test("run --rm -it: a process gone before the session starts; rkl still returns its exit code", async () => {
  // The runtime's `start` returns a second late (youki behind a wrapper of the same name), so
  // the process and its conmon have ended before rkl sends the terminal's size. That size went
  // through a blocking open of conmon's ctl FIFO, which waited for a reader for good (11 of 30
  // runs on a loaded host hung; every run with this wrapper).
  const slow = `${env!.dir}/slow`;
  Deno.mkdirSync(slow, { recursive: true });
  Deno.writeTextFileSync(
    `${slow}/youki`,
    `#!/bin/sh\n'${
      which("youki")
    }' "$@"; rc=$?\ncase " $* " in *" start "*) sleep 1;; esac\nexit $rc\n`,
    { mode: 0o755 },
  );
  const r = await new Deno.Command("timeout", {
    args: [
      "20",
      "script",
      "-qec",
      `stty rows 20 cols 70; RKL_RUNTIME='${slow}/youki' '${
        env!.dir
      }/rkl' run --rm -it --network none busybox sh -c 'exit 7'; echo "rc=$?"`,
      "/dev/null",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  assert.notEqual(r.code, 124, `rkl hung: ${JSON.stringify(out)}`);
  assert.match(out, /rc=7/);
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");
});
