import assert from "node:assert/strict";
import { SpecError } from "../../errors.ts";
import { loadPods } from "./load.ts";
import { initBackoffMs, initRestarts } from "./restart_rules.ts";

function err(text: string): SpecError {
  try {
    loadPods(text, "p.yaml", { baseDir: "/srv" });
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

// Modelled on the "restart-on-exit-codes" and "fail-pod-if-init-fails" examples of
// kubernetes.io's pod-lifecycle page (Kubernetes 1.34, container restart rules).
const pod = (init: string, app = "") =>
  `apiVersion: v1
kind: Pod
metadata: {name: rules}
spec:
  restartPolicy: Never
  initContainers:
  - name: setup
    image: busybox
${init}  containers:
  - name: app
    image: busybox
${app}`;

Deno.test("an init container's restartPolicy and restartPolicyRules are read", () => {
  const [p] = loadPods(
    pod(`    restartPolicy: Never
    restartPolicyRules:
    - action: Restart
      exitCodes:
        operator: In
        values: [42]
`),
    "p.yaml",
  );
  assert.deepEqual(p.spec.initRestarts, {
    setup: { policy: "Never", rules: [{ operator: "In", values: [42] }] },
  });
  assert.equal(p.spec.initContainers[0].spec.sidecar, undefined);
  const [q] = loadPods(pod("    restartPolicy: OnFailure\n"), "p.yaml");
  assert.deepEqual(q.spec.initRestarts, { setup: { policy: "OnFailure", rules: [] } });
  const [s] = loadPods(pod("    restartPolicy: Always\n"), "p.yaml");
  assert.equal(s.spec.initRestarts, undefined);
  assert.equal(s.spec.initContainers[0].spec.sidecar, true);
});

Deno.test("initRestarts(): the first matching rule decides, then the container's policy; exit 0 never restarts", () => {
  const inRule = { policy: "Never" as const, rules: [{ operator: "In" as const, values: [42] }] };
  assert.equal(initRestarts(inRule, 42), true);
  assert.equal(initRestarts(inRule, 1), false);
  assert.equal(initRestarts(inRule, 0), false);
  const notIn = { policy: "Never" as const, rules: [{ operator: "NotIn" as const, values: [1] }] };
  assert.equal(initRestarts(notIn, 1), false);
  assert.equal(initRestarts(notIn, 3), true);
  assert.equal(initRestarts({ policy: "OnFailure", rules: [] }, 7), true);
  assert.equal(initRestarts({ policy: "Never", rules: [] }, 7), false);
  assert.deepEqual([0, 1, 2, 5, 9].map(initBackoffMs), [10_000, 20_000, 40_000, 300_000, 300_000]);
});

Deno.test("restartPolicyRules refused at their line: no policy, a sidecar, a bad action or operator, an app container", () => {
  const rules = `    restartPolicyRules:
    - action: Restart
      exitCodes: {operator: In, values: [42]}
`;
  assert.match(
    err(pod(rules)).message,
    /^p\.yaml:9:5: spec\.initContainers\[0\]\.restartPolicyRules: .*add restartPolicy: Never/,
  );
  assert.match(
    err(pod("    restartPolicy: Always\n" + rules)).message,
    /^p\.yaml:10:5: .*restartPolicyRules: a sidecar .* remove the rules/,
  );
  assert.match(
    err(pod("    restartPolicy: Never\n" + rules.replace("action: Restart", "action: Ignore")))
      .message,
    /^p\.yaml:11:\d+: spec\.initContainers\[0\]\.restartPolicyRules\[0\]\.action: action must be Restart/,
  );
  assert.match(
    err(pod("    restartPolicy: Never\n" + rules.replace("operator: In", "operator: Is")))
      .message,
    /^p\.yaml:12:\d+: .*restartPolicyRules\[0\]\.exitCodes\.operator: operator must be In or NotIn/,
  );
  assert.match(
    err(pod("", "    restartPolicy: Never\n")).message,
    /^p\.yaml:12:5: spec\.containers\[0\]\.restartPolicy: .*init containers only: app containers follow spec\.restartPolicy/,
  );
  assert.match(
    err(pod("", rules)).message,
    /^p\.yaml:12:5: spec\.containers\[0\]\.restartPolicyRules: /,
  );
});

Deno.test("a probe on an init container that is not a sidecar is refused at its line (the API server's rule)", () => {
  assert.match(
    err(pod("    livenessProbe: {exec: {command: ['true']}}\n")).message,
    /^p\.yaml:9:5: spec\.initContainers\[0\]\.livenessProbe: probes are for app containers and sidecars/,
  );
  const [p] = loadPods(
    pod("    restartPolicy: Always\n    readinessProbe: {exec: {command: ['true']}}\n"),
    "p.yaml",
  );
  assert.ok(p.spec.initContainers[0].spec.probes?.readiness);
});
