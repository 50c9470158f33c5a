/**
 * `rkl compose` on real compose files, against the real runtime, conmon, CNI
 * and iptables: rk8s's example, name resolution, published ports, healthy
 * dependencies, .env interpolation, named volumes, re-up of changed services,
 * bad files, and a host census left as it was.
 */
import assert from "node:assert/strict";
import { assertRejected, cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { composeTests, composeTools } from "../_helpers/compose.ts";
import { projectNetworkName } from "../../src/workloads/compose.ts";
import { shortHash } from "../../src/workloads/host.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("compose", 3) : undefined;
const { projectDir, compose, composeOk } = composeTools(() => env!);
const { test, assertCensusUnchanged } = composeTests(ready, () => env!);

async function ps(
  dir: string,
): Promise<{ name: string; service: string; status: string; health: string | null; ip: string }[]> {
  return JSON.parse(await composeOk(dir, ["ps", "-a", "-o", "json"]));
}

const RK8S = await Deno.readTextFile(`${REPO}/tests/fixtures/rk8s-compose.yaml`);

test("rk8s's compose example: both run, front resolves back, the bind volume is visible", async (dirs) => {
  const dir = await projectDir("rk8s", {
    "compose.yaml": RK8S,
    "config.yaml": "a: 1\n",
    "tmp/mount/dir/hello.txt": "from the host\n",
  });
  dirs.push(dir);
  const up = await compose(dir, ["up", "-d"]);
  assert.equal(up.code, 0, up.stderr);
  const list = await ps(dir);
  assert.deepEqual(list.map((c) => [c.name, c.service, c.status]).sort(), [[
    "back",
    "backend",
    "running",
  ], ["front", "frontend", "running"]]);
  const ping = await compose(dir, ["exec", "frontend", "--", "ping", "-c", "1", "-W", "2", "back"]);
  assert.equal(ping.code, 0, ping.stdout + ping.stderr);
  assert.match(
    ping.stdout,
    new RegExp(`from ${list.find((c) => c.name === "back")!.ip.replaceAll(".", "\\.")}`),
  );
  assert.equal(
    await composeOk(dir, ["exec", "backend", "--", "cat", "/app/data/hello.txt"]),
    "from the host\n",
  );
  // Members are ordinary rkl containers, labelled with project and service.
  const state = JSON.parse((await rkl(env!, ["container", "state", "back", "-o", "json"])).stdout);
  assert.equal(state.labels["com.docker.compose.project"], "rk8s");
  assert.equal(state.labels["com.docker.compose.service"], "backend");
  const down = await compose(dir, ["down", "-t", "0"]);
  assert.equal(down.code, 0, down.stderr);
  await assertCensusUnchanged();
});

test("network_mode host and none, stop_signal, shm_size, sysctls and ulimits reach the containers", async (dirs) => {
  const probe =
    "readlink /proc/self/ns/net; df -k /dev/shm | tail -1; cat /proc/sys/net/core/somaxconn; ulimit -n; ulimit -u";
  const dir = await projectDir("knobs", {
    "compose.yaml": `services:
  edge:
    image: ./bundles/busybox
    network_mode: host
    command: ["sh", "-c", "${probe}; sleep 600"]
  app:
    image: ./bundles/busybox
    stop_signal: SIGUSR1
    shm_size: 32m
    sysctls: {net.core.somaxconn: 777}
    ulimits: {nofile: {soft: 500, hard: 600}, nproc: 300}
    command: ["sh", "-c", "trap 'echo got-usr1; exit 0' USR1; ${probe}; while true; do sleep 0.1; done"]
  alone:
    image: ./bundles/busybox
    network_mode: none
    command: ["sh", "-c", "ip -o link | wc -l; sleep 600"]
`,
  });
  dirs.push(dir);
  assert.equal((await compose(dir, ["up", "-d"])).code, 0);
  const hostNet = await Deno.readLink("/proc/self/ns/net");
  await waitFor(
    "probes",
    async () => (await compose(dir, ["logs"])).stdout.split("\n").length > 10,
  );
  const logs = (await compose(dir, ["logs"])).stdout;
  // Prefixes are padded to the longest service name, as compose does.
  const of = (svc: string) =>
    logs.split("\n").map((l) => /^(\S+)-1 +\| (.*)$/.exec(l)).filter((m) => m?.[1] === svc)
      .map((m) => m![2]);
  assert.equal(of("edge")[0], hostNet, "edge is in the host's network namespace");
  const app = of("app");
  assert.notEqual(app[0], hostNet);
  assert.match(app[1], /\s32768\s/, `shm: ${app[1]}`);
  assert.deepEqual(app.slice(2, 5), ["777", "500", "300"]);
  assert.deepEqual(of("alone"), ["1"], "loopback only");
  await composeOk(dir, ["stop", "-t", "5", "app"]);
  assert.ok((await compose(dir, ["logs", "app"])).stdout.includes("got-usr1"), "stop_signal sent");
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("a missing bind source is made for the short syntax, refused at its line for the long one", async (dirs) => {
  const dir = await projectDir("binds", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    command: ["sh", "-c", "echo hi > /data/x; sleep 600"]
    volumes: ["./not-yet/data:/data"]
`,
  });
  dirs.push(dir);
  assert.equal((await compose(dir, ["up", "-d"])).code, 0);
  await waitFor("written through the bind", () => {
    try {
      return Deno.readTextFileSync(`${dir}/not-yet/data/x`) === "hi\n";
    } catch {
      return false;
    }
  });
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    `services:\n  app:\n    image: ./bundles/busybox\n    command: ["sleep", "600"]\n    volumes:\n      - {type: bind, source: ./absent, target: /data}\n`,
  );
  const r = await compose(dir, ["up", "-d"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /compose\.yaml:6:\d+: services\.app\.volumes\[0\]: hostPath ".*\/absent" does not exist/,
  );
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("user by name and group resolves through the bundle's /etc/passwd and /etc/group", async (dirs) => {
  const dir = await projectDir("users", {
    "compose.yaml": `services:
  a:
    image: ./bundles/busybox
    user: nobody
    command: ["sh", "-c", "echo $$(id -u):$$(id -g); sleep 600"]
  b:
    image: ./bundles/busybox
    user: "nobody:root"
    command: ["sh", "-c", "echo $$(id -u):$$(id -g); sleep 600"]
`,
  });
  dirs.push(dir);
  assert.equal((await compose(dir, ["up", "-d"])).code, 0);
  await waitFor("ids", async () => (await compose(dir, ["logs"])).stdout.split("\n").length > 2);
  const logs = (await compose(dir, ["logs"])).stdout;
  assert.match(logs, /a-1 +\| 65534:65534/);
  assert.match(logs, /b-1 +\| 65534:0/);
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    `services:\n  a:\n    image: ./bundles/busybox\n    user: ghost\n    command: ["sleep", "600"]\n`,
  );
  const r = await compose(dir, ["up", "-d"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /compose\.yaml:4:\d+: services\.a\.user: user "ghost" is not in .*\/rootfs\/etc\/passwd/,
  );
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("published ports answer from the host; logs are prefixed by service; .env interpolates", async (dirs) => {
  const dir = await projectDir("webapp", {
    ".env": "WEB_PORT=18701\nGREETING=hello from dotenv\n",
    "compose.yaml": `services:
  web:
    image: ./bundles/busybox
    command: ["sh", "-c", "mkdir -p /www; echo \\"$$GREETING\\" > /www/index.html; echo serving; exec httpd -f -p 80 -h /www"]
    environment:
      GREETING: \${GREETING:?GREETING must be set}
    ports:
      - "\${WEB_PORT:-8000}:80"
`,
  });
  dirs.push(dir);
  assert.equal((await compose(dir, ["up", "-d"])).code, 0);
  let body = "";
  await waitFor("httpd on 18701", async () => {
    try {
      body = await (await fetch("http://127.0.0.1:18701/")).text();
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(body, "hello from dotenv\n");
  assert.equal((await compose(dir, ["logs"])).stdout, "web-1 | serving\n");
  const config = await composeOk(dir, ["config", "-o", "json"]);
  assert.equal(JSON.parse(config).services[0].ports[0].hostPort, 18701);
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("depends_on service_healthy holds a service back until the healthcheck passes", async (dirs) => {
  const dir = await projectDir("healthy", {
    "compose.yaml": `services:
  db:
    image: ./bundles/busybox
    command: ["sh", "-c", "sleep 1; echo ready > /shared/state; sleep 300"]
    volumes: ["shared:/shared"]
    healthcheck:
      test: ["CMD", "test", "-f", "/shared/state"]
      interval: 100ms
      retries: 50
  app:
    image: ./bundles/busybox
    command: ["sh", "-c", "cat /shared/state; sleep 300"]
    volumes: ["shared:/shared"]
    depends_on:
      db:
        condition: service_healthy
volumes:
  shared:
`,
  });
  dirs.push(dir);
  const up = await compose(dir, ["up", "-d"]);
  assert.equal(up.code, 0, up.stderr);
  // app started only after db wrote its state: its first line is that state.
  await waitFor("app output", async () => (await compose(dir, ["logs", "app"])).stdout !== "");
  assert.equal((await compose(dir, ["logs", "app"])).stdout, "app-1 | ready\n");
  assert.equal((await ps(dir)).find((c) => c.service === "db")!.health, "healthy");
  assert.equal((await compose(dir, ["down", "-v", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("up fails clearly when a dependency never becomes healthy", async (dirs) => {
  const dir = await projectDir("unhealthy", {
    "compose.yaml": `services:
  db:
    image: ./bundles/busybox
    command: ["sleep", "300"]
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 50ms
      retries: 3
  app:
    image: ./bundles/busybox
    command: ["sleep", "300"]
    depends_on:
      db: {condition: service_healthy}
`,
  });
  dirs.push(dir);
  const up = await compose(dir, ["up", "-d"]);
  assert.equal(up.code, 1);
  assert.match(
    up.stderr,
    /Cannot start dependents of "db": unhealthy-db-1 is unhealthy \(healthcheck failed 3 times\)/,
  );
  assert.deepEqual((await ps(dir)).map((c) => c.service), ["db"], "app was never created");
  assert.equal((await compose(dir, ["down", "-t", "0"])).code, 0);
  await assertCensusUnchanged();
});

test("named volumes survive down + up and go with down -v; re-up recreates only changed services", async (dirs) => {
  const file = (greeting: string) =>
    `services:
  store:
    image: ./bundles/busybox
    command: ["sleep", "300"]
    volumes: ["data:/data"]
  other:
    image: ./bundles/busybox
    command: ["sleep", "300"]
    environment: {GREETING: ${greeting}}
volumes:
  data:
`;
  const dir = await projectDir("persist", { "compose.yaml": file("one") });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  await composeOk(dir, ["exec", "store", "--", "sh", "-c", "echo kept > /data/f"]);
  const pids = async () =>
    Object.fromEntries(
      await Promise.all(
        ["persist-store-1", "persist-other-1"].map(async (
          n,
        ) => [
          n,
          JSON.parse((await rkl(env!, ["container", "state", n, "-o", "json"])).stdout).pid,
        ]),
      ),
    );
  const before = await pids();
  await Deno.writeTextFile(`${dir}/compose.yaml`, file("two"));
  await composeOk(dir, ["up", "-d"]);
  const after = await pids();
  assert.equal(
    after["persist-store-1"],
    before["persist-store-1"],
    "unchanged service kept running",
  );
  assert.notEqual(after["persist-other-1"], before["persist-other-1"], "changed service recreated");
  assert.equal(
    await composeOk(dir, ["exec", "other", "--", "sh", "-c", "echo $GREETING"]),
    "two\n",
  );
  await composeOk(dir, ["down", "-t", "0"]);
  await composeOk(dir, ["up", "-d"]);
  assert.equal(await composeOk(dir, ["exec", "store", "--", "cat", "/data/f"]), "kept\n");
  await composeOk(dir, ["down", "-v", "-t", "0"]);
  await composeOk(dir, ["up", "-d"]);
  assert.equal(
    (await compose(dir, ["exec", "store", "--", "cat", "/data/f"])).code,
    1,
    "down -v removed the volume",
  );
  await composeOk(dir, ["down", "-v", "-t", "0"]);
  await assertCensusUnchanged();
});

test("configs and secrets are mounted read-only; replicas, hostname, stop/start/restart, logs -f", async (dirs) => {
  const dir = await projectDir("extras", {
    "app.conf": "setting=1\n",
    "token.txt": "s3cret\n",
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    hostname: apphost
    command: ["sh", "-c", "cat /app.conf /run/secrets/token; hostname; exec sleep 300"]
    configs: [{source: appconf, target: /app.conf}]
    secrets: [token]
    stop_grace_period: 1s
  worker:
    image: ./bundles/busybox
    command: ["sh", "-c", "echo working; exec sleep 300"]
    deploy: {replicas: 2}
    stop_grace_period: 1s
configs:
  appconf: {file: ./app.conf}
secrets:
  token: {file: ./token.txt}
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  await waitFor(
    "app output",
    async () => (await compose(dir, ["logs", "app"])).stdout.split("\n").length > 3,
  );
  assert.equal(
    (await compose(dir, ["logs", "app"])).stdout,
    "app-1 | setting=1\napp-1 | s3cret\napp-1 | apphost\n",
  );
  const ro = await compose(dir, ["exec", "app", "--", "sh", "-c", "echo x >> /app.conf"]);
  assert.notEqual(ro.code, 0, "configs are read-only");
  assert.deepEqual((await ps(dir)).map((c) => c.name).sort(), [
    "extras-app-1",
    "extras-worker-1",
    "extras-worker-2",
  ]);
  await composeOk(dir, ["stop", "worker"]);
  assert.deepEqual((await ps(dir)).filter((c) => c.service === "worker").map((c) => c.status), [
    "exited",
    "exited",
  ]);
  // logs -f on exited containers prints and returns.
  assert.equal(
    (await compose(dir, ["logs", "-f", "worker"])).stdout.split("\n").filter(Boolean).sort().join(
      ",",
    ),
    "worker-1 | working,worker-2 | working",
  );
  await composeOk(dir, ["restart", "worker"]);
  assert.deepEqual((await ps(dir)).filter((c) => c.service === "worker").map((c) => c.status), [
    "running",
    "running",
  ]);
  await composeOk(dir, ["down", "-t", "0"]);
  await assertCensusUnchanged();
});

test("down deletes a project's bridges and keeps one that a container outside it still uses", async (dirs) => {
  const svc = (nets: string) =>
    `    image: ${REPO}/bundles/busybox\n    command: ["sleep", "3600"]\n    networks: [${nets}]\n`;
  const dir = await projectDir("bridges", {
    "compose.yaml": `services:\n  a:\n${svc("front, back")}  b:\n${
      svc("back")
    }networks:\n  front: {}\n  back: {}\n`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const bridges = async () => {
    const out = await new Deno.Command("ip", { args: ["-o", "link"], stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).split("\n")
      .map((l) => l.split(": ")[1]?.split("@")[0])
      .filter((n): n is string => !!n && n.startsWith("cmp-"))
      .sort();
  };
  assert.equal((await bridges()).length, 2);
  // The bridge's name carries a hash of the project, network and (outside the default root) root.
  const back = await projectNetworkName({ tag: `r${shortHash(env!.root)}-` }, "bridges", "back");
  assert.ok((await bridges()).includes(back));
  // A container outside the project on the project's "back" network.
  const guest = `${env!.dir}/guest.yaml`;
  await Deno.writeTextFile(
    guest,
    `name: guest\nimage: ${REPO}/bundles/busybox\nargs: ["sleep", "3600"]\n`,
  );
  const run = await rkl(env!, ["container", "run", "--network", back, guest]);
  assert.equal(run.code, 0, run.stderr);
  await composeOk(dir, ["down", "-t", "0"]);
  assert.deepEqual(await bridges(), [back]);
  const rm = await rkl(env!, ["container", "rm", "-f", "guest"]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(await bridges(), []);
  await assertCensusUnchanged();
});

test("bad compose files give one located error, exit 2, and create nothing", async () => {
  const cases: [string, string, RegExp][] = [
    ["yaml", "services:\n  a: [\n", /compose\.yaml:\d+:\d+: Cannot parse YAML/],
    [
      "undefined-dep",
      "services:\n  a:\n    image: ./bundles/busybox\n    depends_on: [ghost]\n",
      /compose\.yaml:4:18: services\.a\.depends_on\[0\]: service "ghost" is not defined/,
    ],
    [
      "cycle",
      "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
      /dependency cycle: a -> b -> a/,
    ],
    [
      "port",
      'services:\n  a:\n    image: x\n    ports: ["80:80:80:80"]\n',
      /compose\.yaml:4:13: services\.a\.ports\[0\]: port "80:80:80:80" must look like/,
    ],
    [
      "network",
      "services:\n  a:\n    image: x\n    networks: [nope]\n",
      /services\.a\.networks\.nope: network "nope" is not declared/,
    ],
    [
      "volume",
      'services:\n  a:\n    image: x\n    volumes: ["nope:/d"]\n',
      /services\.a\.volumes\[0\]: volume "nope" is not declared/,
    ],
    [
      "required",
      'services:\n  a:\n    image: x\n    environment: {T: "${UNSET_FOR_TEST:?needed}"}\n',
      /compose\.yaml:4:22: required variable UNSET_FOR_TEST is not set: needed/,
    ],
  ];
  for (const [label, text, want] of cases) {
    const dir = await projectDir(`bad-${label}`, { "compose.yaml": text });
    assertRejected(label, await compose(dir, ["up", "-d"]), want);
  }
  await assertCensusUnchanged();
});

cleanupAfterAll(env);
