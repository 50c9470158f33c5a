/**
 * Compose features of issue 32 that docker compose honours, end to end:
 * service names with upper-case letters, `init: true`, a host port range
 * mapped to one container port, and `network_mode: service:NAME`.
 */
import assert from "node:assert/strict";
import { cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { composeTests, composeTools } from "../_helpers/compose.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("cfeat", 27) : undefined;
const { projectDir, compose, composeOk } = composeTools(() => env!);
const { test } = composeTests(ready, () => env!, { censusEachTest: true });

test("an upper-case service name resolves; init: true runs catatonit as PID 1; a port range takes its first free port", async (dirs) => {
  const dir = await projectDir("feat", {
    "compose.yaml": `services:
  WebApp:
    image: ./bundles/busybox
    init: true
    stop_grace_period: 30s
    command: ["sh", "-c", "mkdir -p /www; echo hi > /www/index.html; httpd -p 80 -h /www; sleep 600"]
    ports:
      - "18950-18955:80"
  client:
    image: ./bundles/busybox
    depends_on: [WebApp]
    command: ["sleep", "600"]
`,
  });
  dirs.push(dir);
  // The range's first port is held by a process on the host: the next one is taken.
  const held = Deno.listen({ hostname: "0.0.0.0", port: 18950 });
  try {
    await composeOk(dir, ["up", "-d"]);
  } finally {
    held.close();
  }
  const list = JSON.parse(await composeOk(dir, ["ps", "-a", "-o", "json"]));
  assert.deepEqual(
    list.map((c: { name: string; status: string }) => [c.name, c.status]).sort(),
    [["feat-client-1", "running"], ["feat-webapp-1", "running"]],
  );
  // The service name resolves as written (and, hosts lookups ignoring case, lower-cased).
  const web = list.find((c: { name: string }) => c.name === "feat-webapp-1");
  const got = await composeOk(dir, ["exec", "client", "--", "wget", "-qO-", "http://WebApp/"]);
  assert.equal(got, "hi\n");
  const ping = await compose(dir, ["exec", "client", "--", "ping", "-c", "1", "-W", "2", "webapp"]);
  assert.match(ping.stdout, new RegExp(`from ${web.ip.replaceAll(".", "\\.")}`));
  // PID 1 is catatonit, mounted where docker mounts its init, in front of the command.
  const cmdline = await composeOk(dir, ["exec", "WebApp", "--", "cat", "/proc/1/cmdline"]);
  assert.equal(
    cmdline.replaceAll("\0", " ").trim(),
    "/sbin/docker-init -- sh -c mkdir -p /www; echo hi > /www/index.html; httpd -p 80 -h /www; sleep 600",
  );
  // Published on the second port of the range, not the first.
  let body = "";
  await waitFor("httpd on 18951", async () => {
    try {
      body = await (await fetch("http://127.0.0.1:18951/")).text();
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(body, "hi\n");
  // The init forwards SIGTERM to sh (not PID 1, so it dies of it): stop is prompt,
  // where sh as PID 1 would ignore it and wait out the 30 s grace period.
  const t0 = performance.now();
  await composeOk(dir, ["stop", "WebApp"]);
  const ms = performance.now() - t0;
  assert.ok(ms < 10_000, `stop took ${Math.round(ms)} ms`);
  await composeOk(dir, ["down", "-t", "0"]);
});

test("network_mode service:NAME joins the service's network namespace; up recreates it with its target", async (dirs) => {
  const dir = await projectDir("side", {
    "compose.yaml": `services:
  sidecar:
    image: ./bundles/busybox
    network_mode: service:app
    command: ["sh", "-c", "mkdir -p /www; echo from-sidecar > /www/index.html; httpd -f -p 127.0.0.1:8081 -h /www"]
  app:
    image: ./bundles/busybox
    command: ["sleep", "600"]
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const netns = async (svc: string) =>
    (await composeOk(dir, ["exec", svc, "--", "readlink", "/proc/1/ns/net"])).trim();
  const appNs = await netns("app");
  assert.equal(await netns("sidecar"), appNs);
  assert.notEqual(appNs, await Deno.readLink("/proc/self/ns/net"));
  // The sidecar's server answers on app's loopback.
  let body = "";
  await waitFor("the sidecar on app's 127.0.0.1:8081", async () => {
    const r = await compose(dir, ["exec", "app", "--", "wget", "-qO-", "http://127.0.0.1:8081/"]);
    body = r.stdout;
    return r.code === 0;
  });
  assert.equal(body, "from-sidecar\n");
  // Same hostname and hosts file as app, as docker gives a container joining another's network.
  assert.equal(
    await composeOk(dir, ["exec", "sidecar", "--", "hostname"]),
    await composeOk(dir, ["exec", "app", "--", "hostname"]),
  );
  // A changed app is recreated with a new namespace, and the sidecar with it.
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    (await Deno.readTextFile(`${dir}/compose.yaml`)).replace(
      `["sleep", "600"]`,
      `["sleep", "700"]`,
    ),
  );
  await composeOk(dir, ["up", "-d"]);
  const appNs2 = await netns("app");
  assert.notEqual(appNs2, appNs);
  assert.equal(await netns("sidecar"), appNs2);
  // down stops the sidecar before app (dependents first), then removes both.
  const down = await compose(dir, ["down", "-t", "0"]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, /removed side-sidecar-1/);
});

test("network_mode container:NAME joins a plain rkl container's namespace", async (dirs) => {
  const dir = await projectDir("joinbox", {
    "compose.yaml": `services:
  probe:
    image: ./bundles/busybox
    network_mode: container:cfeat-box
    command: ["sleep", "600"]
`,
    "box.yaml": `name: cfeat-box
image: ${REPO}/bundles/busybox
command: ["sleep", "600"]
`,
  });
  dirs.push(dir);
  // No such container yet: refused with one line, nothing made.
  const early = await compose(dir, ["up", "-d"]);
  assert.notEqual(early.code, 0);
  assert.match(
    early.stderr,
    /Cannot join the network of container "cfeat-box" .*no such container/,
  );
  const run = await rkl(env!, [
    "container",
    "run",
    `${dir}/box.yaml`,
    "--network",
    env!.network,
  ]);
  assert.equal(run.code, 0, run.stderr);
  await composeOk(dir, ["up", "-d"]);
  const box =
    (await rkl(env!, ["container", "exec", "cfeat-box", "--", "readlink", "/proc/1/ns/net"]))
      .stdout;
  assert.equal(await composeOk(dir, ["exec", "probe", "--", "readlink", "/proc/1/ns/net"]), box);
  await composeOk(dir, ["down", "-t", "0"]);
});

test("links add names to the linking service's hosts file; security_opt reaches the process", async (dirs) => {
  const dir = await projectDir("links", {
    "compose.yaml": `services:
  web:
    image: ./bundles/busybox
    links: ["db:database"]
    security_opt: [no-new-privileges, "seccomp=unconfined", systempaths=unconfined]
    command: ["sleep", "600"]
  db:
    image: ./bundles/busybox
    command: ["sleep", "600"]
  plain:
    image: ./bundles/busybox
    command: ["sleep", "600"]
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const list = JSON.parse(await composeOk(dir, ["ps", "-a", "-o", "json"]));
  const db = list.find((c: { service: string }) => c.service === "db");
  const ping = await compose(dir, ["exec", "web", "--", "ping", "-c", "1", "-W", "2", "database"]);
  assert.equal(ping.code, 0, ping.stdout + ping.stderr);
  assert.match(ping.stdout, new RegExp(`from ${db.ip.replaceAll(".", "\\.")}`));
  // The alias is the linking service's own: another service does not have it.
  const other = await compose(dir, [
    "exec",
    "plain",
    "--",
    "grep",
    "-cw",
    "database",
    "/etc/hosts",
  ]);
  assert.equal(other.stdout.trim(), "0");
  const status = async (svc: string) =>
    await composeOk(dir, [
      "exec",
      svc,
      "--",
      "grep",
      "-E",
      "^(NoNewPrivs|Seccomp):",
      "/proc/self/status",
    ]);
  assert.equal(await status("web"), "NoNewPrivs:\t1\nSeccomp:\t0\n");
  assert.equal(await status("plain"), "NoNewPrivs:\t0\nSeccomp:\t2\n");
  // systempaths=unconfined: /proc/sys is not remounted read-only.
  const masked = async (svc: string) =>
    (await composeOk(dir, [
      "exec",
      svc,
      "--",
      "sh",
      "-c",
      "grep -c ' /proc/sys ' /proc/self/mountinfo || true",
    ])).trim();
  assert.equal(await masked("web"), "0");
  assert.equal(await masked("plain"), "1");
  await composeOk(dir, ["down", "-t", "0"]);
});

test("configs and secrets with uid, gid and mode are mounted as that owner and mode", async (dirs) => {
  const dir = await projectDir("owned", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    user: "1000:1000"
    command: ["sleep", "600"]
    configs:
      - {source: conf, target: /etc/app.conf, uid: "1000", gid: "1000", mode: 0440}
      - {source: conf, target: /etc/plain.conf}
    secrets:
      - {source: token, uid: "1000", mode: 0400}
configs:
  conf: {content: "key: value"}
secrets:
  token: {file: ./token.txt}
`,
    "token.txt": "s3cret\n",
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const stat = await composeOk(dir, [
    "exec",
    "app",
    "--",
    "stat",
    "-c",
    "%n %u %g %a",
    "/etc/app.conf",
    "/etc/plain.conf",
    "/run/secrets/token",
  ]);
  assert.equal(
    stat,
    "/etc/app.conf 1000 1000 440\n/etc/plain.conf 0 0 444\n/run/secrets/token 1000 0 400\n",
  );
  // uid 1000 reads its secret (root's 0400 default would refuse it).
  assert.equal(
    await composeOk(dir, ["exec", "app", "--", "cat", "/run/secrets/token"]),
    "s3cret\n",
  );
  await composeOk(dir, ["down", "-t", "0"]);
});

test("a local volume with bind driver_opts mounts its device; down -v leaves that directory alone", async (dirs) => {
  const device = `${env!.dir}/device-data`;
  await Deno.mkdir(device, { recursive: true });
  await Deno.writeTextFile(`${device}/seed.txt`, "seeded\n");
  const dir = await projectDir("drvopts", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    volumes: ["data:/data"]
    command: ["sh", "-c", "cat /data/seed.txt; echo written > /data/out.txt; sleep 600"]
volumes:
  data:
    driver: local
    driver_opts: {type: none, o: bind, device: ${device}}
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  await waitFor("out.txt on the device", async () => {
    try {
      return (await Deno.readTextFile(`${device}/out.txt`)) === "written\n";
    } catch {
      return false;
    }
  });
  assert.equal(await composeOk(dir, ["exec", "app", "--", "cat", "/data/seed.txt"]), "seeded\n");
  await composeOk(dir, ["down", "-v", "-t", "0"]);
  assert.equal(await Deno.readTextFile(`${device}/seed.txt`), "seeded\n");
  // A missing device is refused at create, naming the field.
  await Deno.remove(device, { recursive: true });
  const r = await compose(dir, ["up", "-d"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /volumes\.data\.driver_opts\.device/);
});

test("post_start runs in the container after start; pre_stop before the stop signal", async (dirs) => {
  const out = `${env!.dir}/hooks-out`;
  await Deno.mkdir(out, { recursive: true });
  const dir = await projectDir("hooks", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    volumes: ["${out}:/out"]
    command: ["sh", "-c", "trap 'echo term >> /out/log; exit 0' TERM; while true; do sleep 0.1; done"]
    post_start:
      - command: ["sh", "-c", "echo post_start >> /out/log"]
    pre_stop:
      - command: ["sh", "-c", "echo pre_stop >> /out/log"]
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  assert.equal(await Deno.readTextFile(`${out}/log`), "post_start\n");
  await composeOk(dir, ["stop", "-t", "5"]);
  assert.equal(await Deno.readTextFile(`${out}/log`), "post_start\npre_stop\nterm\n");
  await composeOk(dir, ["down", "-t", "0"]);
});

test("ipv4_address and mac_address reach the interface through CNI; others resolve the fixed address", async (dirs) => {
  const dir = await projectDir("fixed", {
    "compose.yaml": `services:
  a:
    image: ./bundles/busybox
    mac_address: "02:42:ac:11:00:99"
    networks:
      net:
        ipv4_address: 10.227.77.50
    command: ["sleep", "600"]
  b:
    image: ./bundles/busybox
    networks: [net]
    command: ["sleep", "600"]
networks:
  net:
    ipam:
      config: [{subnet: 10.227.77.0/24}]
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  const addr = await composeOk(dir, [
    "exec",
    "a",
    "--",
    "sh",
    "-c",
    "ip -o -4 addr show eth0 | awk '{print $4}'; cat /sys/class/net/eth0/address",
  ]);
  assert.equal(addr, "10.227.77.50/24\n02:42:ac:11:00:99\n");
  const ping = await compose(dir, ["exec", "b", "--", "ping", "-c", "1", "-W", "2", "a"]);
  assert.equal(ping.code, 0, ping.stdout + ping.stderr);
  assert.match(ping.stdout, /from 10\.227\.77\.50/);
  await composeOk(dir, ["down", "-t", "0"]);
});

cleanupAfterAll(env);
