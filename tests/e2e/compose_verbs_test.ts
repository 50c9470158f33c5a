/**
 * The compose verbs a docker compose user types beyond up/down: create,
 * up --wait, port, ps --services/--status, top, images, pause/unpause,
 * run (one-off), kill, wait, rm -s -v, logs --since, up
 * --abort-on-container-exit, pull; against the real runtime, conmon, CNI
 * and cgroupfs. Leaves the host census as it was.
 */
import assert from "node:assert/strict";
import { assertRejected, cleanupAfterAll, makeEnv, rkl } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { composeTests, composeTools } from "../_helpers/compose.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("cverbs", 29) : undefined;
const { projectDir, compose, composeOk } = composeTools(() => env!);
const { test, assertCensusUnchanged } = composeTests(ready, () => env!);

/** A host port for this file: 28000 + 55 * 10 + k, unlikely to be taken. */
const PORT = 28550 + (Deno.pid % 40);

const APP = `services:
  web:
    image: ./bundles/busybox
    command: ["httpd", "-f", "-p", "8080"]
    ports: ["127.0.0.1:${PORT}:8080"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 3
  db:
    image: ./bundles/busybox
    command: ["sh", "-c", "echo one; sleep 1.5; echo two; exec sleep 600"]
    volumes: ["/data"]
`;

interface Ps {
  name: string;
  service: string;
  status: string;
  health: string | null;
}

async function ps(dir: string, ...flags: string[]): Promise<Ps[]> {
  return JSON.parse(await composeOk(dir, ["ps", "-a", "-o", "json", ...flags]));
}

test("create, up --wait, port, ps --services/--status, top, images, pause and unpause", async (dirs) => {
  const dir = await projectDir("cv", { "compose.yaml": APP });
  dirs.push(dir);
  await composeOk(dir, ["create"]);
  assert.deepEqual(
    (await ps(dir)).map((c) => [c.name, c.status]).sort(),
    [["cv-db-1", "created"], ["cv-web-1", "created"]],
  );
  // --wait returns once web is healthy (it has a healthcheck) and db runs.
  await composeOk(dir, ["up", "-d", "--wait", "--wait-timeout", "30"]);
  const up = await ps(dir);
  assert.deepEqual(up.map((c) => [c.name, c.status, c.health]).sort(), [
    ["cv-db-1", "running", null],
    ["cv-web-1", "running", "healthy"],
  ]);
  assert.equal(await composeOk(dir, ["port", "web", "8080"]), `127.0.0.1:${PORT}\n`);
  const noPort = await compose(dir, ["port", "web", "9999"]);
  assert.equal(noPort.code, 1);
  assert.match(noPort.stderr, /port 9999\/tcp of web: it is not published/);
  assertRejected("bad port", await compose(dir, ["port", "web", "http"]), /give a number/);
  assertRejected(
    "unknown service",
    await compose(dir, ["port", "nope", "80"]),
    /Cannot find service "nope"/,
  );
  assert.deepEqual(
    (await composeOk(dir, ["ps", "--services"])).trim().split("\n").sort(),
    ["db", "web"],
  );

  const top = await composeOk(dir, ["top", "db"]);
  assert.match(top, /^cv-db-1\n\s*UID\s+PID\s+PPID/);
  assert.match(top, /sleep 600/);
  const images = await composeOk(dir, ["images"]);
  assert.match(images.split("\n")[0], /^CONTAINER\s+REPOSITORY\s+TAG\s+IMAGE ID\s+SIZE$/);
  assert.match(images, /^cv-db-1\s+\S*bundles\/busybox\s+-/m);

  await composeOk(dir, ["pause", "db"]);
  assert.deepEqual((await ps(dir, "--status", "paused")).map((c) => c.name), ["cv-db-1"]);
  assert.deepEqual((await ps(dir, "--status", "running")).map((c) => c.name), ["cv-web-1"]);
  assert.match(await composeOk(dir, ["ps"]), /^cv-db-1\s+db\s+paused/m);
  await composeOk(dir, ["unpause"]);
  assert.deepEqual(await ps(dir, "--status", "paused"), []);
  assertRejected("bad status", await compose(dir, ["ps", "--status", "asleep"]), /--status/);

  // Only lines written after --since.
  const since = await composeOk(dir, ["logs", "--since", "1h", "db"]);
  assert.match(since, /one\n.*two\n/s);
  const all = await composeOk(dir, ["logs", "db"]);
  assert.match(all, /one/);
  const future = await composeOk(dir, ["logs", "--since", "0s", "db"]);
  assert.equal(future, "");
  const until = await composeOk(dir, ["logs", "--until", "1h", "db"]);
  assert.equal(until, "");

  await composeOk(dir, ["down", "-t", "0"]);
  await assertCensusUnchanged();
});

