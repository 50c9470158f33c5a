/** Issue 32 round two on the loader (in-memory files): include:, tmpfs volumes, hooks, IPv6, pids, restart_policy, stdin_open. */
import assert from "node:assert/strict";
import { SpecError } from "../../errors.ts";
import { loadCompose } from "./load.ts";

/** Loads /p/compose.yaml with these other files readable. */
function load(text: string, files: Record<string, string> = {}, env: Record<string, string> = {}) {
  return loadCompose([{ file: "/p/compose.yaml", text, dir: "/p" }], {
    env,
    dir: "/p",
    readFile: (path) => files[path],
  });
}

function err(text: string, files: Record<string, string> = {}): SpecError {
  try {
    load(text, files);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("include: pulls services, networks, volumes, configs in with their own directory and .env", () => {
  const { project } = load(
    `include:
  - ./db/compose.yaml
services:
  web:
    image: busybox
    depends_on: [db]
    networks: [back]
`,
    {
      "/p/db/compose.yaml": `services:
  db:
    image: \${DB_IMAGE}
    env_file: db.env
    volumes: ["./data:/data", "dbdata:/var/lib/db"]
    configs: [init]
    networks: [back]
networks:
  back: {}
volumes:
  dbdata: {}
configs:
  init:
    file: ./init.sql
`,
      "/p/db/.env": "DB_IMAGE=busybox:1.36\n",
      "/p/db/db.env": "A=1\n",
    },
  );
  const db = project.services.find((s) => s.name === "db")!;
  assert.equal(db.image, "busybox:1.36");
  assert.deepEqual(db.environment, { A: "1" });
  assert.equal(db.mounts[0].source, "/p/db/data");
  assert.deepEqual(project.services.map((s) => s.name), ["db", "web"]);
  assert.deepEqual(project.networks.map((n) => n.name), ["back"]);
  assert.deepEqual(project.volumes.map((v) => v.name), ["dbdata"]);
  assert.deepEqual(project.configs, [{ name: "init", file: "/p/db/init.sql", content: undefined }]);
});

Deno.test("include: long form with a path list, project_directory and env_file; the project's env wins", () => {
  const { project } = load(
    `include:
  - path: [../shared/base.yaml, ../shared/override.yaml]
    project_directory: ./proj
    env_file: ./inc.env
services: {}
`,
    {
      "/shared/base.yaml": "services:\n  a:\n    image: ${IMG}\n    environment: {X: $X}\n",
      "/shared/override.yaml": "services:\n  a:\n    volumes: [./v:/v]\n",
      "/p/inc.env": "IMG=busybox\nX=from-include\n",
    },
    { X: "from-project" },
  );
  const a = project.services[0];
  assert.equal(a.image, "busybox");
  assert.deepEqual(a.environment, { X: "from-project" });
  assert.equal(a.mounts[0].source, "/p/proj/v"); // project_directory, relative to the includer
});

Deno.test("include: nested includes, and an extends of an included service", () => {
  const { project } = load(
    'include: [a/compose.yaml]\nservices:\n  c:\n    extends: b\n    command: ["true"]\n',
    {
      "/p/a/compose.yaml": "include: [../b/compose.yaml]\nservices: {}\n",
      "/p/b/compose.yaml": "services:\n  b:\n    image: ./bundle\n",
    },
  );
  assert.deepEqual(project.services.map((s) => [s.name, s.image]).sort(), [
    ["b", "/p/b/bundle"],
    ["c", "/p/b/bundle"],
  ]);
});

Deno.test("include: a missing file, a cycle and a conflicting service are errors at the include line", () => {
  const missing = err("services: {}\ninclude:\n  - nope.yaml\n");
  assert.equal(missing.line, 3);
  assert.match(missing.message, /include: file "\/p\/nope.yaml" does not exist/);
  const remote = err("services: {}\ninclude:\n  - path: oci://docker.io/user/app:latest\n");
  assert.equal(remote.line, 3);
  assert.match(remote.message, /rkl includes local files only/);
  const cycle = err("include: [a.yaml]\nservices: {}\n", {
    "/p/a.yaml": "include: [compose.yaml]\nservices: {}\n",
  });
  assert.match(cycle.message, /include cycle/);
  const conflict = err("include:\n  - a.yaml\nservices:\n  x: {image: busybox}\n", {
    "/p/a.yaml": "services:\n  x: {image: alpine}\n",
  });
  assert.equal(conflict.line, 2);
  assert.match(conflict.message, /services.x conflicts with the one "\/p\/a.yaml" defines/);
  // The same definition twice is no conflict (compose-go's rule).
  load("include:\n  - a.yaml\nservices:\n  x: {image: busybox}\n", {
    "/p/a.yaml": "services:\n  x: {image: busybox}\n",
  });
  // An error inside an included file names that file and its line.
  const inner = err("include: [a.yaml]\nservices: {}\n", {
    "/p/a.yaml": "services:\n  x:\n    image: busybox\n    ports: ['99999:80']\n",
  });
  assert.equal(inner.file, "/p/a.yaml");
  assert.equal(inner.line, 4);
});

Deno.test("a tmpfs volume (driver_opts type tmpfs) is a tmpfs where one container mounts it", () => {
  const { project } = load(`services:
  a:
    image: busybox
    volumes: ["scratch:/scratch:ro"]
volumes:
  scratch:
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=1m,uid=1000,mode=0770"}
`);
  assert.deepEqual(project.services[0].mounts, [{
    kind: "tmpfs",
    source: "",
    target: "/scratch",
    readOnly: true,
    options: ["nosuid", "nodev", "size=1048576", "uid=1000", "mode=0770"],
  }]);
  const shared = err(`services:
  a: {image: busybox, volumes: ["t:/t"]}
  b: {image: busybox, volumes: ["t:/t"]}
volumes:
  t:
    driver_opts: {type: tmpfs, device: tmpfs}
`);
  assert.equal(shared.line, 6);
  assert.match(shared.message, /used by 2 containers \(a, b\)/);
});

Deno.test("post_start and pre_stop: every hook, with user, privileged, working_dir, environment", () => {
  const { project } = load(
    `services:
  a:
    image: busybox
    post_start:
      - command: touch /tmp/started
      - command: ["sh", "-c", "id -u > /tmp/who"]
        user: "1000:1000"
        privileged: true
        working_dir: /tmp
        environment: [A=1, FROM_HOST]
    pre_stop:
      - command: echo bye
        user: root
        environment: {B: 2}
`,
    {},
    { FROM_HOST: "h" },
  );
  assert.deepEqual(project.services[0].hooks, {
    postStart: [
      { command: ["touch", "/tmp/started"] },
      {
        command: ["sh", "-c", "id -u > /tmp/who"],
        user: { uid: 1000, gid: 1000 },
        privileged: true,
        cwd: "/tmp",
        env: ["A=1", "FROM_HOST=h"],
      },
    ],
    preStop: [{ command: ["echo", "bye"], user: { uid: 0, gid: 0 }, env: ["B=2"] }],
  });
  const name = err(
    "services:\n  a:\n    image: busybox\n    pre_stop:\n      - command: a\n        user: www-data\n",
  );
  assert.equal(name.line, 6);
  assert.match(name.message, /pre_stop user "www-data" must be "UID", "UID:GID" or "root"/);
  const rel = err(
    "services:\n  a:\n    image: busybox\n    post_start:\n      - command: a\n        working_dir: tmp\n",
  );
  assert.equal(rel.line, 6);
});

Deno.test("enable_ipv6 and an IPv6 or second subnet are refused at their line", () => {
  const e1 = err("services:\n  a: {image: busybox}\nnetworks:\n  n:\n    enable_ipv6: true\n");
  assert.equal(e1.line, 5);
  assert.match(e1.message, /enable_ipv6 is not supported/);
  const e2 = err(
    "services:\n  a: {image: busybox}\nnetworks:\n  n:\n    ipam:\n      config:\n        - subnet: 172.28.0.0/16\n        - subnet: fd00::/64\n",
  );
  assert.equal(e2.line, 8);
  assert.match(e2.message, /is IPv6/);
});

Deno.test("extends from another file: a bare env_file name and a long-form bind are relative to that file", () => {
  // docker compose's pkg/e2e/fixtures/interpolation/extends: the same service name in both files.
  const { project } = load(
    `services:
  test:
    extends: {service: test, file: ../base/compose.yaml}
    environment: [BAR=BAR-from-extends]
`,
    {
      "/base/compose.yaml": `services:
  test:
    image: busybox
    environment: [BAR=bar_from_environment]
    env_file: [env_file.env]
    volumes: [{type: bind, source: data, target: /data}]
`,
      "/base/env_file.env": "FOO=foo\n",
    },
  );
  const t = project.services[0];
  assert.equal(t.image, "busybox");
  assert.deepEqual(t.environment, { FOO: "foo", BAR: "BAR-from-extends" });
  assert.equal(t.mounts[0].source, "/base/data");
});

Deno.test("pids_limit and deploy.resources.limits.pids: -1 is unlimited, 0 the default", () => {
  const { project } = load(`services:
  a: {image: busybox, pids_limit: 64}
  b: {image: busybox, deploy: {resources: {limits: {pids: -1}}}}
  c: {image: busybox, pids_limit: 0}
`);
  assert.deepEqual(project.services.map((s) => [s.name, s.pidsLimit]), [
    ["a", 64],
    ["b", 0],
    ["c", undefined],
  ]);
});

Deno.test("deploy.restart_policy sets the restart policy as docker compose maps it; reservations are warned", () => {
  const { project, warnings } = load(`services:
  a: {image: busybox, restart: always, deploy: {restart_policy: {condition: none}}}
  b: {image: busybox, deploy: {restart_policy: {condition: any, max_attempts: 3}}}
  c:
    image: busybox
    deploy:
      restart_policy: {condition: on-failure}
      resources:
        reservations: {memory: 64m}
`);
  assert.deepEqual(project.services.map((s) => [s.name, s.restart]), [
    ["a", "no"],
    ["b", "always"],
    ["c", "on-failure"],
  ]);
  assert.deepEqual(warnings.map((w) => [w.line, w.path]), [
    [9, "services.c.deploy.resources.reservations"],
  ]);
  const e = err(
    "services:\n  a:\n    image: busybox\n    deploy:\n      restart_policy: {condition: sometimes}\n",
  );
  assert.equal(e.line, 5);
});

Deno.test("stdin_open is kept for the container's stdin", () => {
  const { project } = load(
    "services:\n  a: {image: busybox, stdin_open: true}\n  b: {image: busybox}\n",
  );
  assert.deepEqual(project.services.map((s) => s.stdinOpen), [true, undefined]);
});
