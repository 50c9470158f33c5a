/**
 * `rkl stats` and `rkl events` as a docker user types them, against real
 * containers (runtime, conmon, CNI, cgroupfs): CPU %, memory limit,
 * network bytes from the container's netns, pids, the live table, the
 * template and JSON formats; events from the records, streamed as they
 * happen; pause and unpause through the freezer. Leaves the host census as
 * it was.
 */
import assert from "node:assert/strict";
import { type Census, census } from "../_helpers/census.ts";
import {
  assertRejected,
  cleanupAfterAll,
  envTest,
  makeEnv,
  rkl,
  rklOk,
  waitFor,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("stats", 55) : undefined;
let baseline: Census | undefined;
const BUSYBOX = `${REPO}/bundles/busybox`;

function test(name: string, fn: () => Promise<void>): void {
  envTest(ready, () => env!, name, async () => {
    baseline ??= await census(env!);
    await fn();
  });
}

async function runContainer(name: string, body: string, network = true): Promise<void> {
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(path, `name: ${name}\nimage: ${BUSYBOX}\n${body}`);
  await rklOk(env!, ["container", "run", "--network", network ? env!.network : "none", path]);
}

interface StatsLine {
  Name: string;
  CPUPerc: string;
  MemUsage: string;
  MemPerc: string;
  NetIO: string;
  BlockIO: string;
  PIDs: string;
}

async function statsJson(...names: string[]): Promise<StatsLine[]> {
  const out = await rklOk(env!, ["stats", "--no-stream", "--format", "json", ...names]);
  return out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** "1.234kB" → bytes. */
function bytes(s: string): number {
  const m = /^([\d.]+)(B|kB|MB|GB|KiB|MiB|GiB)$/.exec(s.trim());
  assert.ok(m, `not a size: ${s}`);
  const mult: Record<string, number> = {
    B: 1,
    kB: 1e3,
    MB: 1e6,
    GB: 1e9,
    KiB: 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
  };
  return Number(m[1]) * mult[m[2]];
}

/** Spawns `rkl ARGS` with piped stdout; lines() yields what it prints. */
function spawnRkl(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, ...args],
    env: env!.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) text += dec.decode(chunk, { stream: true });
  })();
  return {
    child,
    text: () => text,
    async stop(): Promise<Deno.CommandStatus> {
      child.kill("SIGINT");
      const st = await child.status;
      await reading;
      await child.stderr.cancel();
      return st;
    },
  };
}

