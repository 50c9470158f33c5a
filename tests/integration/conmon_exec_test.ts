/**
 * execConmonSession() against a stand-in for conmon in exec mode: conmon
 * itself is started (no shell line in between) with its three FIFOs as
 * inherited fds named by _OCI_SYNCPIPE, _OCI_STARTPIPE and _OCI_ATTACHPIPE,
 * none of them left open in this process, and each report is read in turn.
 */
import assert from "node:assert/strict";
import { execConmonSession } from "../../src/oci/conmon_exec.ts";
import type { OciRuntime } from "../../src/oci/runtime.ts";
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

/**
 * A conmon stand-in. It records how it was started, then runs `body` with
 * $SYNC, $START and $ATTACH naming the fds conmon would use; like conmon,
 * its first process exits once the rest runs on in the background.
 */
async function fake(dir: string, body: string): Promise<string> {
  const path = `${dir}/conmon-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
echo "$0 $*" > "${dir}/argv"
env | grep '^_OCI_' | sort > "${dir}/env"
for fd in $_OCI_SYNCPIPE $_OCI_STARTPIPE $_OCI_ATTACHPIPE; do
  [ -p /proc/self/fd/$fd ] || { echo "fd $fd is not a FIFO" >&2; exit 1; }
done
SYNC=/proc/self/fd/$_OCI_SYNCPIPE
START=/proc/self/fd/$_OCI_STARTPIPE
ATTACH=/proc/self/fd/$_OCI_ATTACHPIPE
(
${body}
) &
echo $! > "${dir}/conmon.pid"
`,
    { mode: 0o755 },
  );
  return path;
}

function fifoFds(dir: string): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      return "";
    }
  }).filter((l) => l.startsWith(`${dir}/`) && l.includes(".fifo"));
}

function session(dir: string, conmon: string) {
  return execConmonSession(sys, {
    conmon,
    runtime,
    id: "c1",
    name: "c1",
    sessionId: "0123456789abcdef0123456789abcdef",
    dir,
    socketDir: dir,
    processFile: `${dir}/process.json`,
    stdin: true,
  });
}

Deno.test({
  name: "execConmonSession() starts conmon itself with three inherited FIFOs and reads its reports",
  ignore: !ready,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-conmon-exec-" });
    try {
      const ok = await fake(
        dir,
        `head -c1 "$START" > /dev/null
echo '{"data": 0}' > "$ATTACH"
head -c1 "$START" > /dev/null
echo '{"data": 4242}' > "$SYNC"
echo '{"data": 7, "message": "exited {really}"}' > "$SYNC"`,
      );
      const s = await session(dir, ok);
      try {
        assert.deepEqual(fifoFds(dir).length, 3, "this process holds only its own three ends");
        assert.equal(await s.start(), 4242);
        assert.equal(await s.exited(), 7);
      } finally {
        await s.close();
      }
      assert.deepEqual(fifoFds(dir), [], "closed: no fd of the FIFOs is left open here");
      const argv = Deno.readTextFileSync(`${dir}/argv`);
      assert.ok(argv.startsWith(`${ok} --api-version 1 -c c1 -u 0123456789abcdef`), argv);
      assert.match(
        argv,
        / --exec --exec-process-spec \S+\/process\.json --exec-attach --terminal /,
      );
      assert.match(argv, / --stdin --runtime-arg --root --runtime-arg \/nonexistent$/m);
      const env = Deno.readTextFileSync(`${dir}/env`).trim().split("\n");
      assert.deepEqual(env.map((l) => l.split("=")[0]), [
        "_OCI_ATTACHPIPE",
        "_OCI_STARTPIPE",
        "_OCI_SYNCPIPE",
      ]);
      assert.ok(env.every((l) => /^_OCI_[A-Z]+=\d+$/.test(l)), env.join(" "));

      const refuses = await fake(
        dir,
        `head -c1 "$START" > /dev/null
echo '{"data": -1}' > "$ATTACH"`,
      );
      await assert.rejects(session(dir, refuses), /conmon did not start the exec session/);

      const noExec = await fake(
        dir,
        `head -c1 "$START" > /dev/null
echo '{"data": 0}' > "$ATTACH"
head -c1 "$START" > /dev/null
echo '{"data": -1, "message": "exec failed: no such file"}' > "$SYNC"`,
      );
      const s2 = await session(dir, noExec);
      try {
        await assert.rejects(s2.start(), /exec failed: no such file/);
      } finally {
        await s2.close();
      }

      const complains = await fake(dir, `exit 0`);
      await Deno.writeTextFile(
        complains,
        `#!/bin/sh\necho "conmon: unknown option --bogus" >&2\nexit 1\n`,
      );
      await assert.rejects(
        session(dir, complains),
        /conmon did not start the exec session: conmon: unknown option --bogus/,
      );
      assert.deepEqual(fifoFds(dir), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
