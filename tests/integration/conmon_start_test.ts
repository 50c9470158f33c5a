/**
 * createWithConmon() with `ready` (the early spawn of a container's create):
 * conmon waits on its start pipe until `ready` resolves; when `ready`
 * rejects it is killed before it did anything; when this process dies
 * first, conmon reads EOF instead of waiting forever. Stand-ins for conmon
 * (shell scripts) show what conmon saw.
 */
import assert from "node:assert/strict";
import { createWithConmon } from "../../src/oci/conmon.ts";
import type { OciRuntime } from "../../src/oci/runtime.ts";
import { LinuxSyscalls } from "../../src/sys/syscalls.ts";
import { REPO, requires } from "../_helpers/requires.ts";

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
 * A conmon stand-in: notes its pid, reads one byte from its start pipe (the
 * inherited fd itself), notes what it read ("EOF" for nothing), answers.
 */
async function standIn(dir: string): Promise<string> {
  const path = `${dir}/conmon`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
echo $$ > ${dir}/pid
got=$(eval "dd bs=1 count=1 status=none <&$_OCI_STARTPIPE")
echo "\${got:-EOF}" > ${dir}/got
echo '{"data": 4242}' > /proc/self/fd/$_OCI_SYNCPIPE
`,
    { mode: 0o755 },
  );
  return path;
}

const options = (dir: string, conmon: string, r: Promise<unknown>) => ({
  conmon,
  runtime,
  id: "c1",
  name: "c1",
  bundle: dir,
  workDir: `${dir}/work`,
  logPath: `${dir}/log`,
  exitDir: dir,
  socketDir: dir,
  ready: r,
});

async function until(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(fn(), "timed out");
}

const exists = (p: string) => {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};
const alive = (pid: number) =>
  exists(`/proc/${pid}`) &&
  !/^\S+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));

Deno.test({
  name:
    "createWithConmon(ready): conmon is spawned at once, waits, and goes on with a 0 once ready",
  ignore: !ready,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-cstart-" });
    try {
      let go!: () => void;
      const r = new Promise<void>((res) => go = res);
      const made = createWithConmon(sys, options(dir, await standIn(dir), r));
      await until(() => exists(`${dir}/pid`));
      await new Promise((res) => setTimeout(res, 100));
      assert.ok(!exists(`${dir}/got`), "it waits for the start pipe");
      go();
      assert.equal(await made, 4242);
      assert.equal(Deno.readTextFileSync(`${dir}/got`).trim(), "0");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "createWithConmon(ready) when ready rejects: conmon is killed before it read anything, its work dir goes, the rejection is thrown",
  ignore: !ready,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-cstart-" });
    try {
      let stop!: (e: Error) => void;
      const r = new Promise<void>((_, rej) => stop = rej);
      const made = createWithConmon(sys, options(dir, await standIn(dir), r));
      await until(() => exists(`${dir}/pid`));
      const pid = Number(Deno.readTextFileSync(`${dir}/pid`));
      stop(new Error("the overlay failed"));
      await assert.rejects(made, /the overlay failed/);
      assert.ok(!alive(pid), "the stand-in is gone");
      assert.ok(!exists(`${dir}/got`), "it never went on");
      assert.ok(!exists(`${dir}/work`), "its work dir is removed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "createWithConmon(ready) in a process that dies before ready: conmon reads EOF and goes on, it does not wait forever",
  ignore: !ready,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-cstart-" });
    try {
      const conmon = await standIn(dir);
      const script = `${dir}/dies.ts`;
      await Deno.writeTextFile(
        script,
        `import { createWithConmon } from "${REPO}/src/oci/conmon.ts";
import { LinuxSyscalls } from "${REPO}/src/sys/syscalls.ts";
const runtime = { name: "fake", exe: "/bin/false", globalArgs: () => [] };
void createWithConmon(new LinuxSyscalls(), {
  conmon: ${JSON.stringify(conmon)}, runtime: runtime as never, id: "c1", name: "c1",
  bundle: ${JSON.stringify(dir)}, workDir: ${JSON.stringify(`${dir}/work`)},
  logPath: ${JSON.stringify(`${dir}/log`)}, exitDir: ${JSON.stringify(dir)},
  socketDir: ${JSON.stringify(dir)}, ready: new Promise(() => {}),
});
for (let i = 0; i < 500; i++) {
  try { Deno.lstatSync(${
          JSON.stringify(`${dir}/pid`)
        }); break; } catch { await new Promise((r) => setTimeout(r, 10)); }
}
Deno.exit(0);
`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", script],
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      await until(() => exists(`${dir}/got`));
      assert.equal(Deno.readTextFileSync(`${dir}/got`).trim(), "EOF");
      const pid = Number(Deno.readTextFileSync(`${dir}/pid`));
      await until(() => !alive(pid));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
