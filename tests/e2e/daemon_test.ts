/**
 * `rkl daemon` as an operator runs it: a manifests directory, edits, a broken
 * edit, removal, `kill -9` of the daemon and its adoption of what runs, and
 * the systemd unit checked by systemd-analyze.
 */
import assert from "node:assert/strict";
import { type Census, census } from "../_helpers/census.ts";
import { cleanupAfterAll, envTest, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import {
  podState as podStateIn,
  startDaemon as startDaemonIn,
  stopDaemon,
} from "../_helpers/daemon.ts";
import { unitFile } from "../../src/daemon/install.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("daemon", 4) : undefined;
let baseline: Census | undefined;

function test(name: string, fn: () => Promise<void>): void {
  envTest(ready, () => env!, name, async () => {
    baseline ??= await census(env!);
    await fn();
  });
}

const startDaemon = (manifests: string) => startDaemonIn(env!, manifests);
const podState = (name: string) => podStateIn(env!, name);

const manifest = (cmd: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: static-web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - {name: main, image: ${REPO}/bundles/busybox, command: [sh, -c, "${cmd}"]}\n`;

test("a manifest dropped in runs; an edit recreates; a broken edit keeps the old pod; removal cleans up", async () => {
  const dir = `${env!.dir}/manifests`;
  await Deno.mkdir(dir, { recursive: true });
  const daemon = startDaemon(dir);
  try {
    // Editor droppings are ignored.
    await Deno.writeTextFile(`${dir}/.static-web.yaml.swp`, "not yaml [");
    await Deno.writeTextFile(`${dir}/static-web.yaml`, manifest("echo v1; sleep 600"));
    await waitFor(
      "pod running",
      async () => (await podState("static-web"))?.phase === "Running",
      20_000,
    );
    const first = (await podState("static-web")).containers[0].pid;

    await Deno.writeTextFile(`${dir}/static-web.yaml`, manifest("echo v2; sleep 600"));
    await waitFor("recreated", async () => {
      const s = await podState("static-web");
      return s?.phase === "Running" && s.containers[0].pid !== first;
    }, 20_000);
    await waitFor(
      "v2 output",
      async () => (await rkl(env!, ["pod", "logs", "static-web"])).stdout === "v2\n",
    );
    const second = (await podState("static-web")).containers[0].pid;

    await Deno.writeTextFile(
      `${dir}/static-web.yaml`,
      "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: []}\n",
    );
    await waitFor("error in status", async () => {
      const st = JSON.parse((await rkl(env!, ["daemon", "status", "-o", "json"])).stdout);
      return Object.values(st.daemon?.errors ?? {}).some((e) =>
        /static-web\.yaml:3:18: metadata\.name/.test(String(e))
      );
    }, 20_000);
    const kept = await podState("static-web");
    assert.equal(kept.phase, "Running");
    assert.equal(kept.containers[0].pid, second, "the running pod was not touched");

    const status = JSON.parse((await rkl(env!, ["daemon", "status", "-o", "json"])).stdout);
    assert.equal(status.pods[0].file, `${dir}/static-web.yaml`);
    assert.match(status.pods[0].hash, /^[0-9a-f]{16}$/);

    await Deno.remove(`${dir}/static-web.yaml`);
    await waitFor("pod gone", async () => (await podState("static-web")) === undefined, 20_000);
    const logged = (await Deno.readTextFile(`${env!.root}/daemon/events.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    // The static pods' actions (the containers' own events aside) ...
    assert.deepEqual(
      logged.filter((e) => e.container === undefined).map((e) => e.action)
        .filter((a) => a !== "error" && a !== "destroy"),
      ["start", "create", "recreate", "delete"],
    );
    // ... and before the recreate and the delete, the old container stopped: signalled, then stop.
    const stops = logged.filter((e) => e.container !== undefined)
      .map((e) => e.action === "kill" ? `kill ${e.signal}` : e.action);
    assert.deepEqual(
      stops.filter((a) => a === "stop"),
      ["stop", "stop"],
      JSON.stringify(stops),
    );
    assert.ok(stops[0] === "kill 15", JSON.stringify(stops));
    // The recreate and the delete each removed the pod's record: docker's destroy, logged once each.
    assert.deepEqual(
      logged.filter((e) =>
        e.action === "destroy" && e.pod !== undefined && e.container === undefined
      ).map((e) => e.pod),
      ["static-web", "static-web"],
    );
  } finally {
    await stopDaemon(daemon);
  }
  assert.deepEqual(await census(env!), baseline, "the host census changed");
});

