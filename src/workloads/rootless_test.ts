import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { loadCompose } from "../spec/compose.ts";
import { loadPods } from "../spec/pod.ts";
import { userInstallPaths, userUnitFile } from "../daemon/install_user.ts";
import { podLimitFields, rootlessPodChecks } from "./rootless.ts";
import { projectPorts, rootlessComposeChecks } from "./rootless_compose.ts";

const RL = {
  unprivilegedPortStart: 1024,
  createNetns: () => {},
  limitsReason: "this host has cgroup v1",
};

const POD = `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  resources: {limits: {memory: 1Gi}}
  containers:
    - name: a
      image: busybox
      command: [sleep, "1"]
      ports: [{containerPort: 80, hostPort: PORT}]
      resources: {limits: {cpu: 500m}}
`;

function pod(port: number) {
  return loadPods(POD.replace("PORT", String(port)), "/w/pod.yaml", { baseDir: "/w" })[0];
}

Deno.test("rootlessPodChecks(): the pod's own limits warned once, by field and line", () => {
  const warnings: string[] = [];
  rootlessPodChecks({ warn: (m) => warnings.push(m), rootless: RL }, pod(8080));
  assert.deepEqual(podLimitFields(pod(8080)), [["spec", "resources", "limits", "memory"]]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^\/w\/pod\.yaml:5:\d+: spec\.resources\.limits\.memory not applied/);
});

Deno.test("rootlessPodChecks(): a host port below the unprivileged start is refused at its line", () => {
  assert.throws(
    () => rootlessPodChecks({ warn: () => {}, rootless: RL }, pod(80)),
    (e) =>
      e instanceof SpecError && e.exitCode === 2 && e.line === 10 &&
      /host port 80 is below net\.ipv4\.ip_unprivileged_port_start \(1024\)/.test(e.message),
  );
});

Deno.test("rootlessPodChecks(): --strict-limits refuses the pod's and a member's limits", () => {
  assert.throws(
    () => rootlessPodChecks({ warn: () => {}, rootless: { ...RL, strictLimits: true } }, pod(8080)),
    (e) =>
      e instanceof SpecError && e.line === 5 &&
      /spec\.resources\.limits\.memory cannot be applied rootless/.test(e.message),
  );
  const member =
    loadPods(POD.replace("PORT", "8080").replace(/ {2}resources.*\n/, ""), "/w/pod.yaml")[0];
  assert.throws(
    () => rootlessPodChecks({ warn: () => {}, rootless: { ...RL, strictLimits: true } }, member),
    (e) =>
      e instanceof SpecError && /resources\.limits\.cpu cannot be applied rootless/.test(e.message),
  );
});

function project(text: string) {
  return loadCompose([{ file: "/w/compose.yaml", text }], { env: {}, dir: "/w" }).project;
}

Deno.test("rootlessComposeChecks(): low ports, shared container ports and fixed addresses refused", () => {
  const low = project(`services:\n  a: {image: busybox, ports: ["80:80"]}\n`);
  assert.throws(
    () => rootlessComposeChecks(RL, low),
    /compose\.yaml: services\.a\.ports: host port 80 is below/,
  );
  const twice = project(
    `services:\n  a: {image: busybox, ports: ["8080:80"]}\n  b: {image: busybox, ports: ["8081:80"]}\n`,
  );
  assert.throws(
    () => rootlessComposeChecks(RL, twice),
    /container port 80\/tcp is published by service "a" too/,
  );
  const fixed = project(
    `services:\n  a:\n    image: busybox\n    networks: {n: {ipv4_address: 10.9.0.5}}\n` +
      `networks:\n  n:\n    ipam: {config: [{subnet: 10.9.0.0/24}]}\n`,
  );
  assert.throws(() => rootlessComposeChecks(RL, fixed), /ipv4_address is not supported rootless/);
  const ok = project(
    `services:\n  a: {image: busybox, ports: ["8080:80"], mem_limit: 64m}\n  b: {image: busybox}\n`,
  );
  rootlessComposeChecks(RL, ok);
  assert.deepEqual(projectPorts(ok), [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }]);
  assert.throws(
    () => rootlessComposeChecks({ ...RL, strictLimits: true }, ok),
    /services\.a: memory cannot be applied rootless/,
  );
});

Deno.test("userUnitFile(): a user unit, its sockets under %t/rkl, stop by process group", () => {
  const u = userUnitFile({
    bin: ["/usr/bin/deno", "run", "-A", "/r/cli/main.ts"],
    manifests: "/h/m",
  });
  assert.match(
    u,
    /^ExecStart=\/usr\/bin\/deno run --no-code-cache -A \/r\/cli\/main\.ts daemon --manifests \/h\/m$/m,
  );
  assert.match(u, /^ExecStop=\/bin\/kill -TERM -- -\$\{MAINPID\}$/m);
  assert.match(u, /^Environment=RKL_RUN_ROOT=%t\/rkl$/m);
  assert.match(u, /^WantedBy=default\.target$/m);
  assert.doesNotMatch(u, /Delegate=|LimitNOFILE=|multi-user/);
  assert.deepEqual(userInstallPaths({ HOME: "/h" }), {
    unit: "/h/.config/systemd/user/rkl.service",
    manifests: "/h/.config/rkl/manifests",
  });
  assert.equal(
    userInstallPaths({ HOME: "/h", XDG_CONFIG_HOME: "/c" }).unit,
    "/c/systemd/user/rkl.service",
  );
  assert.throws(() => userInstallPaths({}), /HOME is not set/);
});
