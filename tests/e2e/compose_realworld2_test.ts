/**
 * Compose files of the kinds docker compose's and compose-go's own test
 * fixtures use (issue 32, round two), written here, each brought up, checked
 * for what docker compose would do, and taken down with nothing left:
 *
 * - a project that pulls a monitoring sidecar in with `include:` (with its own
 *   env_file, as docker compose's pkg/e2e/fixtures/interpolation/include does),
 *   whose main service `extends` a service of another file, has an upper-case
 *   name, `init: true`, a host port range, a fixed address and MAC, configs
 *   and secrets with uid/gid/mode, a tmpfs volume from driver_opts,
 *   security_opt, and post_start/pre_stop hooks with user, working_dir,
 *   environment and privileged (as pkg/e2e/fixtures/hooks/compose.yaml);
 *   a client `links` to it under another name;
 * - files rkl must refuse, one located line each, nothing made.
 */
import assert from "node:assert/strict";
import { assertRejected, cleanupAfterAll, makeEnv, waitFor } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import { composeTests, composeTools } from "../_helpers/compose.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("crw2", 34) : undefined;
const { projectDir, compose, composeOk } = composeTools(() => env!);
const { test } = composeTests(ready, () => env!, { censusEachTest: true });

const MAIN = `name: rw2
include:
  - path: ./monitoring/compose.yaml
    env_file: ./monitoring.env
services:
  Web:
    extends:
      file: ./common/base.yaml
      service: httpd-base
    init: true
    ports:
      - "18990-18995:80"
    networks:
      front:
        ipv4_address: 10.234.77.10
    mac_address: "02:42:0a:ea:4d:0a"
    configs:
      - source: site
        target: /etc/site.conf
        uid: "1000"
        gid: "1001"
        mode: 0440
    secrets:
      - source: token
        uid: "1000"
        mode: 0400
    volumes:
      - scratch:/scratch
      - ./out:/out
    security_opt:
      - no-new-privileges:true
      - label=disable
    post_start:
      - command: sh -c 'echo started > /scratch/log; chmod 666 /scratch/log'
      - command: ["sh", "-c", "echo \\"$$(id -u):$$(id -g) $$HOOK_VAR $$(pwd)\\" >> /scratch/log"]
        user: "1000:1000"
        working_dir: /tmp
        environment:
          HOOK_VAR: from-hook
    pre_stop:
      - command: ["sh", "-c", "cp /scratch/log /out/log; grep CapEff /proc/self/status > /out/caps-hook"]
        privileged: true
  console:
    image: ./bundles/busybox
    stdin_open: true
    stop_grace_period: 1s
    command: ["cat"]
  client:
    image: ./bundles/busybox
    links:
      - "Web:frontend"
    depends_on:
      Web:
        condition: service_started
        restart: true
    networks: [front]
    stop_grace_period: 1s
    deploy:
      resources:
        limits:
          pids: 64
    command: ["sleep", "600"]
networks:
  front:
    ipam:
      config:
        - subnet: 10.234.77.0/24
volumes:
  scratch:
    driver: local
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: "size=4m,mode=1777"
configs:
  site:
    content: |
      listen 80
secrets:
  token:
    file: ./token.txt
`;

const BASE = `services:
  httpd-base:
    image: ../bundles/busybox
    stop_grace_period: 20s
    environment:
      ROLE: web
    command: ["sh", "-c", "mkdir -p /www; echo hello > /www/index.html; httpd -p 80 -h /www; sleep 600"]
`;

const MONITORING = `services:
  probe:
    image: \${PROBE_IMAGE}
    network_mode: "service:Web"
    stop_grace_period: 1s
    environment:
      TARGET: \${TARGET}
    command: ["sh", "-c", "while true; do wget -qO /tmp/seen http://$$TARGET/ 2>/dev/null; sleep 0.3; done"]
`;

