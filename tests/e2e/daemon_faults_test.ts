/**
 * `rkl daemon` under faults: an init container that never ends, graceful
 * removal, one daemon per run root, a dead daemon's status, an oversized
 * manifest, a daemon killed half-way through a create, and a simulated
 * reboot. Each ends with the host census unchanged.
 */
import assert from "node:assert/strict";
import { podState as podStateIn, startDaemon, stopDaemon } from "../_helpers/daemon.ts";
import { censusTests, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("dfault", 7) : undefined;
const { test } = censusTests(ready, () => env!);

const BUSYBOX = `${REPO}/bundles/busybox`;
const podState = (name: string) => podStateIn(env!, name);
const pod = (name: string, body: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  terminationGracePeriodSeconds: 5\n${body}`;
const sleeper = (name: string) =>
  pod(name, `  containers:\n    - {name: main, image: ${BUSYBOX}, command: [sleep, "600"]}\n`);

async function daemonStatus() {
  return JSON.parse((await rkl(env!, ["daemon", "status", "-o", "json"])).stdout);
}

async function manifests(name: string): Promise<string> {
  const dir = `${env!.dir}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

test("a pod whose init container never ends holds up no other pod; removing it rolls it back", async () => {
  const dir = await manifests("m-hang");
  await Deno.writeTextFile(
    `${dir}/stuck.yaml`,
    pod(
      "stuck",
      `  initContainers:\n    - {name: wait, image: ${BUSYBOX}, command: [sleep, "600"]}\n  containers:\n    - {name: main, image: ${BUSYBOX}, command: [sleep, "600"]}\n`,
    ),
  );
  const daemon = startDaemon(env!, dir);
  try {
    await waitFor("stuck's init container runs", async () => {
      const s = await podState("stuck");
      return s?.containers?.some((c: { name: string; status: string }) =>
        c.name === "wait" && c.status === "running"
      );
    }, 20_000);
    // Dropped in while the other pod's create waits: it still comes up.
    await Deno.writeTextFile(`${dir}/free.yaml`, sleeper("free"));
    await waitFor(
      "free running",
      async () => (await podState("free"))?.phase === "Running",
      20_000,
    );
    const st = await daemonStatus();
    assert.equal(st.daemon.running, true);
    assert.equal(st.pods.find((p: { name: string }) => p.name === "stuck")?.working, "create");
    // The stuck pod's removal aborts its create: rolled back, nothing left.
    await Deno.remove(`${dir}/stuck.yaml`);
    await waitFor("stuck gone", async () => (await podState("stuck")) === undefined, 20_000);
    assert.equal((await podState("free")).phase, "Running");
    await Deno.remove(`${dir}/free.yaml`);
    await waitFor("free gone", async () => (await podState("free")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
  }
});

test("removing a manifest stops its pod gracefully: SIGTERM first, within the grace period", async () => {
  const dir = await manifests("m-grace");
  const out = `${env!.dir}/grace-out`;
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/graceful.yaml`,
    pod(
      "graceful",
      `  volumes: [{name: out, hostPath: {path: ${out}}}]\n  containers:\n    - name: main\n      image: ${BUSYBOX}\n      command: [sh, -c, "trap 'echo got-term > /out/term; exit 0' TERM; while true; do sleep 0.1; done"]\n      volumeMounts: [{name: out, mountPath: /out}]\n`,
    ),
  );
  const daemon = startDaemon(env!, dir);
  try {
    await waitFor(
      "graceful running",
      async () => (await podState("graceful"))?.phase === "Running",
      20_000,
    );
    await new Promise((r) => setTimeout(r, 300)); // the trap is set
    await Deno.remove(`${dir}/graceful.yaml`);
    await waitFor("graceful gone", async () => (await podState("graceful")) === undefined, 20_000);
    assert.equal(await Deno.readTextFile(`${out}/term`), "got-term\n");
  } finally {
    await stopDaemon(daemon);
  }
});

test("one daemon per run root; a dead daemon's status says so; an oversized manifest is refused unread", async () => {
  const dir = await manifests("m-one");
  await Deno.writeTextFile(`${dir}/huge.yaml`, "# x\n".repeat(600_000)); // 2.4 MB
  const first = startDaemon(env!, dir);
  try {
    await waitFor("status", async () => (await daemonStatus()).daemon?.running === true, 20_000);
    const out = await startDaemon(env!, dir, { stderr: "piped" }).output();
    assert.notEqual(out.code, 0);
    assert.match(new TextDecoder().decode(out.stderr), /already runs one/);
    await waitFor("error reported", async () => {
      const errors = Object.values((await daemonStatus()).daemon.errors) as string[];
      return errors.some((e) => /bytes; rkl reads manifests up to 1048576 bytes/.test(e));
    }, 20_000);
  } finally {
    await stopDaemon(first, "SIGKILL");
  }
  const text = (await rkl(env!, ["daemon", "status"])).stdout;
  assert.match(text, /daemon: not running \(pid \d+ is gone/);
  // The next daemon takes over the dead one's lock.
  const next = startDaemon(env!, dir);
  try {
    await waitFor(
      "taken over",
      async () => (await daemonStatus()).daemon?.running === true,
      20_000,
    );
  } finally {
    await stopDaemon(next);
  }
});

test("a static pod interrupted by the daemon's death is rolled back and made again", async () => {
  const dir = await manifests("m-int");
  await Deno.writeTextFile(`${dir}/again.yaml`, sleeper("again"));
  // Killed at the 9th trace point: inside the pod's create.
  const dying = startDaemon(env!, dir, { env: { RKL_TEST_KILL_AT: "9" } });
  assert.equal((await dying.status).signal, "SIGKILL");
  assert.equal((await podState("again"))?.phase, "Creating", "left half made");
  const daemon = startDaemon(env!, dir);
  try {
    await waitFor(
      "again running",
      async () => (await podState("again"))?.phase === "Running",
      20_000,
    );
    await Deno.remove(`${dir}/again.yaml`);
    await waitFor("again gone", async () => (await podState("again")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
  }
});

test("after a simulated reboot (every process killed, the run root wiped) the daemon brings every static pod back", async () => {
  const dir = await manifests("m-boot");
  const names = ["boot-a", "boot-b"];
  for (const n of names) await Deno.writeTextFile(`${dir}/${n}.yaml`, sleeper(n));
  let daemon = startDaemon(env!, dir);
  const before: Record<string, number> = {};
  try {
    for (const n of names) {
      await waitFor(`${n} running`, async () => (await podState(n))?.phase === "Running", 20_000);
      before[n] = (await podState(n)).containers[0].pid;
    }
  } finally {
    await stopDaemon(daemon);
  }
  // The "reboot": this env's conmons and containers killed, its part of /run wiped.
  const ps = await new Deno.Command("ps", { args: ["-eo", "pid=,args="], stdout: "piped" })
    .output();
  for (const line of new TextDecoder().decode(ps.stdout).split("\n")) {
    const [pid, cmd, ...args] = line.trim().split(/\s+/);
    if (cmd?.endsWith("conmon") && args.join(" ").includes(env!.runRoot)) {
      try {
        Deno.kill(-Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
  }
  const pause = (await Promise.all(names.map(podState))).map((s) => s.pausePid as number | null)
    .filter((p): p is number => p !== null);
  for (const pid of [...Object.values(before), ...pause]) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4]).filter((m) => m?.startsWith(env!.runRoot)).reverse();
  for (const m of mounts) await new Deno.Command("umount", { args: ["-l", m] }).output();
  await Deno.remove(env!.runRoot, { recursive: true });

  daemon = startDaemon(env!, dir);
  try {
    for (const n of names) {
      await waitFor(`${n} back`, async () => {
        const s = await podState(n);
        return s?.phase === "Running" && s.containers[0].pid !== before[n];
      }, 30_000);
    }
    for (const n of names) await Deno.remove(`${dir}/${n}.yaml`);
    for (const n of names) {
      await waitFor(`${n} gone`, async () => (await podState(n)) === undefined, 20_000);
    }
  } finally {
    await stopDaemon(daemon);
  }
});

test("the daemon rotates a chatty container's log at the size limit and keeps the file count", async () => {
  const dir = await manifests("m-logs");
  await Deno.writeTextFile(
    `${dir}/chatty.yaml`,
    pod(
      "chatty",
      `  containers:\n    - {name: main, image: ${BUSYBOX}, command: [sh, -c, "i=0; while true; do echo line-$i-padding-padding-padding; i=$((i+1)); sleep 0.002; done"]}\n`,
    ),
  );
  const limits = { RKL_LOG_SIZE_MAX: "4096", RKL_LOG_MAX_FILES: "3" };
  const daemon = startDaemon(env!, dir, { env: limits });
  const log = `${env!.root}/logs/chatty_main.log`;
  try {
    await waitFor("two rotations", () => {
      try {
        return Deno.statSync(`${log}.2`).isFile;
      } catch {
        return false;
      }
    }, 30_000);
    await new Promise((r) => setTimeout(r, 2500)); // more passes: the count must hold
    const files = [...Deno.readDirSync(`${env!.root}/logs`)].map((e) => e.name)
      .filter((n) => n.startsWith("chatty_main.log")).sort();
    assert.deepEqual(files, ["chatty_main.log", "chatty_main.log.1", "chatty_main.log.2"]);
    // Lines go on in the new file after each reopen, and the newest rotated one ends where it begins.
    const last = (await Deno.readTextFile(`${log}.1`)).trim().split("\n").at(-1)!;
    const lastN = Number(/line-(\d+)/.exec(last)![1]);
    await waitFor("new lines", async () => {
      const now = await rkl({ ...env!, env: { ...env!.env, ...limits } }, [
        "pod",
        "logs",
        "chatty",
        "main",
        "--tail",
        "1",
      ]);
      return Number(/line-(\d+)/.exec(now.stdout)?.[1] ?? -1) > lastN;
    });
  } finally {
    await Deno.remove(`${dir}/chatty.yaml`);
    await waitFor("chatty gone", async () => (await podState("chatty")) === undefined, 20_000);
    await stopDaemon(daemon);
  }
});

test("with no pause process, a restarted member joins the pod's pinned namespaces", async () => {
  const dir = await manifests("m-pins");
  await Deno.writeTextFile(
    `${dir}/pinned.yaml`,
    pod(
      "pinned",
      `  restartPolicy: Always\n  containers:\n    - {name: main, image: ${BUSYBOX}, command: [sh, -c, "sleep 1; exit 1"]}\n`,
    ),
  );
  const daemon = startDaemon(env!, dir);
  try {
    await waitFor(
      "pinned running",
      async () => (await podState("pinned"))?.phase === "Running",
      20_000,
    );
    const pins = `${env!.runRoot}/ns/p_pinned`;
    const pinned = { ipc: Deno.statSync(`${pins}/ipc`).ino, uts: Deno.statSync(`${pins}/uts`).ino };
    // No pause process holds them: between a member's exit and its restart,
    // the pinned files are all that keeps the pod's namespaces alive.
    assert.equal((await podState("pinned")).pausePid, null);
    const restartsBefore = (await podState("pinned")).containers[0].restarts as number;
    let member = 0;
    await waitFor("a restart with no process left in the namespaces", async () => {
      const s = await podState("pinned");
      const c = s?.containers[0];
      if (c?.status === "running" && c.restarts > restartsBefore) member = c.pid;
      return member > 0;
    }, 30_000);
    for (const t of ["ipc", "uts"] as const) {
      assert.equal(Deno.statSync(`/proc/${member}/ns/${t}`).ino, pinned[t], `${t} is the pod's`);
    }
    await Deno.remove(`${dir}/pinned.yaml`);
    await waitFor("pinned gone", async () => (await podState("pinned")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
  }
});

cleanupAfterAll(env);
