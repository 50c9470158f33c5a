/**
 * Compose loading as docker compose does it (issue 38 part 2): merge rules
 * across files, `!reset`/`!override`, `extends` (same file, other file,
 * cycles, missing services), COMPOSE_PROJECT_NAME in interpolation, tmpfs.
 */
import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { type ComposeFile, loadCompose } from "./compose.ts";
import { realFs } from "../sys/fs.ts";

const files = (...texts: string[]): ComposeFile[] =>
  texts.map((text, i) => ({ file: i === 0 ? "compose.yaml" : `override${i}.yaml`, text }));

const load = (
  texts: string[],
  o: { env?: Record<string, string>; others?: Record<string, string>; projectName?: string } = {},
) =>
  loadCompose(files(...texts), {
    env: o.env ?? {},
    dir: "/srv/app",
    projectName: o.projectName,
    readFile: (p) => o.others?.[p],
  });

const svc = (texts: string[], name = "s", o: Parameters<typeof load>[1] = {}) =>
  load(texts, o).project.services.find((x) => x.name === name)!;

function err(texts: string[], o: Parameters<typeof load>[1] = {}): SpecError {
  try {
    load(texts, o);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("merge: ports by {ip, published, target, protocol}, volumes by target, secrets by target", () => {
  const s = svc([
    `services:
  s:
    image: b
    ports: ["8080:80", "9090:90"]
    volumes: ["./a:/data", "./logs:/logs"]
    secrets: [k]
secrets:
  k: {file: ./k}
  l: {file: ./l}
`,
    `services:
  s:
    ports: ["8080:80/tcp", "8081:81"]
    volumes: ["./b:/data:ro"]
    secrets: [{source: l, target: k}]
`,
  ]);
  // The same port is not published twice; a new one is added.
  assert.deepEqual(s.ports.map((p) => `${p.hostPort}:${p.containerPort}`), [
    "9090:90",
    "8080:80",
    "8081:81",
  ]);
  assert.deepEqual(
    s.mounts.filter((m) => m.kind === "bind").map((m) => [m.source, m.target, m.readOnly]),
    [
      ["/srv/app/logs", "/logs", false],
      ["/srv/app/b", "/data", true],
    ],
  );
  // secret k's default target /run/secrets/k is now l's.
  assert.deepEqual(s.mounts.filter((m) => m.kind === "secret").map((m) => [m.source, m.target]), [
    ["l", "/run/secrets/k"],
  ]);
});

Deno.test("merge: mappings deep, labels and sysctls by name, lists append, command/healthcheck.test replaced", () => {
  const s = svc([
    `services:
  s:
    image: b
    command: [a, b]
    labels: [x=1, y=1]
    cap_add: [NET_ADMIN]
    deploy: {resources: {limits: {cpus: "0.5", memory: 64m}}}
    healthcheck: {test: [CMD, a, b], interval: 2s}
`,
    `services:
  s:
    command: [c]
    labels: {y: "2"}
    cap_add: [NET_ADMIN, SYS_TIME]
    deploy: {resources: {limits: {memory: 128m}}}
    healthcheck: {test: [CMD, c]}
`,
  ]);
  assert.deepEqual(s.command, ["c"]);
  assert.deepEqual(s.labels, { x: "1", y: "2" });
  assert.deepEqual(s.capAdd, ["NET_ADMIN", "SYS_TIME"]);
  assert.equal(s.cpus, "500m");
  assert.equal(s.memory, String(128 * 1024 * 1024));
  assert.deepEqual(s.healthcheck?.test, ["c"]);
  assert.equal(s.healthcheck?.intervalMs, 2000);
});

Deno.test("merge: !reset drops the earlier value, !override replaces it whole", () => {
  const base = `services:
  s:
    image: b
    ports: ["8080:80"]
    environment: {FOO: bar, KEEP: "1"}
    volumes: ["./a:/a", "./b:/b"]
`;
  const s = svc([
    base,
    `services:
  s:
    ports: !reset []
    environment:
      FOO: !reset null
    volumes: !override ["./c:/c"]
`,
  ]);
  assert.deepEqual(s.ports, []);
  assert.deepEqual(s.environment, { KEEP: "1" });
  assert.deepEqual(s.mounts.map((m) => m.target), ["/c"]);
  // Without the tags the same override file merges.
  const plain = svc([
    base,
    `services:\n  s:\n    ports: []\n    environment: {FOO: baz}\n    volumes: ["./c:/c"]\n`,
  ]);
  assert.equal(plain.ports.length, 1);
  assert.deepEqual(plain.environment, { FOO: "baz", KEEP: "1" });
  assert.deepEqual(plain.mounts.map((m) => m.target), ["/a", "/b", "/c"]);
});

Deno.test("an override file's error names the override file and its line", () => {
  const e = err([
    `services:\n  s:\n    image: b\n`,
    `services:\n  s:\n    ports:\n      - "99999:80"\n`,
  ]);
  assert.match(e.message, /^override1\.yaml:4:\d+: services\.s\.ports\[0\]: /);
});

Deno.test("extends within the file: inherited, overridden, !reset", () => {
  const text = `services:
  base:
    image: b
    environment: {A: "1", B: "1"}
    ports: ["8080:80"]
    command: [sleep, "1"]
  s:
    extends: base
    environment: {B: "2"}
    ports: !reset []
  t:
    extends: {service: s}
    command: [sleep, "2"]
`;
  const s = svc([text]);
  assert.equal(s.image, "b");
  assert.deepEqual(s.environment, { A: "1", B: "2" });
  assert.deepEqual(s.ports, []);
  assert.deepEqual(s.command, ["sleep", "1"]);
  const t = svc([text], "t");
  assert.deepEqual(t.environment, { A: "1", B: "2" });
  assert.deepEqual(t.ports, []);
  assert.deepEqual(t.command, ["sleep", "2"]);
  // The base service itself is unchanged.
  assert.equal(svc([text], "base").ports.length, 1);
});

Deno.test("extends another file, read through the reader, its relative paths against its own directory", () => {
  const s = svc(
    [
      `services:\n  s:\n    extends: {file: common/base.yaml, service: web}\n    ports: !override ["9000:90"]\n`,
    ],
    "s",
    {
      others: {
        "/srv/app/common/base.yaml":
          `services:\n  web:\n    extends: {file: more.yaml, service: root}\n    ports: ["8080:80"]\n`,
        "/srv/app/common/more.yaml":
          `services:\n  root:\n    image: ./bundles/busybox\n    tmpfs: /run\n    volumes: ["./data:/data", "../top:/top"]\n`,
      },
    },
  );
  assert.equal(s.image, "/srv/app/common/bundles/busybox");
  assert.deepEqual(s.ports.map((p) => p.hostPort), [9000]);
  assert.deepEqual(s.mounts.map((m) => [m.kind, m.source, m.target]), [
    ["bind", "/srv/app/common/data", "/data"],
    ["bind", "/srv/app/top", "/top"],
    ["tmpfs", "", "/run"],
  ]);
});

Deno.test("extends that cannot be resolved says so, at the extends line", () => {
  const missing = err([`services:\n  s:\n    extends: nope\n`]);
  assert.equal(
    missing.message,
    'compose.yaml:3:14: extends cannot be resolved: service "nope" is not defined in this file',
  );
  const cycle = err([
    `services:\n  a:\n    image: b\n    extends: c\n  c:\n    extends: a\n`,
  ]);
  assert.match(
    cycle.message,
    /^compose\.yaml:\d+:\d+: extends cannot be resolved: extends cycle: /,
  );
  const self = err([`services:\n  a:\n    extends: a\n`]);
  assert.match(self.message, /extends cycle: a -> a/);
  const noFile = err([`services:\n  s:\n    extends: {file: gone.yaml, service: x}\n`]);
  assert.match(
    noFile.message,
    /^compose\.yaml:3:14: extends cannot be resolved: file "\/srv\/app\/gone\.yaml" does not exist/,
  );
  const other = err([`services:\n  s:\n    extends: {file: o.yaml, service: x}\n`], {
    others: { "/srv/app/o.yaml": `services:\n  y:\n    image: b\n` },
  });
  assert.match(other.message, /service "x" is not defined in \/srv\/app\/o\.yaml/);
  // An error inside the other file names that file and its line.
  const bad = err([`services:\n  s:\n    extends: {file: o.yaml, service: x}\n`], {
    others: { "/srv/app/o.yaml": `services:\n  x:\n    image: b\n    restart: sometimes\n` },
  });
  assert.match(bad.message, /^\/srv\/app\/o\.yaml:4:\d+: services\.x\.restart: /);
});

Deno.test("COMPOSE_PROJECT_NAME interpolates to the project name, without a warning", () => {
  const text =
    `name: Shop\nservices:\n  s:\n    image: b\n    environment: {P: "\${COMPOSE_PROJECT_NAME}"}\n`;
  const { project, warnings } = load([text]);
  assert.equal(project.name, "shop");
  assert.deepEqual(project.services[0].environment, { P: "shop" });
  assert.deepEqual(warnings, []);
  assert.equal(svc([text], "s", { projectName: "Other" }).environment.P, "other");
  // No name anywhere: the directory's.
  assert.equal(
    svc([`services:\n  s:\n    image: b\n    environment: [P=$COMPOSE_PROJECT_NAME]\n`]).environment
      .P,
    "app",
  );
});

Deno.test("tmpfs: service string or list with options, long volume syntax, bad options at their line", () => {
  const s = svc([
    `services:
  s:
    image: b
    tmpfs:
      - /run:size=64m,mode=1777
      - /tmp:exec,uid=1000
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs: {size: 1048576, mode: 0o700}
    deploy: {mode: replicated, replicas: 2}
`,
  ]);
  assert.deepEqual(s.mounts.map((m) => [m.kind, m.target, m.options]), [
    ["tmpfs", "/cache", ["nosuid", "nodev", "size=1048576", "mode=700"]],
    ["tmpfs", "/run", ["noexec", "nosuid", "nodev", `size=${64 * 1024 * 1024}`, "mode=1777"]],
    ["tmpfs", "/tmp", ["nosuid", "nodev", "uid=1000"]],
  ]);
  assert.equal(s.replicas, 2);
  assert.deepEqual(svc([`services:\n  s:\n    image: b\n    tmpfs: /run\n`]).mounts, [
    {
      kind: "tmpfs",
      source: "",
      target: "/run",
      readOnly: false,
      options: ["noexec", "nosuid", "nodev"],
    },
  ]);
  assert.equal(
    err([`services:\n  s:\n    image: b\n    tmpfs:\n      - /run:size=1m,context=x\n`]).message
      .split(": tmpfs option")[0],
    "compose.yaml:5:9: services.s.tmpfs[0]",
  );
  assert.match(
    err([`services:\n  s:\n    image: b\n    tmpfs: run\n`]).message,
    /must be an absolute path/,
  );
  assert.match(
    err([`services:\n  s:\n    image: b\n    tmpfs: "/run:size=lots"\n`]).message,
    /^compose\.yaml:4:12: services\.s\.tmpfs: size "lots"/,
  );
});

Deno.test("a compose tmpfs becomes an OCI tmpfs mount, and a Memory emptyDir in kube output", async () => {
  const { generateConfig } = await import("../oci/generate.ts");
  const { loadContainer } = await import("./container.ts");
  const { convertProject } = await import("../workloads/convert.ts");
  const { spec } = loadContainer(
    `name: t\nimage: /b\ncommand: ["sleep", "1"]\n`,
    "c.yaml",
    { baseDir: "/srv" },
  );
  spec.mounts.push({
    source: "tmpfs",
    destination: "/run",
    readOnly: false,
    kind: "tmpfs",
    tmpfsOptions: ["noexec", "nosuid", "nodev", "size=8388608"],
  });
  const cfg = generateConfig(spec, {
    rootfs: "/r",
    cgroupsPath: "/rkl/t",
    hostname: "t",
    etcFiles: { hosts: "/e/hosts", hostname: "/e/hostname", resolvConf: "/e/resolv.conf" },
    nofileHard: 1024,
    bundle: {},
    annotations: {},
    arch: "x86_64",
  });
  assert.deepEqual(cfg.mounts.find((m) => m.destination === "/run"), {
    destination: "/run",
    type: "tmpfs",
    source: "tmpfs",
    options: ["noexec", "nosuid", "nodev", "size=8388608", "rw"],
  });
  const { project } = load([`services:\n  s:\n    image: /b\n    tmpfs: ["/run:size=8m"]\n`]);
  const { services } = convertProject(project, {
    volumesDir: "/v",
    workloads: false,
    readFile: () => new Uint8Array(),
    fs: realFs,
  });
  // deno-lint-ignore no-explicit-any
  const pod = services[0].docs[0] as any;
  assert.deepEqual(pod.spec.volumes, [
    { name: "vol-0", emptyDir: { medium: "Memory", sizeLimit: "8388608" } },
  ]);
  assert.deepEqual(pod.spec.containers[0].volumeMounts, [{ name: "vol-0", mountPath: "/run" }]);
});
