/**
 * createWithConmon() against stand-ins for conmon: how the sync pipe reaches
 * it (an inherited fd, closed in this process after the spawn), and what each
 * way of failing says.
 */
import assert from "node:assert/strict";
import { createWithConmon } from "../../src/oci/conmon.ts";
import type { OciRuntime } from "../../src/oci/runtime.ts";
import { RuntimeError } from "../../src/errors.ts";
import { LinuxSyscalls } from "../../src/sys/syscalls.ts";
import { requires } from "../_helpers/requires.ts";

const ready = requires("root");
const sys = new LinuxSyscalls();

const runtime = {
  name: "fake",
  binary: "/bin/false",
  exe: "/bin/false",
  root: "/nonexistent",
  globalArgs: () => ["--root", "/nonexistent"],
} as unknown as OciRuntime;

/** A conmon stand-in: `body` runs with $SYNC set to the fd conmon would write to. */
async function fake(dir: string, body: string): Promise<string> {
  const path = `${dir}/conmon-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
while [ $# -gt 0 ]; do
  [ "$1" = --conmon-pidfile ] && echo $$ > "$2"
  shift
done
SYNC=/proc/self/fd/$_OCI_SYNCPIPE
${body}
`,
    { mode: 0o755 },
  );
  return path;
}

function fifoFds(fifo: string): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      return "";
    }
  }).filter((l) => l === fifo);
}

async function create(dir: string, conmon: string, timeoutMs?: number) {
  return await createWithConmon(sys, {
    conmon,
    runtime,
    id: "c1",
    name: "c1",
    bundle: dir,
    workDir: `${dir}/work`,
    logPath: `${dir}/log`,
    exitDir: dir,
    socketDir: dir,
    timeoutMs,
  });
}

Deno.test({
  name: "createWithConmon() hands conmon the sync pipe as an inherited fd and reads its answer",
  ignore: !ready,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-conmon-" });
    try {
      const ok = await fake(
        dir,
        `[ -p "$SYNC" ] || { echo "fd $_OCI_SYNCPIPE is not the FIFO" >&2; exit 1; }
echo '{"data": 4242}' > "$SYNC"`,
      );
      assert.equal(await create(dir, ok), 4242);
      assert.deepEqual(fifoFds(`${dir}/work/sync`), [], "no fd of the FIFO is left open here");
      assert.equal(fifoFds(`${dir}/work/sync (deleted)`).length, 0);

      const failed = await fake(dir, `echo '{"data": -1, "message": "no such bundle"}' > "$SYNC"`);
      await assert.rejects(create(dir, failed), (e: unknown) => {
        assert.ok(e instanceof RuntimeError);
        assert.match(e.message, /fake create failed/);
        assert.equal(e.stderr, "no such bundle");
        return true;
      });

      const complains = await fake(dir, `echo "conmon: unknown option --bogus" >&2; exit 1`);
      await assert.rejects(create(dir, complains), (e: unknown) => {
        assert.ok(e instanceof RuntimeError);
        assert.match(e.message, /conmon exited without reporting/);
        assert.match(e.stderr ?? "", /unknown option --bogus/);
        return true;
      });

      // As conmon, it leads a session of its own: its group is what gets killed.
      const hangs = await fake(dir, `exec setsid sleep 30`);
      const t0 = performance.now();
      await assert.rejects(create(dir, hangs, 300), /conmon gave no answer in 300 ms/);
      assert.ok(performance.now() - t0 < 10_000, "the hung stand-in was killed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
