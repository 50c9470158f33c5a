import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import {
  capabilitySet,
  DEFAULT_PIDS_LIMIT,
  generateConfig,
  type GenerateContext,
  nofileLimit,
  ociResources,
} from "./generate.ts";

const GOLDEN = new URL("../../tests/golden/", import.meta.url);

const CTX: GenerateContext = {
  rootfs: "/var/lib/rkl/containers/web/rootfs",
  cgroupsPath: "/rkl/web",
  hostname: "web",
  etcFiles: { hosts: "/e/hosts", hostname: "/e/hostname", resolvConf: "/e/resolv.conf" },
  joinNamespaces: { network: "/run/rkl/netns/web" },
  nofileHard: 524288,
  bundle: {},
  annotations: { "org.rkl.name": "web" },
  arch: "x86_64",
};

async function golden(name: string, actual: unknown): Promise<void> {
  const url = new URL(`${name}.json`, GOLDEN);
  const text = JSON.stringify(actual, null, 2) + "\n";
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.writeTextFile(url, text);
    return;
  }
  assert.equal(
    text,
    await Deno.readTextFile(url),
    `golden ${name}.json differs; UPDATE_GOLDEN=1 rewrites it`,
  );
}

Deno.test("generateConfig() turns rk8s's single-container example into the golden config.json", async () => {
  const { spec } = loadContainer(
    await Deno.readTextFile(new URL("../../tests/fixtures/single.yaml", import.meta.url)),
    "single.yaml",
    { baseDir: "/srv" },
  );
  await golden("single-container", generateConfig(spec, CTX));
});

Deno.test("generateConfig() applies env, workingDir, user, read-only root and capabilities", async () => {
  const { spec } = loadContainer(
    await Deno.readTextFile(new URL("../../tests/fixtures/full.yaml", import.meta.url)),
    "full.yaml",
    { baseDir: "/srv" },
  );
  await golden(
    "full-container",
    generateConfig(spec, { ...CTX, bundle: { env: ["PATH=/bin", "LANG=C"], args: ["/init"] } }),
  );
});

Deno.test("ociResources() maps resources.limits.cpu to a CFS quota and requests to shares", () => {
  assert.deepEqual(ociResources({ limits: { cpu: "500m", memory: "233Mi" } }), {
    devices: [{ allow: false, access: "rwm" }],
    cpu: { quota: 50_000, period: 100_000, shares: 512 },
    memory: { limit: 244_318_208 },
  });
  assert.deepEqual(ociResources({ requests: { cpu: "250m" } }).cpu, { shares: 256 });
  assert.equal(ociResources({}).cpu, undefined);
});

Deno.test("nofileLimit() never asks for more than the host's hard limit", () => {
  assert.equal(nofileLimit(4096), 4096);
  assert.equal(nofileLimit(1 << 30), 1_048_576);
});

Deno.test("capabilitySet() adds, drops, and handles ALL and privileged", () => {
  assert.ok(!capabilitySet({ capabilities: { drop: ["NET_RAW"] } }).includes("CAP_NET_RAW"));
  assert.ok(capabilitySet({ capabilities: { add: ["net_admin"] } }).includes("CAP_NET_ADMIN"));
  assert.deepEqual(capabilitySet({ capabilities: { drop: ["ALL"], add: ["CHOWN"] } }), [
    "CAP_CHOWN",
  ]);
  assert.ok(capabilitySet({ privileged: true }).includes("CAP_SYS_ADMIN"));
});

Deno.test("generateConfig() refuses a container with no command anywhere", () => {
  const { spec } = loadContainer("name: a\nimage: b\n", "a.yaml");
  assert.throws(() => generateConfig(spec, CTX), /no command/);
});

Deno.test("generateConfig() gives a cgroup namespace, a pids limit and the default seccomp profile", () => {
  const { spec } = loadContainer("name: a\nimage: b\ncommand: [sh]\n", "a.yaml");
  const c = generateConfig(spec, CTX);
  assert.ok(c.linux.namespaces.some((n) => n.type === "cgroup" && !n.path));
  assert.deepEqual(c.linux.resources.pids, { limit: DEFAULT_PIDS_LIMIT });
  assert.equal(c.linux.seccomp?.defaultAction, "SCMP_ACT_ERRNO");
  assert.ok(c.linux.seccomp?.syscalls[0].names.includes("read"));
  assert.ok(!c.linux.seccomp?.syscalls.some((r) => r.names.includes("mount")));
  assert.equal(generateConfig(spec, { ...CTX, pidsLimit: 0 }).linux.resources.pids, undefined);
});

Deno.test("seccompProfile Unconfined and privileged run without seccomp; Localhost uses the file read", () => {
  const load = (sc: string) =>
    loadContainer(`name: a\nimage: b\ncommand: [sh]\nsecurityContext: ${sc}\n`, "a.yaml").spec;
  assert.equal(
    generateConfig(load("{seccompProfile: {type: Unconfined}}"), CTX).linux.seccomp,
    undefined,
  );
  assert.equal(generateConfig(load("{privileged: true}"), CTX).linux.seccomp, undefined);
  const own = { defaultAction: "SCMP_ACT_ERRNO" as const, architectures: [], syscalls: [] };
  const local = load("{seccompProfile: {type: Localhost, localhostProfile: p.json}}");
  assert.deepEqual(generateConfig(local, { ...CTX, localhostSeccomp: own }).linux.seccomp, own);
  assert.throws(() => generateConfig(local, CTX), /did not read the profile/);
});

Deno.test("seccompProfile: Localhost needs a relative localhostProfile without '..'", () => {
  for (
    const [sc, msg] of [
      ["{type: Localhost}", /needs localhostProfile/],
      ["{type: Localhost, localhostProfile: ../x.json}", /relative path without/],
      ["{type: Localhost, localhostProfile: /etc/x.json}", /relative path without/],
      ["{type: RuntimeDefault, localhostProfile: x.json}", /goes with type Localhost/],
    ] as const
  ) {
    assert.throws(
      () =>
        loadContainer(
          `name: a\nimage: b\nsecurityContext:\n  seccompProfile: ${sc}\n`,
          "a.yaml",
        ),
      (e: Error) => msg.test(e.message) && /a\.yaml:4/.test(e.message),
    );
  }
});

Deno.test("generateConfig() applies shm size, sysctls and ulimits next to rkl's NOFILE", () => {
  const { spec } = loadContainer("name: a\nimage: b\ncommand: [sh]\n", "a.yaml");
  const c = generateConfig({
    ...spec,
    shmSize: 128 * 1024 * 1024,
    sysctls: { "net.core.somaxconn": "1024" },
    ulimits: [{ type: "RLIMIT_NPROC", soft: 100, hard: 200 }, {
      type: "RLIMIT_NOFILE",
      soft: 10,
      hard: 20,
    }],
  }, CTX);
  assert.ok(c.mounts.find((m) => m.destination === "/dev/shm")!.options!.includes("size=131072k"));
  assert.deepEqual(c.linux.sysctl, { "net.core.somaxconn": "1024" });
  assert.deepEqual(c.process.rlimits, [
    { type: "RLIMIT_NOFILE", hard: 20, soft: 10 },
    { type: "RLIMIT_NPROC", hard: 200, soft: 100 },
  ]);
});
