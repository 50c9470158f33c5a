/**
 * More of what a docker user types: `exec -it -e -w -u` in a real terminal
 * (tmux), `run --restart on-failure:2` with `rkl daemon` counting the
 * restarts (inspect's `restarts`, set back to 0 by `rkl start`), `compose cp`
 * both ways, and `ps`/`stats --no-stream` on their short path: the same
 * output as the full command (served by the daemon), and the full command
 * when a container exited behind rkl's back. Each test ends with the host
 * census as it began.
 */
import assert from "node:assert/strict";
import { censusTests, makeEnv, rkl, rklOk, waitFor, waitForSocket } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { busyboxTerminal, tmuxPresent } from "../_helpers/terminal.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { composeTools } from "../_helpers/compose.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry") &&
  tmuxPresent();
const env = ready ? await makeEnv("dmore", 43) : undefined;
const { test } = censusTests(ready, () => env!);
const { projectDir, compose, composeOk } = composeTools(() => env!);

const { until, type } = await busyboxTerminal(ready, env, `rkl-dmore-${Deno.pid}`);

/** `rkl ARGS` with RKL_TRACE=1. */
async function rklTraced(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, ...args],
    env: { ...env!.env, RKL_TRACE: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

const inspect = async (name: string) => JSON.parse(await rklOk(env!, ["inspect", name]))[0];

test("exec -it -e -w -u: the variable, the directory and the ids in a real terminal; -u by name", async () => {
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "tty3",
    "--network",
    "none",
    "busybox",
    "sleep",
    "300",
  ]);
  await type(`clear; rkl exec -it -e GREETING=hi-there -w /tmp -u 1234:567 tty3 sh; echo "rc=$?"`);
  await until("the exec'd shell's prompt", /\/tmp \$ $/m);
  await type('echo "[$GREETING] [$(pwd)] [$(id -u):$(id -g)]"; tty');
  await until("-e, -w and -u applied", /^\[hi-there\] \[\/tmp\] \[1234:567\]\n\/dev\/pts\/\d+$/m);
  await type("exit 6");
  await until("the exec's exit code", /^rc=6$/m);
  // -u by name: the container's own /etc/passwd and /etc/group.
  assert.equal(await rklOk(env!, ["exec", "-u", "nobody", "tty3", "id", "-u"]), "65534\n");
  assert.equal(await rklOk(env!, ["exec", "-u", "nobody:root", "tty3", "id", "-g"]), "0\n");
  const ghost = await rkl(env!, ["exec", "-u", "ghost", "tty3", "id"]);
  assert.equal(ghost.code, 2);
  assert.match(ghost.stderr, /user "ghost" is not in the container's \/etc\/passwd/);
  await rklOk(env!, ["rm", "-f", "tty3"]);
});