test("kill -9 of the daemon leaves the containers running; the next daemon adopts them", async () => {
  const dir = `${env!.dir}/manifests2`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/static-web.yaml`, manifest("sleep 600"));
  let daemon = startDaemon(dir);
  await waitFor(
    "pod running",
    async () => (await podState("static-web"))?.phase === "Running",
    20_000,
  );
  const before = await podState("static-web");
  await stopDaemon(daemon, "SIGKILL");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(
    (await podState("static-web")).containers[0].pid,
    before.containers[0].pid,
    "still running without the daemon",
  );
  daemon = startDaemon(dir);
  try {
    await waitFor("daemon synced", async () => {
      const st = JSON.parse((await rkl(env!, ["daemon", "status", "-o", "json"])).stdout);
      return st.daemon && st.daemon.pid !== undefined && st.daemon.lastSync > before.started;
    }, 20_000);
    await new Promise((r) => setTimeout(r, 1500)); // a relist or two
    const after = await podState("static-web");
    assert.equal(after.containers[0].pid, before.containers[0].pid, "adopted, not recreated");
    assert.equal(after.created, before.created);
    await Deno.remove(`${dir}/static-web.yaml`);
    await waitFor("pod gone", async () => (await podState("static-web")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
  }
  assert.deepEqual(await census(env!), baseline, "the host census changed");
});

test("a crashing container is restarted per restartPolicy with back-off; compose restart policies are served too", async () => {
  const dir = `${env!.dir}/manifests3`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/crash.yaml`,
    `apiVersion: v1\nkind: Pod\nmetadata: {name: crashy}\nspec:\n  restartPolicy: OnFailure\n  terminationGracePeriodSeconds: 1\n  containers:\n    - {name: main, image: ${REPO}/bundles/busybox, command: [sh, -c, "echo run; sleep 0.2; exit 3"]}\n    - {name: steady, image: ${REPO}/bundles/busybox, command: [sleep, "600"]}\n`,
  );
  // A compose service with restart: on-failure, started by `rkl compose up`.
  const proj = `${env!.dir}/restartproj`;
  await Deno.mkdir(proj, { recursive: true });
  await Deno.writeTextFile(
    `${proj}/compose.yaml`,
    `services:\n  flaky:\n    image: ${REPO}/bundles/busybox\n    command: ["sh", "-c", "sleep 0.2; exit 1"]\n    restart: on-failure\n`,
  );
  assert.equal((await rkl(env!, ["compose", "up", "-d"], { cwd: proj })).code, 0);
  const daemon = startDaemon(dir);
  try {
    await waitFor("three restarts", async () => {
      const s = await podState("crashy");
      return (s?.containers.find((c: { name: string }) => c.name === "main")?.restarts ?? 0) >= 3;
    }, 30_000);
    const s = await podState("crashy");
    assert.equal(
      s.containers.find((c: { name: string }) => c.name === "steady").restarts,
      0,
      "a running container is left alone",
    );
    // The log keeps every run's output.
    const logs = (await rkl(env!, ["pod", "logs", "crashy", "main"])).stdout.split("\n").filter(
      Boolean,
    );
    assert.ok(logs.length >= 3 && logs.every((l) => l === "run"), logs.join(","));
    // Back-off: the gaps between restarts grow (700, 1400, 2800 ms after each exit).
    const times = (await Deno.readTextFile(`${env!.root}/daemon/events.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l))
      .filter((e) => e.action === "restart" && e.container === "crashy_main").map((e) =>
        Date.parse(e.time)
      );
    assert.ok(times[2] - times[1] > times[1] - times[0], `growing gaps: ${times.join(",")}`);
    await waitFor("compose service restarted", async () => {
      const r = await rkl(env!, ["container", "state", "restartproj-flaky-1", "-o", "json"]);
      return r.code === 0 && JSON.parse(r.stdout).restarts >= 1;
    }, 30_000);
    // A user stop is final for the daemon.
    await rkl(env!, ["compose", "stop", "-t", "0"], { cwd: proj });
    const count = async () =>
      JSON.parse(
        (await rkl(env!, ["container", "state", "restartproj-flaky-1", "-o", "json"])).stdout,
      ).restarts;
    const before = await count();
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await count(), before, "stopped by the user: not restarted");
    await Deno.remove(`${dir}/crash.yaml`);
    await waitFor("pod gone", async () => (await podState("crashy")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
    await rkl(env!, ["compose", "down", "-t", "0"], { cwd: proj });
  }
  assert.deepEqual(await census(env!), baseline, "the host census changed");
});

test("a failing liveness probe restarts the container; readiness shows in daemon status", async () => {
  const dir = `${env!.dir}/manifests4`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/probed.yaml`,
    `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: ${REPO}/bundles/busybox
      command: [sh, -c, "mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p 8080 -h /www"]
      ports: [{name: http, containerPort: 8080}]
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: 1
        failureThreshold: 2
      readinessProbe:
        tcpSocket: {port: 8080}
        periodSeconds: 1
`,
  );
  const daemon = startDaemon(dir);
  try {
    await waitFor("ready", async () => {
      const st = JSON.parse((await rkl(env!, ["daemon", "status", "-o", "json"])).stdout);
      return st.daemon?.pods?.probed?.ready === true;
    }, 30_000);
    const before = (await podState("probed")).containers[0];
    assert.equal(before.restarts, 0);
    // Break the liveness endpoint: two failed probes, then a restart that makes it healthy again.
    await rkl(env!, ["pod", "exec", "probed", "web", "--", "rm", "/www/healthz"]);
    await waitFor(
      "restarted",
      async () => (await podState("probed"))?.containers[0].restarts >= 1,
      30_000,
    );
    const after = (await podState("probed")).containers[0];
    assert.notEqual(after.pid, before.pid);
    const events = (await Deno.readTextFile(`${env!.root}/daemon/events.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(
      events.some((e) =>
        e.action === "probe" && e.probe === "liveness" && e.container === "probed_web" &&
        e.error === "failed"
      ),
    );
    await Deno.remove(`${dir}/probed.yaml`);
    await waitFor("pod gone", async () => (await podState("probed")) === undefined, 20_000);
  } finally {
    await stopDaemon(daemon);
  }
  assert.deepEqual(await census(env!), baseline, "the host census changed");
});

Deno.test({
  name: "the systemd unit passes systemd-analyze verify",
  ignore: !requires("root"),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      // verify checks that ExecStart's binary exists: /bin/true stands in for the compiled rkl.
      const unit = `${dir}/rkl.service`;
      await Deno.writeTextFile(
        unit,
        unitFile({ bin: "/bin/true", manifests: "/etc/rk8s/manifests", runRoot: "/run/rkl" }),
      );
      const r = await new Deno.Command("systemd-analyze", {
        args: ["verify", unit],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
      const text = await Deno.readTextFile(unit);
      for (
        const line of [
          "Delegate=yes",
          "KillMode=process",
          "Restart=always",
          "After=network-online.target",
        ]
      ) assert.ok(text.includes(line), line);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "daemon install writes a unit that passes systemd-analyze verify; uninstall removes it",
  ignore: !ready,
  fn: async () => {
    const prefix = await Deno.makeTempDir();
    try {
      const e = { ...env!, env: { ...env!.env, RKL_INSTALL_ROOT: prefix } };
      const r = await rkl(e, ["daemon", "install", "--manifests", `${prefix}/etc/rk8s/manifests`]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /^ok +OCI runtime: /m);
      assert.match(r.stdout, /^ok +CNI plugin portmap: /m);
      const unit = `${prefix}/etc/systemd/system/rkl.service`;
      const text = await Deno.readTextFile(unit);
      // From a checkout the unit runs `deno run --no-code-cache -A …/cli/main.ts daemon`.
      assert.match(
        text,
        new RegExp(
          `^ExecStart=${Deno.execPath()} run --no-code-cache -A ${REPO}/cli/main.ts daemon --manifests `,
          "m",
        ),
      );
      assert.match(text, /^Environment=RKL_DAEMON_DENO_FLAGS=1$/m);
      const v = await new Deno.Command("systemd-analyze", {
        args: ["verify", unit],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(v.code, 0, new TextDecoder().decode(v.stderr));
      assert.ok(Deno.statSync(`${prefix}/etc/tmpfiles.d/rkl.conf`).isFile);
      assert.ok(Deno.statSync(`${prefix}/etc/rk8s/manifests`).isDirectory);
      assert.equal((await rkl(e, ["daemon", "uninstall"])).code, 0);
      assert.throws(() => Deno.statSync(unit), Deno.errors.NotFound);
    } finally {
      await Deno.remove(prefix, { recursive: true });
    }
  },
});

test("a running daemon serves CLI commands for thin clients with the same results; others run in-process", async () => {
  const dir = `${env!.dir}/manifests-thin`;
  const work = `${env!.dir}/thin`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  // A relative file and a relative bundle path: both resolve against the client's cwd.
  await Deno.symlink(`${REPO}/bundles`, `${work}/bundles`);
  await Deno.writeTextFile(
    `${work}/pod.yaml`,
    "apiVersion: v1\nkind: Pod\nmetadata: {name: thin}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - {name: main, image: ./bundles/busybox, command: [sleep, '600']}\n",
  );
  const daemon = startDaemonIn(env!, dir, { stderr: "piped", args: ["--no-cri"] });
  const log = new Response(daemon.stderr).text();
  const sock = `${env!.runRoot}/cli.sock`;
  const socketUp = async () => {
    try {
      return (await Deno.lstat(sock)).isSocket === true;
    } catch {
      return false;
    }
  };
  try {
    await waitFor("cli socket", socketUp, 20_000);
    assert.equal((await Deno.stat(sock)).mode! & 0o777, 0o600);

    const run = await rkl(env!, ["pod", "run", "pod.yaml"], { cwd: work });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "thin\n");
    assert.equal((await podState("thin"))?.phase, "Running");

    // Errors: the same line and exit code as in-process.
    const local = { ...env!, env: { ...env!.env, RKL_NO_DAEMON: "1" } };
    for (const args of [["pod", "run", "missing.yaml"], ["pod", "rm", "nosuchpod"]]) {
      const served = await rkl(env!, args, { cwd: work });
      const inProcess = await rkl(local, args, { cwd: work });
      assert.notEqual(served.code, 0);
      assert.deepEqual(served, inProcess, `${args.join(" ")}: served and in-process differ`);
    }

    // Another environment is not the daemon's: that client does the work itself.
    const other = { ...env!, env: { ...env!.env, RKL_PULL_TIMEOUT: "77" } };
    const list = await rkl(other, ["pod", "list", "-q"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^thin$/m);

    // `--runtime youki` names the daemon's own runtime (the default here): served.
    // runc is another runtime: that client does the work itself.
    for (const rt of ["youki", "runc"]) {
      const r = await rkl(env!, ["--runtime", rt, "pod", "list", "-q"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^thin$/m);
    }

    // compose up -d / ps / down are served too; the file interpolates the client's env.
    await Deno.mkdir(`${work}/app`);
    await Deno.writeTextFile(
      `${work}/app/compose.yaml`,
      "services:\n  web:\n    image: ../bundles/busybox\n    command: [sleep, '600']\n" +
        '    environment: {G: "${THIN_GREETING}"}\n    network_mode: none\n    stop_grace_period: 1s\n',
    );
    const withGreeting = { ...env!, env: { ...env!.env, THIN_GREETING: "hello from the client" } };
    const app = `${work}/app`;
    const up = await rkl(withGreeting, ["compose", "up", "-d"], { cwd: app });
    assert.equal(up.code, 0, up.stderr);
    const ps = await rkl(withGreeting, ["compose", "ps"], { cwd: app });
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /app-web-1/);
    const g = await rkl(withGreeting, [
      "container",
      "exec",
      "app-web-1",
      "--",
      "sh",
      "-c",
      "echo $G",
    ]);
    assert.equal(g.stdout, "hello from the client\n", g.stderr);
    const down = await rkl(withGreeting, ["compose", "down"], { cwd: app });
    assert.equal(down.code, 0, down.stderr);

    const rm = await rkl(env!, ["pod", "rm", "-f", "thin"]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(await podState("thin"), undefined);
  } finally {
    await stopDaemon(daemon);
  }
  const text = await log;
  assert.match(text, /cli: served pod run \(exit 0\)/);
  assert.match(text, /cli: served pod rm \(exit 0\)/);
  assert.match(text, /cli: served pod run \(exit 2\)/);
  assert.match(text, /cli: not served \(another environment\)/);
  assert.match(text, /cli: served pod list \(exit 0\)/);
  assert.match(text, /cli: not served \(another runtime\)/);
  for (const verb of ["up", "ps", "down"]) {
    assert.match(text, new RegExp(`cli: served compose ${verb} \\(exit 0\\)`));
  }
  await assert.rejects(Deno.lstat(sock), Deno.errors.NotFound, "the daemon removes its socket");

  // A socket left by a daemon killed with -9: clients run in-process.
  const again = startDaemonIn(env!, dir, { args: ["--no-cri"] });
  await waitFor("cli socket", socketUp, 20_000);
  await stopDaemon(again, "SIGKILL");
  const after = await rkl(env!, ["pod", "list", "-q"]);
  assert.equal(after.code, 0, after.stderr);
  await Deno.remove(sock);
  assert.deepEqual(await census(env!), baseline, "the host census changed");
});

cleanupAfterAll(env);