test("an include'd sidecar, extends from a file, hooks, tmpfs volume, owned configs, links: up, checked, down", async (dirs) => {
  const dir = await projectDir("rw2", {
    "compose.yaml": MAIN,
    "common/base.yaml": BASE,
    "monitoring/compose.yaml": MONITORING,
    "monitoring.env": "PROBE_IMAGE=../bundles/busybox\nTARGET=127.0.0.1:80\n",
    "token.txt": "s3cret\n",
    "out/.keep": "",
  });
  dirs.push(dir);
  // The range's first port is held on the host: the next one is taken.
  const held = Deno.listen({ hostname: "0.0.0.0", port: 18990 });
  try {
    await composeOk(dir, ["up", "-d"]);
  } finally {
    held.close();
  }
  const list = JSON.parse(await composeOk(dir, ["ps", "-a", "-o", "json"])) as {
    name: string;
    status: string;
  }[];
  assert.deepEqual(list.map((c) => [c.name, c.status]).sort(), [
    ["rw2-client-1", "running"],
    // stdin_open: cat waits on an open stdin instead of reading end-of-file and exiting.
    ["rw2-console-1", "running"],
    ["rw2-probe-1", "running"],
    ["rw2-web-1", "running"],
  ]);
  const inWeb = (sh: string) => composeOk(dir, ["exec", "Web", "--", "sh", "-c", sh]);

  // extends from another file kept the base's image, command and environment.
  assert.equal(await inWeb("echo $ROLE"), "web\n");
  // init: catatonit is PID 1.
  assert.match(await inWeb("cat /proc/1/cmdline | tr '\\0' ' '"), /^\/sbin\/docker-init -- sh -c/);
  // Fixed address and MAC.
  assert.equal(
    await inWeb("ip -o -4 addr show eth0 | awk '{print $4}'; cat /sys/class/net/eth0/address"),
    "10.234.77.10/24\n02:42:0a:ea:4d:0a\n",
  );
  // The port range: its second port, the first being held.
  let body = "";
  await waitFor("httpd on 18991", async () => {
    try {
      body = await (await fetch("http://127.0.0.1:18991/")).text();
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(body, "hello\n");
  // The included sidecar (its image and TARGET from the include's env_file) shares
  // Web's network namespace: it reaches Web's httpd on 127.0.0.1.
  await waitFor("the probe's fetch through Web's loopback", async () => {
    const r = await compose(dir, ["exec", "probe", "--", "cat", "/tmp/seen"]);
    return r.code === 0 && r.stdout === "hello\n";
  });
  assert.equal(
    (await composeOk(dir, ["exec", "probe", "--", "readlink", "/proc/self/ns/net"])).trim(),
    (await inWeb("readlink /proc/self/ns/net")).trim(),
  );
  // A one-off of the sidecar joins Web's network namespace too (compose run).
  assert.equal(
    await composeOk(dir, [
      "run",
      "--rm",
      "--no-deps",
      "probe",
      "wget",
      "-qO-",
      "http://127.0.0.1:80/",
    ]),
    "hello\n",
  );
  // links: the client reaches Web as frontend.
  assert.equal(
    await composeOk(dir, ["exec", "client", "--", "wget", "-qO-", "http://frontend/"]),
    "hello\n",
  );
  // deploy.resources.limits.pids is the client's pids cgroup limit.
  assert.equal(
    await composeOk(dir, [
      "exec",
      "client",
      "--",
      "sh",
      "-c",
      "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]),
    "64\n",
  );
  // Configs and secrets with their owner and mode.
  assert.equal(
    await inWeb("stat -c '%u:%g %a' /etc/site.conf /run/secrets/token; cat /etc/site.conf"),
    "1000:1001 440\n1000:0 400\nlisten 80\n",
  );
  // The tmpfs volume is a tmpfs of that size; the hooks ran in order, the second
  // as 1000:1000 in /tmp with its variable.
  assert.match(
    await inWeb("grep ' /scratch ' /proc/mounts"),
    /^tmpfs \/scratch tmpfs rw,nosuid,nodev,.*size=4096k/,
  );
  assert.equal(await inWeb("cat /scratch/log"), "started\n1000:1000 from-hook /tmp\n");
  // security_opt no-new-privileges reaches the process.
  assert.match(await inWeb("grep NoNewPrivs /proc/self/status"), /NoNewPrivs:\s+1/);
  const capsPlain = (await inWeb("grep CapEff /proc/self/status")).trim();

  // restart Web: the client (depends_on restart: true) restarts with it, and the
  // probe, in Web's network namespace, is made again in the new one.
  const started = async (svc: string) =>
    (await composeOk(dir, ["exec", svc, "--", "cut", "-d", " ", "-f", "22", "/proc/1/stat"]))
      .trim();
  const clientStart = await started("client");
  await composeOk(dir, ["restart", "Web"]);
  assert.notEqual(await started("client"), clientStart);
  assert.equal(
    (await composeOk(dir, ["exec", "probe", "--", "readlink", "/proc/self/ns/net"])).trim(),
    (await inWeb("readlink /proc/self/ns/net")).trim(),
  );
  await waitFor("the probe's fetch after the restart", async () => {
    const r = await compose(dir, ["exec", "probe", "--", "cat", "/tmp/seen"]);
    return r.code === 0 && r.stdout === "hello\n";
  });

  await composeOk(dir, ["down", "-t", "5"]);
  // pre_stop ran before the stop signal, privileged: more capabilities than the service has.
  assert.equal(await Deno.readTextFile(`${dir}/out/log`), "started\n1000:1000 from-hook /tmp\n");
  const capsHook = (await Deno.readTextFile(`${dir}/out/caps-hook`)).trim();
  const bits = (s: string) => BigInt(`0x${s.split(/\s+/)[1]}`);
  assert.ok(
    bits(capsHook) > bits(capsPlain) && (bits(capsHook) & bits(capsPlain)) === bits(capsPlain),
    `${capsHook} vs ${capsPlain}`,
  );
});

test("what rkl cannot honour is refused with one line naming the file, line and field; nothing made", async (dirs) => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "ipv6_address",
      {
        "compose.yaml":
          "services:\n  a:\n    image: ./bundles/busybox\n    networks:\n      n:\n        ipv6_address: 2001:3984:3989::10\nnetworks:\n  n: {}\n",
      },
      /compose\.yaml:6:\d+: services\.a\.networks\.n\.ipv6_address: ipv6_address is not supported/,
    ],
    [
      "apparmor profile",
      {
        "compose.yaml":
          "services:\n  a:\n    image: ./bundles/busybox\n    security_opt:\n      - apparmor=docker-default\n",
      },
      /compose\.yaml:5:\d+: services\.a\.security_opt\[0\]: .*rkl applies no AppArmor profiles/,
    ],
    [
      "nfs volume",
      {
        "compose.yaml":
          "services:\n  a:\n    image: ./bundles/busybox\n    volumes: [d:/d]\nvolumes:\n  d:\n    driver_opts:\n      type: nfs\n      o: addr=10.0.0.1\n      device: :/export\n",
      },
      /compose\.yaml:8:\d+: volumes\.d\.driver_opts: driver_opts must be a bind .* or a tmpfs/,
    ],
    [
      "include conflict",
      {
        "compose.yaml": "include:\n  - other.yaml\nservices:\n  a:\n    image: ./bundles/busybox\n",
        "other.yaml": "services:\n  a:\n    image: ./bundles/busybox\n    command: [sleep, '1']\n",
      },
      /compose\.yaml:2:\d+: include\[0\]: include: services\.a conflicts with the one/,
    ],
    [
      "hook user name",
      {
        "compose.yaml":
          "services:\n  a:\n    image: ./bundles/busybox\n    post_start:\n      - command: id\n        user: nginx\n",
      },
      /compose\.yaml:6:\d+: services\.a\.post_start\[0\]\.user: post_start user "nginx"/,
    ],
  ];
  for (const [label, files, want] of cases) {
    const dir = await projectDir(`bad-${label.replaceAll(" ", "-")}`, files);
    dirs.push(dir);
    assertRejected(label, await compose(dir, ["up", "-d"]), want);
  }
});

cleanupAfterAll(env);