test("run --restart on-failure:2: the daemon restarts twice, counts it, and start sets the count back", async () => {
  const manifests = `${env!.dir}/manifests-restart`;
  Deno.mkdirSync(manifests, { recursive: true });
  const d = startDaemon(env!, manifests, { args: ["--backoff", "200", "--backoff-max", "400"] });
  try {
    const bad = await rkl(env!, ["run", "-d", "--restart", "always:2", "busybox", "true"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /a retry count goes only with on-failure/);
    await rklOk(env!, [
      "run",
      "-d",
      "--name",
      "flaky",
      "--network",
      "none",
      "--restart",
      "on-failure:2",
      "busybox",
      "sh",
      "-c",
      "sleep 0.3; exit 3",
    ]);
    await waitFor("two restarts", async () => (await inspect("flaky")).restarts === 2, 30_000);
    await waitFor("exited after the second", async () => {
      const s = await inspect("flaky");
      return s.status === "exited" && s.exitCode === 3;
    }, 30_000);
    // Longer than the back-off: a third restart would have come by now.
    await new Promise((r) => setTimeout(r, 2_000));
    const s = await inspect("flaky");
    assert.equal(s.restarts, 2, "no third restart");
    assert.equal(s.status, "exited");
    assert.match(await rklOk(env!, ["ps", "-a", "--filter", "name=flaky"]), /Exited \(3\)/);
    // docker's `start` sets the count back: the daemon may restart it twice more.
    await rklOk(env!, ["start", "flaky"]);
    assert.ok((await inspect("flaky")).restarts < 2, "start set the count back");
    await waitFor(
      "two restarts again",
      async () => (await inspect("flaky")).restarts === 2,
      30_000,
    );
  } finally {
    await stopDaemon(d);
    await rkl(env!, ["rm", "-f", "flaky"]);
  }
});

test("ps and stats --no-stream: the short path prints what the full command prints, and steps aside for an exited container", async () => {
  for (const n of ["sp1", "sp2"]) {
    await rklOk(env!, [
      "run",
      "-d",
      "--name",
      n,
      "--network",
      "none",
      "-l",
      "team=a",
      "busybox",
      "sleep",
      "300",
    ]);
  }
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "sp3",
    "--network",
    "none",
    "busybox",
    "sh",
    "-c",
    "exit 5",
  ]);
  await waitFor("sp3 exited", async () => {
    const r = await rkl(env!, ["ps", "-a", "--filter", "name=sp3"]);
    return /Exited \(5\)/.test(r.stdout);
  });
  const short = async (args: string[]) => {
    // RKL_TRACE: runs in-process (never served) and says which path printed.
    const r = await rklTraced(args);
    assert.equal(r.code, 0, r.stderr);
    return { out: r.stdout, light: /trace: light: written/.test(r.stderr) };
  };
  const forms = [
    ["ps"],
    ["ps", "-aq"],
    ["ps", "-a", "--no-trunc", "--filter", "label=team=a"],
    ["ps", "--format", "{{.Names}} {{.Status}} {{.Command}}"],
    ["ps", "-a", "--format", "json"],
    ["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"],
  ];
  const mine = [];
  for (const f of forms) {
    const r = await short(f);
    assert.ok(r.light, `${f.join(" ")}: on the short path`);
    mine.push(r.out);
  }
  assert.match(mine[0], /^NAMES\s+IMAGE\s+COMMAND/);
  assert.match(mine[0], /sp1\s+busybox\s+"sleep 300"/);
  assert.doesNotMatch(mine[0], /sp3/);
  assert.deepEqual(mine[1].trim().split("\n").sort(), ["sp1", "sp2", "sp3"]);
  assert.match(mine[3], /^sp2 Up .* sleep 300$/m);
  assert.equal(mine[5], "sp1 1\nsp2 1\n");
  // The full command, served by the daemon, prints the same.
  const manifests = `${env!.dir}/manifests-ps`;
  Deno.mkdirSync(manifests, { recursive: true });
  const d = startDaemon(env!, manifests);
  try {
    await waitForSocket("the daemon's socket", `${env!.env.RKL_RUN_ROOT}/cli.sock`);
    for (const [i, f] of forms.entries()) {
      const served = await rklOk(env!, f);
      // The clock moved between the two: times (and so the columns' widths) may differ.
      const norm = (t: string) =>
        t.replace(/\d+ seconds?|Less than a second/g, "N seconds").replace(/ +/g, " ");
      if (f[0] === "ps") assert.equal(norm(served), norm(mine[i]), f.join(" "));
      else assert.equal(served, mine[i], f.join(" "));
    }
  } finally {
    await stopDaemon(d);
  }
  // A container killed behind rkl's back: its exit code is what conmon wrote.
  const pid = (await inspect("sp2")).pid;
  Deno.kill(pid, "SIGKILL");
  await waitFor("sp2's exit file", () => {
    try {
      return Deno.readDirSync(`${env!.env.RKL_ROOT}/exits`).some((e) => e.name === "sp2");
    } catch {
      return false;
    }
  });
  const after = await short(["ps", "-a"]);
  assert.ok(after.light);
  assert.match(after.out, /sp2 .*Exited \(137\)/);
  // A record the short path does not know (another schema): the full command runs.
  const recs = `${env!.env.RKL_ROOT}/records/containers`;
  const sp1 = JSON.parse(Deno.readTextFileSync(`${recs}/sp1.json`));
  Deno.writeTextFileSync(`${recs}/sp1.json`, JSON.stringify({ ...sp1, schemaVersion: 99 }));
  const full = await short(["ps", "-a"]);
  assert.equal(full.light, false, "the full command ran");
  assert.doesNotMatch(full.out, /sp1/, "a record this rkl cannot read is not listed");
  Deno.writeTextFileSync(`${recs}/sp1.json`, JSON.stringify(sp1));
  assert.ok((await short(["ps", "-a"])).light, "the short path again");
  // Bad input is the full command's to refuse.
  const badFilter = await rkl(env!, ["ps", "--filter", "colour=red"]);
  assert.equal(badFilter.code, 2);
  assert.match(badFilter.stderr, /rkl filters by name, id, status, label and ancestor/);
  await rklOk(env!, ["rm", "-f", "sp1", "sp2", "sp3"]);
});

test("compose cp: into every replica and out of one, symlinks resolved inside the container", async () => {
  const dir = await projectDir("cpapp", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    command: ["sh", "-c", "mkdir -p /srv && ln -s / /srv/escape && ln -s /etc /srv/etc && sleep 300"]
    network_mode: none
    deploy:
      replicas: 2
`,
    "in/hello.txt": "hello from the host\n",
  });
  try {
    await composeOk(dir, ["up", "-d"]);
    await waitFor("the links made", async () => {
      const r = await compose(dir, ["exec", "app", "ls", "/srv/etc"]);
      return r.code === 0;
    });
    // Into the service: both replicas get it.
    await composeOk(dir, ["cp", "in/hello.txt", "app:/srv/hello.txt"]);
    for (const i of [1, 2]) {
      const r = await rklOk(env!, ["exec", `cpapp-app-${i}`, "cat", "/srv/hello.txt"]);
      assert.equal(r, "hello from the host\n");
    }
    // Out of replica 2 only, through a symlink to the container's /etc.
    const hostname = (i: number) => rklOk(env!, ["exec", `cpapp-app-${i}`, "cat", "/etc/hostname"]);
    await composeOk(dir, ["cp", "--index", "2", "app:/srv/etc/hostname", "out-hostname"]);
    assert.equal(Deno.readTextFileSync(`${dir}/out-hostname`), await hostname(2));
    // An absolute link to / stays in the container's root: its /etc/hostname, never the host's.
    await composeOk(dir, ["cp", "app:/srv/escape/etc/hostname", "out-escape"]);
    assert.equal(Deno.readTextFileSync(`${dir}/out-escape`), await hostname(1));
    assert.notEqual(await hostname(1), Deno.readTextFileSync("/etc/hostname"));
    const none = await compose(dir, ["cp", "--index", "3", "app:/etc/hostname", "x"]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /service "app" has no container number 3/);
    const both = await compose(dir, ["cp", "in/hello.txt", "out"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /one side is SERVICE:PATH/);
  } finally {
    await compose(dir, ["down", "-t", "0"]);
  }
});