test("rkl stats --no-stream: CPU %, the memory limit, network bytes from the netns and pids of real containers", async () => {
  await runContainer(
    "busy",
    `args: ["sh", "-c", "while :; do :; done"]\nresources:\n  limits:\n    memory: 64Mi\n`,
    false,
  );
  await runContainer("idle", `args: ["sleep", "600"]\n`);
  const ip = JSON.parse(await rklOk(env!, ["container", "state", "idle", "-o", "json"])).ip;
  // busybox's ping (busybox-static), from the host, inside the bridge this file made.
  const ping = await new Deno.Command("busybox", {
    args: ["ping", "-c", "3", "-W", "2", ip],
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(ping.code, 0, `ping ${ip}`);

  const rows = await statsJson();
  assert.deepEqual(rows.map((r) => r.Name), ["busy", "idle"]);
  const [busy, idle] = rows;
  // A spinning shell on a 2-CPU host uses about one CPU: docker's CPU % is ~100.
  assert.ok(parseFloat(busy.CPUPerc) > 40, `busy CPU ${busy.CPUPerc}`);
  assert.ok(parseFloat(idle.CPUPerc) < 10, `idle CPU ${idle.CPUPerc}`);
  assert.match(busy.MemUsage, / \/ 64MiB$/);
  assert.ok(bytes(busy.MemUsage.split(" / ")[0]) > 0);
  assert.equal(busy.NetIO, "0B / 0B", "network none: no interface but lo");
  const [rx, tx] = idle.NetIO.split(" / ").map(bytes);
  assert.ok(rx >= 3 * 84 && tx >= 3 * 84, `3 pings each way: ${idle.NetIO}`);
  assert.equal(busy.PIDs, "1");
  assert.match(idle.BlockIO, /^[\d.]+[kMG]?B \/ [\d.]+[kMG]?B$/);

  // The table docker prints, and a template.
  const table = await rklOk(env!, ["stats", "--no-stream", "idle"]);
  assert.match(
    table.split("\n")[0],
    /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/,
  );
  assert.equal(table.trim().split("\n").length, 2);
  const tmpl = await rklOk(env!, [
    "stats",
    "--no-stream",
    "--format",
    "{{.Name}}:{{.PIDs}}",
    "busy",
    "idle",
  ]);
  assert.equal(tmpl, "busy:1\nidle:1\n");

  // Bad input: one line, exit 2; a name that is not there: exit 1.
  assertRejected(
    "bad field",
    await rkl(env!, ["stats", "--no-stream", "--format", "{{.Nope}}"]),
    /--format: template: no field "Nope"/,
  );
  const missing = await rkl(env!, ["stats", "--no-stream", "ghost"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no container "ghost"/);

  // Stopped containers only with -a.
  await rklOk(env!, ["container", "stop", "-t", "0", "busy"]);
  assert.deepEqual((await statsJson()).map((r) => r.Name), ["idle"]);
  const all = await rklOk(env!, ["stats", "--no-stream", "-a", "--format", "{{.Name}}"]);
  assert.equal(all, "busy\nidle\n");
  await rklOk(env!, ["container", "rm", "-f", "busy"]);
  await rklOk(env!, ["container", "rm", "-f", "idle"]);
  assert.deepEqual(await census(env!), baseline);
});

test("rkl stats streams a frame a second until ^C; pause freezes the container, unpause thaws it", async () => {
  await runContainer(
    "spin",
    `args: ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]\n`,
    false,
  );
  const s = spawnRkl(["stats", "--format", "{{.Name}} {{.CPUPerc}}"]);
  await waitFor("three frames", () => s.text().split("\n").filter(Boolean).length >= 3, 15_000);
  const st = await s.stop();
  assert.ok(st.success, `stats exits 0 on ^C (code ${st.code})`);
  for (const line of s.text().trim().split("\n")) assert.match(line, /^spin \d+\.\d\d%$/);

  assert.equal(await rklOk(env!, ["container", "pause", "spin"]), "spin\n");
  const ls = await rklOk(env!, ["container", "ls"]);
  assert.match(ls, /^spin\s+paused\s/m);
  // Past the 2 s a kept reading is used for: CPU % over a window that is all frozen.
  await new Promise((r) => setTimeout(r, 2_100));
  const frozenCpu = parseFloat((await statsJson("spin"))[0].CPUPerc);
  assert.ok(frozenCpu < 5, `a frozen container uses no CPU: ${frozenCpu}`);
  const twice = await rkl(env!, ["container", "pause", "spin"]);
  assert.equal(twice.code, 1, "a state conflict, as docker's");
  assert.match(twice.stderr, /^rkl: Cannot pause "spin": it is already paused\n$/);
  await rklOk(env!, ["container", "unpause", "spin"]);
  await new Promise((r) => setTimeout(r, 2_100));
  assert.ok(parseFloat((await statsJson("spin"))[0].CPUPerc) > 40, "thawed, it spins again");
  // A paused container stops gracefully: its TERM trap runs (the runtime's `kill --all`
  // freezes, signals and thaws), no grace period is sat out.
  await rklOk(env!, ["container", "pause", "spin"]);
  const t0 = Date.now();
  await rklOk(env!, ["container", "stop", "-t", "5", "spin"]);
  const stopped = JSON.parse(await rklOk(env!, ["container", "state", "spin", "-o", "json"]));
  assert.equal(stopped.exitCode, 0, "the TERM trap ran");
  assert.ok(Date.now() - t0 < 4_000, "no grace period sat out");
  await rklOk(env!, ["container", "rm", "spin"]);
  assert.deepEqual(await census(env!), baseline);
});

test("rkl events: the records' history with --since/--until, then create, start, die and destroy as they happen", async () => {
  const t0 = new Date().toISOString();
  await runContainer("ev1", `args: ["sleep", "600"]\n`, false);
  const past = await rklOk(env!, ["events", "--since", t0, "--until", "0s"]);
  const lines = past.trim().split("\n");
  assert.equal(lines.length, 2, past);
  assert.match(lines[0], /^\S+Z container create ev1 \(image=.*busybox\)$/);
  assert.match(lines[1], /^\S+Z container start ev1 /);
  // --until before this test: ev1 is not there; what is, is the event log's lines of the
  // earlier tests (signals, stops, pauses, and each removal's die and destroy): their records,
  // and so the create and start those told, are gone.
  const early = await rklOk(env!, ["events", "--since", "1h", "--until", t0]);
  for (const l of early.split("\n").filter(Boolean)) {
    assert.match(l, / container (kill|stop|pause|unpause|die|destroy) /, early);
  }
  assert.equal(
    await rklOk(env!, ["events", "--since", "1h", "--until", t0, "--filter", "container=ev1"]),
    "",
  );

  const s = spawnRkl(["events", "--filter", "type=container", "--format", "json"]);
  await new Promise((r) => setTimeout(r, 1500));
  await runContainer("ev2", `args: ["sh", "-c", "sleep 0.5; exit 3"]\n`, false);
  await waitFor("ev2's die", () => s.text().includes('"die"'), 15_000);
  await rklOk(env!, ["container", "rm", "ev2"]);
  await waitFor("ev2's destroy", () => s.text().includes('"destroy"'), 10_000);
  assert.ok((await s.stop()).success);
  const evs = s.text().trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    evs.filter((e) => e.Actor.ID === "ev2").map((e) => e.Action),
    ["create", "start", "die", "destroy"],
  );
  const die = evs.find((e) => e.Action === "die");
  assert.equal(die.Type, "container");
  assert.equal(die.Actor.Attributes.exitCode, "3");
  assert.equal(typeof die.time, "number");
  assert.ok(!evs.some((e) => e.Actor.ID === "ev1"), "ev1's past is not streamed without --since");

  const filtered = await rklOk(env!, [
    "events",
    "--since",
    t0,
    "--until",
    "0s",
    "--filter",
    "event=start",
    "--filter",
    "container=ev1",
  ]);
  assert.equal(filtered.trim().split("\n").length, 1);
  assertRejected(
    "bad filter",
    await rkl(env!, ["events", "--filter", "colour=red"]),
    /keys are type, container, pod, image, label and event/,
  );
  assertRejected(
    "bad time",
    await rkl(env!, ["events", "--since", "last tuesday"]),
    /--since "last tuesday": give a time/,
  );
  await rklOk(env!, ["container", "rm", "-f", "ev1"]);
  assert.deepEqual(await census(env!), baseline);
});

cleanupAfterAll(env);
