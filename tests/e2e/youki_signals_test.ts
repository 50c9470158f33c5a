/**
 * Signal dispositions a container's processes start with under youki. youki
 * 0.7.0 is a Rust program, whose runtime ignores SIGPIPE before main; an
 * ignored signal stays ignored across execve, so as published youki handed
 * SIGPIPE ignored to the container's process and to every `youki exec`'d
 * one: `yes | head -n1` left `yes` failing with EPIPE instead of being killed
 * by SIGPIPE. runc (and so containerd and CRI-O) start them with SIGPIPE at
 * its default. rkl's patch (scripts/youki/libcontainer-sigpipe-default.patch)
 * restores it right before the exec, and undoes the ignore of glibc's
 * internal signals 32 and 33 that glibc's posix_spawn (Deno's, spawning
 * conmon) leaves behind.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "ip", "bundles", "youki") && requires("runc");
const env = ready ? await makeEnv("ysig", 38) : undefined;
const { test } = censusTests(ready, () => env!);
const SIGPIPE = 13;

/** The SigIgn mask of /proc/`pid`/status as seen inside container `name`. */
async function sigIgn(name: string, pid: string): Promise<bigint> {
  const out = await rklOk(env!, ["container", "exec", name, "--", "cat", `/proc/${pid}/status`]);
  const m = out.match(/^SigIgn:\s*([0-9a-f]+)$/m);
  assert.ok(m, `no SigIgn line in /proc/${pid}/status:\n${out}`);
  return BigInt(`0x${m[1]}`);
}

const ignores = (mask: bigint, sig: number) => (mask & (1n << BigInt(sig - 1))) !== 0n;

for (const runtime of ["youki", "runc"]) {
  test(`${runtime}: the container's process and an exec'd one start with SIGPIPE at its default`, async () => {
    const name = `sig-${runtime}`;
    const file = `${env!.dir}/${name}.yaml`;
    await Deno.writeTextFile(
      file,
      `name: ${name}\nimage: ${REPO}/bundles/busybox\ncommand: [sleep, "60"]\n`,
    );
    await rklOk(env!, ["--runtime", runtime, "container", "run", "--network", "none", file]);
    try {
      const init = await sigIgn(name, "1");
      assert.ok(!ignores(init, SIGPIPE), `pid 1 ignores SIGPIPE: SigIgn ${init.toString(16)}`);
      const exec = await sigIgn(name, "self");
      assert.ok(
        !ignores(exec, SIGPIPE),
        `exec'd process ignores SIGPIPE: SigIgn ${exec.toString(16)}`,
      );
      if (runtime === "youki") {
        // glibc's internal 32 and 33, which Deno's posix_spawn leaves ignored in conmon
        // (runc's Go runtime resets 33, not 32).
        for (const [what, mask] of [["pid 1", init], ["exec'd process", exec]] as const) {
          for (const sig of [32, 33]) {
            assert.ok(!ignores(mask, sig), `${what} ignores ${sig}: SigIgn ${mask.toString(16)}`);
          }
        }
      }
      // What a user sees: the writer of a pipeline whose reader left dies of SIGPIPE (128+13).
      const r = await rkl(env!, [
        "container",
        "exec",
        name,
        "--",
        "sh",
        "-c",
        '{ { yes; echo "yes exited $?" >&3; } | head -n1 >/dev/null; } 3>&1',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "yes exited 141\n");
    } finally {
      await rklOk(env!, ["container", "rm", "-f", name]);
    }
  });
}

cleanupAfterAll(env);
