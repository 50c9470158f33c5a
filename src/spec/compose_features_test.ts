/** Compose features of issue 32 that docker compose honours: names, init, port ranges, network_mode. */
import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { loadCompose } from "./compose.ts";

const load = (text: string) =>
  loadCompose([{ file: "compose.yaml", text }], { env: {}, dir: "/srv/app" });

function err(text: string): SpecError {
  try {
    load(text);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("loadCompose() accepts service names with upper-case letters, as the compose spec does", () => {
  const { project } = load(`services:
  WebApp:
    image: busybox
    depends_on: [My.DB]
  My.DB:
    image: busybox
`);
  assert.deepEqual(project.services.map((s) => s.name), ["My.DB", "WebApp"]);
});

Deno.test("loadCompose() refuses two services whose container names would be the same", () => {
  const e = err(`services:
  web:
    image: busybox
  Web:
    image: busybox
`);
  assert.equal(e.line, 5); // the service's body
  assert.match(e.message, /"Web" gives the same container names as "web"/);
  // container_name keeps them apart.
  load(`services:
  web:
    image: busybox
  Web:
    image: busybox
    container_name: web2
`);
});

Deno.test("loadCompose() still refuses service names outside [a-zA-Z0-9._-]", () => {
  for (const bad of ['"a/b"', '"a b"', '"..."', '"é"']) {
    const e = err(`services:\n  ${bad}:\n    image: busybox\n`);
    assert.match(e.message, /service name .* must use a-z, A-Z, 0-9/);
    assert.equal(e.line, 3);
  }
});

Deno.test("loadCompose() reads init: true", () => {
  const { project } = load(`services:
  a: {image: busybox, init: true}
  b: {image: busybox}
`);
  assert.deepEqual(project.services.map((s) => [s.name, s.init]), [["a", true], ["b", false]]);
  assert.equal(err(`services:\n  a: {image: busybox, init: "yes"}\n`).line, 2);
});

Deno.test("loadCompose() maps a host port range to one container port as a range to pick from", () => {
  const { project } = load(`services:
  a:
    image: busybox
    ports:
      - "6005-6015:80"
      - "127.0.0.1:7000-7001:81/udp"
      - "9000-9001:80-81"
      - target: 82
        published: "7100-7110"
`);
  assert.deepEqual(project.services[0].ports, [
    { hostIP: undefined, hostPort: 6005, hostPortEnd: 6015, containerPort: 80, protocol: "tcp" },
    { hostIP: "127.0.0.1", hostPort: 7000, hostPortEnd: 7001, containerPort: 81, protocol: "udp" },
    { hostIP: undefined, hostPort: 9000, containerPort: 80, protocol: "tcp" },
    { hostIP: undefined, hostPort: 9001, containerPort: 81, protocol: "tcp" },
    { hostIP: undefined, hostPort: 7100, hostPortEnd: 7110, containerPort: 82, protocol: "tcp" },
  ]);
  // Ranges of different lengths, and ranges past 65535, stay refused.
  assert.match(
    err(`services:\n  a:\n    image: busybox\n    ports: ["9000-9002:80-81"]\n`).message,
    /same length/,
  );
  assert.match(
    err(`services:\n  a:\n    image: busybox\n    ports: ["65535-65536:80"]\n`).message,
    /1-65535/,
  );
});

Deno.test("loadCompose() reads network_mode service:NAME as an implicit dependency, and container:NAME", () => {
  const { project } = load(`services:
  side:
    image: busybox
    network_mode: service:app
  app:
    image: busybox
  other:
    image: busybox
    network_mode: "container:some_box"
`);
  const side = project.services.find((s) => s.name === "side")!;
  assert.equal(side.networkMode, "service");
  assert.equal(side.networkTarget, "app");
  assert.deepEqual(side.networks, []);
  assert.deepEqual(side.dependsOn, [{
    service: "app",
    condition: "service_started",
    required: true,
  }]);
  // app starts first (and so stops last).
  assert.ok(
    project.services.findIndex((s) => s.name === "app") <
      project.services.findIndex((s) => s.name === "side"),
  );
  const other = project.services.find((s) => s.name === "other")!;
  assert.deepEqual([other.networkMode, other.networkTarget], ["container", "some_box"]);
});

Deno.test("loadCompose() refuses what docker refuses with network_mode service:NAME", () => {
  const base =
    "services:\n  app: {image: busybox}\n  side:\n    image: busybox\n    network_mode: service:";
  assert.match(err(`${base}ghost\n`).message, /service "ghost" is not defined/);
  assert.match(err(`${base}side\n`).message, /its own network namespace/);
  const ports = err(`${base}app\n    ports: ["80:80"]\n`);
  assert.equal(ports.line, 6);
  assert.match(ports.message, /ports cannot be combined with network_mode service:app/);
  assert.match(err(`${base}app\n    hostname: x\n`).message, /hostname cannot be combined/);
  assert.match(
    err(`${base}app\n    networks: [default]\n`).message,
    /cannot be combined with networks/,
  );
  assert.match(
    err("services:\n  a:\n    image: busybox\n    network_mode: container:../x\n").message,
    /container name "..\/x" must use/,
  );
  assert.match(
    err("services:\n  a:\n    image: busybox\n    network_mode: wat\n").message,
    /must be bridge, host, none, service:NAME or container:NAME/,
  );
});

Deno.test("loadCompose() reads links as aliases and dependencies", () => {
  const { project } = load(`services:
  web:
    image: busybox
    links: [db, "db:database", cache]
  db: {image: busybox}
  cache: {image: busybox}
`);
  const web = project.services.find((s) => s.name === "web")!;
  assert.deepEqual(web.links, [
    { service: "db", alias: "db" },
    { service: "db", alias: "database" },
    { service: "cache", alias: "cache" },
  ]);
  assert.deepEqual(web.dependsOn.map((d) => d.service).sort(), ["cache", "db"]);
  assert.equal(project.services.at(-1)!.name, "web");
  const e = err("services:\n  web:\n    image: busybox\n    links: [ghost]\n");
  assert.equal(e.line, 4);
  assert.match(e.message, /service "ghost" is not defined/);
  assert.match(
    err('services:\n  db: {image: busybox}\n  web:\n    image: busybox\n    links: ["db:a:b"]\n')
      .message,
    /must look like "SERVICE" or "SERVICE:ALIAS"/,
  );
});

Deno.test("loadCompose() applies security_opt and refuses what rkl cannot honour at its line", () => {
  const { project } = load(`services:
  a:
    image: busybox
    security_opt:
      - no-new-privileges:true
      - seccomp=./profile.json
      - label:disable
      - apparmor=unconfined
      - systempaths=unconfined
  b:
    image: busybox
    security_opt: ["seccomp:unconfined", "no-new-privileges=false"]
`);
  assert.deepEqual(project.services[0].securityOpt, {
    noNewPrivileges: true,
    seccomp: { type: "Localhost", file: "/srv/app/profile.json" },
    systemPathsUnconfined: true,
  });
  assert.deepEqual(project.services[1].securityOpt, {
    noNewPrivileges: false,
    seccomp: { type: "Unconfined" },
  });
  for (
    const [opt, want] of [
      ["label:type:svirt_t", /rkl applies no SELinux labels/],
      ["apparmor=docker-default", /rkl applies no AppArmor profiles/],
      ["credentialspec=file://x", /is not supported: use no-new-privileges/],
      ["no-new-privileges:maybe", /is not supported/],
    ] as const
  ) {
    const e = err(`services:\n  a:\n    image: busybox\n    security_opt:\n      - "${opt}"\n`);
    assert.equal(e.line, 5, opt);
    assert.match(e.message, want, opt);
  }
});

Deno.test("loadCompose() reads configs and secrets with uid, gid and mode (octal as compose reads it)", () => {
  const { project } = load(`services:
  a:
    image: busybox
    configs:
      - {source: c, uid: "1000", gid: "1001", mode: 0440}
      - {source: c, target: /c2, mode: "0600"}
      - {source: c, target: /c3, mode: 0o640}
      - {source: c, target: /c4}
    secrets:
      - {source: s, uid: "33"}
configs:
  c: {content: hello}
secrets:
  s: {file: ./s.txt}
`);
  const owners = project.services[0].mounts.map((m) => [m.target, m.owner]);
  assert.deepEqual(owners, [
    ["/c", { uid: 1000, gid: 1001, mode: 0o440 }],
    ["/c2", { uid: 0, gid: 0, mode: 0o600 }],
    ["/c3", { uid: 0, gid: 0, mode: 0o640 }],
    ["/c4", undefined],
    ["/run/secrets/s", { uid: 33, gid: 0, mode: 0o400 }],
  ]);
  const bad = (field: string) =>
    err(
      `services:\n  a:\n    image: busybox\n    configs:\n      - {source: c, ${field}}\nconfigs:\n  c: {content: x}\n`,
    );
  assert.match(bad('uid: "root"').message, /uid "root" must be a number/);
  assert.match(bad("mode: 01777").message, /must be a file mode such as 0440/);
  assert.equal(bad('mode: "rw"').line, 5);
});

Deno.test("loadCompose() reads fixed addresses and MACs, and refuses ipv6_address at its line", () => {
  const { project, warnings } = load(`services:
  a:
    image: busybox
    mac_address: "02:42:ac:11:00:02"
    networks:
      front:
        ipv4_address: 172.16.238.10
      back:
        mac_address: "02:42:ac:11:00:03"
networks:
  front: {}
  back: {}
`);
  assert.deepEqual(project.services[0].networks, [
    { name: "front", aliases: [], ipv4Address: "172.16.238.10", macAddress: "02:42:ac:11:00:02" },
    { name: "back", aliases: [], macAddress: "02:42:ac:11:00:03" },
  ]);
  assert.deepEqual(warnings, []);
  const bad = (extra: string) =>
    err(`services:\n  a:\n    image: busybox\n${extra}networks:\n  n: {}\n`);
  assert.match(
    bad("    networks:\n      n: {ipv4_address: 10.0.0.300.1}\n").message,
    /must be an IPv4 address/,
  );
  const v6 = bad("    networks:\n      n:\n        ipv6_address: 2001:3984:3989::10\n");
  assert.equal(v6.line, 6);
  assert.match(v6.message, /ipv6_address is not supported: rkl's compose networks are IPv4 only/);
  assert.match(bad('    mac_address: "zz"\n').message, /must look like "02:42:ac:11:00:02"/);
  assert.match(
    bad("    scale: 2\n    networks:\n      n: {ipv4_address: 10.0.0.5}\n").message,
    /more than one replica/,
  );
});

Deno.test("loadCompose() reads a local volume's bind driver_opts and refuses the rest at their line", () => {
  const { project } = load(`services:
  a:
    image: busybox
    volumes: ["data:/data"]
volumes:
  data:
    driver: local
    driver_opts: {type: none, o: bind, device: /srv/data}
  plain: {}
`);
  assert.deepEqual(project.volumes, [
    { name: "data", external: false, device: "/srv/data" },
    { name: "plain", external: false },
  ]);
  const bad = (v: string) => err(`services:\n  a: {image: busybox}\nvolumes:\n  v:\n    ${v}\n`);
  for (
    const [v, line, want] of [
      ["driver: nfs", 5, /volume driver "nfs" is not supported/],
      ["driver_opts: {type: tmpfs, device: tmpfs, o: 'size=1m,foo'}", 5, /tmpfs option "foo"/],
      ["driver_opts: {type: nfs, o: addr=1.2.3.4, device: :/x}", 5, /must be a bind/],
      ["driver_opts: {type: none, o: bind, device: ./rel}", 5, /must be an absolute path/],
      ["driver_opts: {type: none, o: 'bind,uid=1', device: /x}", 5, /mount option "uid=1"/],
      [
        "driver_opts: {type: none, o: bind, device: /x, size: 1}",
        5,
        /not one of the local driver's/,
      ],
    ] as const
  ) {
    const e = bad(v);
    assert.equal(e.line, line, v);
    assert.match(e.message, want, v);
  }
});