test("run: a one-off with the service's network, volumes and -e; --rm; exit code passed; -d keeps it", async (dirs) => {
  const dir = await projectDir("cvrun", { "compose.yaml": APP });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d", "web"]);
  const r = await compose(dir, [
    "run",
    "--rm",
    "--no-deps",
    "-e",
    "FOO=bar",
    "db",
    "sh",
    "-c",
    "echo foo=$FOO; grep -c web /etc/hosts; wget -q -O /dev/null http://web:8080/ 2>&1; echo wget=$?; ls -d /data; exit 7",
  ]);
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stdout, /^foo=bar\n1\n/);
  // httpd answers 404 for / with no index: the name resolved and the port answered.
  assert.match(r.stdout, /wget=\d+\n\/data\n$/);
  assert.doesNotMatch(r.stdout, /bad address|Connection refused/);
  const left = await rkl(env!, ["container", "ls", "-q"]);
  assert.deepEqual(left.stdout.trim().split("\n"), ["cvrun-web-1"], "--rm removed the one-off");

  const d = await compose(dir, ["run", "-d", "db", "sleep", "600"]);
  assert.equal(d.code, 0, d.stderr);
  const name = d.stdout.trim();
  assert.match(name, /^cvrun-db-run-[0-9a-f]{12}$/);
  // A one-off is not one of the service's replicas.
  assert.deepEqual((await ps(dir)).map((c) => c.name), ["cvrun-web-1"]);
  const st = JSON.parse((await rkl(env!, ["container", "state", name, "-o", "json"])).stdout);
  assert.equal(st.status, "running");
  assert.equal(st.labels["com.docker.compose.oneoff"], "True");
  assert.equal((await rkl(env!, ["container", "rm", "-f", name])).code, 0);
  assertRejected("--rm -d", await compose(dir, ["run", "--rm", "-d", "db"]), /cannot go together/);
  await composeOk(dir, ["down", "-t", "0"]);
  await assertCensusUnchanged();
});

test("kill, wait, rm -s -v, up --abort-on-container-exit and pull", async (dirs) => {
  const dir = await projectDir("cvk", { "compose.yaml": APP });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const vol = (await ps(dir)).length;
  assert.equal(vol, 2);
  await composeOk(dir, ["kill", "db"]);
  const w = await compose(dir, ["wait", "db"]);
  assert.equal(w.stdout, "cvk-db-1 137\n");
  assert.equal(w.code, 137);
  // The anonymous volume of db, then rm -v removes it with the container.
  const anon = `${env!.root}/compose/cvk/anon`;
  const before = [...Deno.readDirSync(anon)].map((e) => e.name);
  assert.equal(before.length, 1, `one anonymous volume: ${before}`);
  const rm = await compose(dir, ["rm", "-v"]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stderr, /removed cvk-db-1/);
  assert.deepEqual([...Deno.readDirSync(anon)], []);
  // web runs: rm leaves it, rm -s stops it first.
  assert.match((await compose(dir, ["rm", "web"])).stderr, /no stopped containers/);
  await composeOk(dir, ["rm", "-s", "-f", "web"]);
  assert.deepEqual(await ps(dir), []);
  assertRejected(
    "bad signal",
    await compose(dir, ["kill", "-s", "KILL ME", "web"]),
    /--signal "KILL ME"/,
  );

  const abort = await projectDir("cvabort", {
    "compose.yaml": `services:
  long:
    image: ./bundles/busybox
    command: ["sleep", "600"]
  short:
    image: ./bundles/busybox
    command: ["sh", "-c", "echo bye; sleep 1; exit 5"]
`,
  });
  dirs.push(abort);
  const t0 = Date.now();
  const r = await compose(abort, ["up", "--abort-on-container-exit"]);
  assert.equal(r.code, 5, r.stderr);
  assert.ok(Date.now() - t0 < 30_000);
  assert.match(r.stdout, /short-1\s+\| bye/);
  assert.match(r.stderr, /cvabort-short-1 exited with code 5/);
  assert.deepEqual(
    (await ps(abort)).map((c) => [c.name, c.status]).sort(),
    [["cvabort-long-1", "exited"], ["cvabort-short-1", "exited"]],
  );
  // Local bundles: nothing to pull, no error.
  const pull = await compose(abort, ["pull"]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stderr, /is a local bundle, nothing to pull/);
  await composeOk(abort, ["down", "-t", "0"]);
  await composeOk(dir, ["down", "-v", "-t", "0"]);
  await assertCensusUnchanged();
});

test("events: the project's containers as they are made, signalled, exit and go; --json; nothing of another project", async (dirs) => {
  const one = `services:\n  app:\n    image: ./bundles/busybox\n    command: ["sleep", "600"]\n`;
  const dir = await projectDir("cvev", { "compose.yaml": one });
  const other = await projectDir("cvother", { "compose.yaml": one });
  dirs.push(dir, other);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "compose", "events", "--json"],
    cwd: dir,
    env: env!.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  // It prints nothing until something happens: its start is given a moment (it loads and
  // takes its first look of the records, which anything made after is new to).
  await new Promise((r) => setTimeout(r, 2000));
  await composeOk(other, ["up", "-d"]);
  await composeOk(dir, ["up", "-d"]);
  // SIGKILL: sleep, its PID namespace's init, ignores signals it has no handler for.
  await composeOk(dir, ["kill", "app"]);
  await composeOk(dir, ["down", "-t", "0"]);
  await composeOk(other, ["down", "-t", "0"]);
  await new Promise((r) => setTimeout(r, 1000));
  child.kill("SIGINT");
  assert.equal((await child.status).code, 0, await err);
  const events = (await out).trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(events.every((e) => e.id === "cvev-app-1" && e.service === "app"), await out);
  assert.deepEqual(events.map((e) => e.action), ["create", "start", "kill", "die", "destroy"]);
  assert.equal(events[2].attributes.signal, "9");
  assert.equal(events[3].attributes.exitCode, "137");
  assert.equal(events[0].attributes["com.docker.compose.project"], "cvev");
  await assertCensusUnchanged();
});

cleanupAfterAll(env);
