import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { dockerBytes, loadCompose, normalizeProjectName, parseDuration } from "./compose.ts";

const RK8S = Deno.readTextFileSync(
  new URL("../../tests/fixtures/rk8s-compose.yaml", import.meta.url),
);

const load = (
  text: string,
  extra: { env?: Record<string, string>; profiles?: string[]; more?: string } = {},
) =>
  loadCompose(
    [
      { file: "compose.yaml", text },
      ...(extra.more ? [{ file: "override.yaml", text: extra.more }] : []),
    ],
    { env: extra.env ?? {}, dir: "/srv/My_App", profiles: extra.profiles },
  );

function err(text: string, extra: Parameters<typeof load>[1] = {}): SpecError {
  try {
    load(text, extra);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("loadCompose() reads rk8s's example", () => {
  const { project, warnings } = load(RK8S);
  assert.equal(project.name, "my_app");
  assert.deepEqual(project.services.map((s) => [s.name, s.containerName]), [["backend", "back"], [
    "frontend",
    "front",
  ]]);
  const back = project.services[0];
  assert.equal(back.image, "/srv/My_App/bundles/busybox");
  assert.deepEqual(back.ports, [{
    hostIP: undefined,
    hostPort: 8080,
    containerPort: 8080,
    protocol: "tcp",
  }]);
  assert.deepEqual(back.mounts, [{
    kind: "bind",
    createHostPath: true,
    loc: { file: "compose.yaml", line: 11, column: 9, path: "services.backend.volumes[0]" },
    source: "/srv/My_App/tmp/mount/dir",
    target: "/app/data",
    readOnly: false,
  }]);
  assert.deepEqual(back.networks, [{ name: "libra-net", aliases: [] }]);
  assert.deepEqual(project.services[1].networks, [{ name: "default", aliases: [] }]);
  assert.deepEqual(project.networks.map((n) => n.name), ["default", "libra-net"]);
  assert.deepEqual(project.configs, [{
    name: "backend-config",
    file: "/srv/My_App/config.yaml",
    content: undefined,
  }]);
  assert.deepEqual(warnings, []);
});

Deno.test("loadCompose() parses the port forms", () => {
  const { project } = load(
    `services:\n  s:\n    image: b\n    ports: ["127.0.0.1:8080:80/udp", "9000-9001:80-81", "3000", {target: 53, published: "5353", protocol: udp}]\n`,
  );
  assert.deepEqual(project.services[0].ports, [
    { hostIP: "127.0.0.1", hostPort: 8080, containerPort: 80, protocol: "udp" },
    { hostIP: undefined, hostPort: 9000, containerPort: 80, protocol: "tcp" },
    { hostIP: undefined, hostPort: 9001, containerPort: 81, protocol: "tcp" },
    { hostIP: undefined, hostPort: 5353, containerPort: 53, protocol: "udp" },
  ]);
  const bad = err(`services:\n  s:\n    image: b\n    ports:\n      - "80:80:80:80"\n`);
  assert.equal(bad.line, 5);
  assert.match(bad.detail, /must look like "8080:80"/);
  assert.match(
    err(`services:\n  s:\n    image: b\n    ports: ["9000-9002:80-81"]\n`).detail,
    /same length/,
  );
});

Deno.test("loadCompose() interpolates from the environment, with errors at the value's position", () => {
  const { project } = load(
    `services:\n  s:\n    image: b\n    environment:\n      A: \${A:-def}\n      B: $$literal\n    ports: ["\${PORT}:80"]\n`,
    {
      env: { PORT: "8081" },
    },
  );
  assert.deepEqual(project.services[0].environment, { A: "def", B: "$literal" });
  assert.equal(project.services[0].ports[0].hostPort, 8081);
  const e = err(
    `services:\n  s:\n    image: b\n    environment:\n      TOKEN: \${TOKEN:?TOKEN is needed}\n`,
  );
  assert.equal(e.message, "compose.yaml:5:14: required variable TOKEN is not set: TOKEN is needed");
});

Deno.test("loadCompose() merges a later file over an earlier one", () => {
  const { project } = load(
    `services:\n  s:\n    image: b\n    command: [a]\n    environment: {A: "1", B: "1"}\n    ports: ["80:80"]\n`,
    {
      more:
        `services:\n  s:\n    command: [b]\n    environment: [B=2]\n    ports: ["81:81"]\n  t:\n    image: c\n`,
    },
  );
  const s = project.services.find((x) => x.name === "s")!;
  assert.deepEqual(s.command, ["b"]);
  assert.deepEqual(s.environment, { A: "1", B: "2" });
  assert.deepEqual(s.ports.map((p) => p.hostPort), [80, 81]);
  assert.ok(project.services.some((x) => x.name === "t"));
});

Deno.test("loadCompose() orders services by depends_on and reports cycles and unknown services", () => {
  const { project } = load(
    `services:\n  web:\n    image: b\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: b\n    healthcheck: {test: ["CMD", "true"], interval: 1s}\n`,
  );
  assert.deepEqual(project.services.map((s) => s.name), ["db", "web"]);
  assert.deepEqual(project.services[0].healthcheck, {
    test: ["true"],
    intervalMs: 1000,
    timeoutMs: 30000,
    retries: 3,
    startPeriodMs: 0,
    startIntervalMs: 5000,
  });
  const cycle = err(
    `services:\n  a:\n    image: b\n    depends_on: [b]\n  b:\n    image: b\n    depends_on: [a]\n`,
  );
  assert.match(cycle.detail, /dependency cycle: a -> b -> a/);
  const unknown = err(`services:\n  a:\n    image: b\n    depends_on: [nope]\n`);
  assert.equal(
    unknown.message,
    'compose.yaml:4:18: services.a.depends_on[0]: service "nope" is not defined',
  );
});

Deno.test("loadCompose() reports undefined networks and volumes, and warns on unknown keys", () => {
  assert.match(
    err(`services:\n  a:\n    image: b\n    networks: [front]\n`).detail,
    /network "front" is not declared/,
  );
  assert.match(
    err(`services:\n  a:\n    image: b\n    volumes: ["data:/data"]\n`).detail,
    /volume "data" is not declared/,
  );
  const { warnings } = load(
    `version: "3"\nservices:\n  a:\n    image: b\n    build: .\n    logging: {driver: none}\n`,
  );
  assert.deepEqual(warnings.map((w) => `${w.line}:${w.path}:${w.message}`), [
    "1:version:the attribute `version` is obsolete and ignored; remove it",
    "5:services.a.build:unknown field, ignored",
    "6:services.a.logging:unknown field, ignored",
  ]);
});

Deno.test("loadCompose() applies profiles, resources and user", () => {
  const text =
    `services:\n  a:\n    image: b\n    cpus: 0.5\n    mem_limit: 256m\n    user: "1000:1000"\n  debug:\n    image: b\n    profiles: [debug]\n`;
  assert.deepEqual(load(text).project.services.map((s) => s.name), ["a"]);
  assert.deepEqual(load(text, { profiles: ["debug"] }).project.services.map((s) => s.name), [
    "a",
    "debug",
  ]);
  const a = load(text).project.services[0];
  assert.deepEqual([a.cpus, a.memory, a.user?.uid, a.user?.gid], [
    "500m",
    String(256 * 1024 * 1024),
    1000,
    1000,
  ]);
  // A name is kept for create time, where the bundle's /etc/passwd resolves it.
  assert.equal(
    load(`services:\n  a:\n    image: b\n    user: www-data\n`).project.services[0].user?.name,
    "www-data",
  );
});

Deno.test("helpers: durations, docker sizes, project names", () => {
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration(2), 2000);
  assert.throws(() => parseDuration("5 minutes"));
  assert.equal(dockerBytes("512m"), String(512 * 1024 * 1024));
  assert.equal(dockerBytes("1g"), String(1024 ** 3));
  assert.throws(() => dockerBytes("lots"));
  assert.equal(normalizeProjectName("My App.v2"), "myappv2");
  assert.equal(normalizeProjectName("_x_y-Z"), "x_y-z");
});

Deno.test("loadCompose() reads env_file through the reader it is given; environment wins", () => {
  const files: Record<string, string> = { "/srv/My_App/app.env": "A=from-file\nB=from-file\n" };
  const { project } = loadCompose(
    [{
      file: "c.yaml",
      text:
        "services:\n  s:\n    image: b\n    env_file: [app.env, {path: opt.env, required: false}]\n    environment: {B: inline}\n",
    }],
    { env: {}, dir: "/srv/My_App", readFile: (p) => files[p] },
  );
  assert.deepEqual(project.services[0].environment, { A: "from-file", B: "inline" });
  assert.throws(
    () =>
      loadCompose([{
        file: "c.yaml",
        text: "services:\n  s:\n    image: b\n    env_file: missing.env\n",
      }], { env: {}, dir: "/d", readFile: () => undefined }),
    /c\.yaml:4:15: services\.s\.env_file: env_file "\/d\/missing\.env" does not exist/,
  );
});

Deno.test("loadCompose() puts an env_file the reader refuses (a FIFO, too big) at its line", () => {
  const refuse = (p: string): string => {
    throw new Error(`Cannot read ${p}: not a regular file (a FIFO)`);
  };
  assert.throws(
    () =>
      loadCompose([{
        file: "c.yaml",
        text: "services:\n  s:\n    image: b\n    env_file: [ok.env, fifo.env]\n",
      }], { env: {}, dir: "/d", readFile: (p) => p.endsWith("ok.env") ? "A=1\n" : refuse(p) }),
    (e: Error) =>
      e instanceof SpecError && !e.message.includes("\n") &&
      /^c\.yaml:4:\d+: services\.s\.env_file\[1\]: Cannot read \/d\/fifo\.env: not a regular file \(a FIFO\)$/
        .test(e.message),
  );
});

Deno.test("x- extensions are ignored silently and their anchors merge with <<", () => {
  const { project, warnings } = load(`x-common: &common
  restart: always
  environment:
    TZ: UTC
  labels: {team: web}
services:
  web:
    <<: *common
    image: ./b
    x-note: for humans
    environment:
      MODE: prod
  db:
    <<: *common
    image: ./b
`);
  assert.deepEqual(warnings, []);
  const [web, db] = [
    project.services.find((s) => s.name === "web")!,
    project.services.find((s) => s.name === "db")!,
  ];
  assert.equal(web.restart, "always");
  assert.equal(db.restart, "always");
  // A key written in the service wins over the merged one, as YAML merge says.
  assert.deepEqual(web.environment, { MODE: "prod" });
  assert.deepEqual(db.environment, { TZ: "UTC" });
  assert.deepEqual(db.labels, { team: "web" });
});

Deno.test('a port with an empty host IP (":2283:2283") publishes on every address', () => {
  const { project } = load(`services:\n  app: {image: ./b, ports: [":2283:2283"]}\n`);
  assert.deepEqual(project.services[0].ports, [
    { hostIP: undefined, hostPort: 2283, containerPort: 2283, protocol: "tcp" },
  ]);
});

Deno.test("container_name keeps underscores and dots; anything else is refused at its line", () => {
  const { project } = load(`services:\n  app: {image: ./b, container_name: my_app.db}\n`);
  assert.equal(project.services[0].containerName, "my_app.db");
  const e = err(`services:\n  app: {image: ./b, container_name: "a/b"}\n`);
  assert.match(e.message, /^compose\.yaml:2:\d+: .*container_name "a\/b" must start/);
});

Deno.test("network_mode, stop_signal, shm_size, sysctls and ulimits are read, not dropped", () => {
  const { project, warnings } = load(`services:
  edge:
    image: ./b
    network_mode: host
    stop_signal: usr1
    shm_size: 128m
    sysctls: [kernel.shmmax=1000000]
    ulimits:
      nproc: 512
      nofile: {soft: 1024, hard: 2048}
  app:
    image: ./b
    sysctls: {net.core.somaxconn: 1024}
`);
  assert.deepEqual(warnings, []);
  const edge = project.services.find((s) => s.name === "edge")!;
  assert.equal(edge.networkMode, "host");
  assert.deepEqual(edge.networks, []);
  assert.equal(edge.stopSignal, "SIGUSR1");
  assert.equal(edge.shmSize, 128 * 1024 * 1024);
  assert.deepEqual(edge.sysctls, { "kernel.shmmax": "1000000" });
  assert.deepEqual(edge.ulimits, [
    { type: "RLIMIT_NPROC", soft: 512, hard: 512 },
    { type: "RLIMIT_NOFILE", soft: 1024, hard: 2048 },
  ]);
  const app = project.services.find((s) => s.name === "app")!;
  assert.deepEqual(app.sysctls, { "net.core.somaxconn": "1024" });
  // Only app uses the default network.
  assert.deepEqual(project.networks.map((n) => n.name), ["default"]);
});

Deno.test("network_mode sharing an undefined service, host-only sysctls and bad ulimits are refused at their line", () => {
  for (
    const [svc, want] of [
      ["network_mode: service:db", /:4:\d+: .*service "db" is not defined/],
      ["network_mode: host\n    networks: [default]", /:4:\d+: .*cannot be combined with networks/],
      ["sysctls: {kernel.hostname: x}", /:4:\d+: .*sysctl "kernel.hostname" is not one/],
      [
        "network_mode: host\n    sysctls: {net.core.somaxconn: 1}",
        /not allowed with network_mode host/,
      ],
      ["ulimits: {nofile: {soft: 9, hard: 1}}", /:4:\d+: .*soft must be at most hard/],
      ["ulimits: {bogus: 1}", /:4:\d+: .*unknown ulimit "bogus"/],
    ] as const
  ) {
    const e = err(
      `services:\n  web:\n    image: ./b\n    ${svc}\n`.replace(
        "image: ./b\n    ",
        "image: ./b\n    ",
      ),
    );
    assert.match(e.message, want, svc);
  }
});

Deno.test("user takes UID, UID:GID, NAME and NAME:GROUP; names are left for create time", () => {
  const users = (u: string) =>
    load(`services:\n  a: {image: ./b, user: "${u}"}\n`).project.services[0].user;
  assert.deepEqual({ ...users("1000:50"), loc: undefined }, {
    uid: 1000,
    gid: 50,
    name: undefined,
    group: undefined,
    loc: undefined,
  });
  const named = users("app:staff")!;
  assert.equal(named.name, "app");
  assert.equal(named.group, "staff");
  assert.equal(named.uid, undefined);
  assert.equal(named.loc?.line, 2);
  assert.match(err(`services:\n  a: {image: ./b, user: "a b"}\n`).message, /must be "UID"/);
});

Deno.test("an unset variable without a default warns once, at its line, and becomes empty", () => {
  const { project, warnings } = load(
    `services:\n  a:\n    image: ./b\n    environment: {A: "$MISSING", B: "\${MISSING}", C: "\${SET:-x}", D: "\${OTHER:-}"}\n`,
    { env: { SET: "y" } },
  );
  assert.deepEqual(project.services[0].environment, { A: "", B: "", C: "y", D: "" });
  assert.deepEqual(warnings.map((w) => [w.line, w.message]), [
    [4, "variable MISSING is not set, using an empty string"],
  ]);
});

Deno.test("`version` is called obsolete once per project, not once per file", () => {
  const { warnings } = load(`version: "3.8"\nservices:\n  a: {image: b}\n`, {
    more: `version: "3.8"\nservices:\n  a: {environment: {X: "1"}}\n`,
  });
  assert.deepEqual(warnings.map((w) => `${w.file}:${w.line}:${w.path}`), [
    "compose.yaml:1:version",
  ]);
});

Deno.test("loadCompose() refuses an environment name with a newline or '=', in both forms", () => {
  for (
    const env of [
      'environment: {"A\\nFORGED": x}',
      'environment: ["A\\nFORGED=x"]',
      'environment: {"A\\u001b[2J": x}',
    ]
  ) {
    const e = err(`services:\n  web:\n    image: busybox\n    ${env}\n`);
    assert.match(
      e.message,
      /^compose\.yaml:4:\d+: services\.web\.environment: environment variable name ".*" must consist only of printable ASCII characters other than '='$/,
    );
  }
  const ok = load('services:\n  web:\n    image: busybox\n    environment: {"my.env-name": x}\n');
  assert.equal(ok.project.services[0].environment["my.env-name"], "x");
});

Deno.test("loadCompose() refuses YAML's .inf where a number goes, at the value's line", () => {
  const e = err(
    "services:\n  web:\n    image: busybox\n    deploy:\n      restart_policy:\n" +
      "        max_attempts: .inf\n",
  );
  assert.match(e.message, /^compose\.yaml:6:23: .*max_attempts: /);
  assert.match(
    err("services:\n  web:\n    image: busybox\n    cpus: -.inf\n").message,
    /:4:11: .*cpus/,
  );
});
