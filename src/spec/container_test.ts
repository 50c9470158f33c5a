import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { loadContainer } from "./container.ts";

const RK8S_EXAMPLE = `name: single-container-test
image: ./bundles/busybox
ports:
  - containerPort: 80
    protocol: ""
    hostPort: 0
    hostIP: ""
args:
  - sleep
  - "100"
resources:
  limits:
    cpu: 500m
    memory: 233Mi
`;

function specError(text: string, file = "c.yaml"): SpecError {
  try {
    loadContainer(text, file, { baseDir: "/srv" });
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError");
}

Deno.test("loadContainer() accepts rk8s's example and resolves the bundle against the file's directory", () => {
  const { spec, warnings } = loadContainer(RK8S_EXAMPLE, "single.yaml", { baseDir: "/srv/app" });
  assert.equal(spec.name, "single-container-test");
  assert.equal(spec.image, "/srv/app/bundles/busybox");
  assert.deepEqual(spec.args, ["sleep", "100"]);
  assert.equal(spec.resources.limits?.cpu, "500m");
  assert.equal(spec.ports[0].containerPort, 80);
  assert.deepEqual(warnings, []);
});

Deno.test("loadContainer() reports a wrong type at the value's line and column", () => {
  const e = specError("name: web\nimage: 42\n");
  assert.equal(e.message, "c.yaml:2:8: image: Expected string, received number");
  assert.equal(e.exitCode, 2);
});

Deno.test("loadContainer() refuses YAML's .inf and .nan where a number may go, at the value's line", () => {
  for (const v of [".inf", "-.inf", ".nan"]) {
    const e = specError(`name: web\nimage: /b\nresources:\n  limits:\n    cpu: ${v}\n`);
    assert.match(e.message, /^c\.yaml:5:10: resources\.limits\.cpu: /, v);
    assert.equal(e.exitCode, 2);
  }
  const e = specError("name: web\nimage: /b\nports:\n  - containerPort: .inf\n");
  assert.match(e.message, /^c\.yaml:4:20: ports\[0\]\.containerPort: /);
});

Deno.test("loadContainer() locates a missing required field at its parent", () => {
  const e = specError("name: web\nargs: [sh]\n");
  assert.equal(e.line, 1);
  assert.equal(e.path, "image");
});

Deno.test("loadContainer() rejects a name that is not a DNS-1123 label", () => {
  const e = specError("name: Web_1\nimage: b\nargs: [sh]\n");
  assert.match(e.message, /^c\.yaml:1:7: name: "Web_1" is not a DNS-1123 label/);
  assert.match(specError(`name: ${"a".repeat(64)}\nimage: b\n`).message, /longer than 63/);
});

Deno.test("loadContainer() rejects a bad quantity with its path inside resources", () => {
  const e = specError("name: web\nimage: b\nresources:\n  limits:\n    memory: 12XB\n");
  assert.equal(e.path, "resources.limits.memory");
  assert.equal(e.line, 5);
  assert.equal(e.column, 13);
  assert.match(e.detail, /Kubernetes quantity grammar/);
});

Deno.test("loadContainer() rejects a negative limit", () => {
  assert.match(
    specError("name: web\nimage: b\nresources:\n  limits:\n    cpu: -1\n").detail,
    /must not be negative/,
  );
});

Deno.test("loadContainer() warns about unknown fields with their own line and keeps going", () => {
  const { spec, warnings } = loadContainer(
    "name: web\nimage: b\ncolour: blue\nports:\n  - containerPort: 80\n    bogus: 1\n",
    "c.yaml",
  );
  assert.equal(spec.name, "web");
  assert.deepEqual(warnings.map((w) => [w.path, w.line, w.column]), [["colour", 3, 1], [
    "ports[0].bogus",
    6,
    5,
  ]]);
});

Deno.test("loadContainer() reports YAML syntax errors with a position", () => {
  const e = specError("name: web\nimage: [b\n");
  assert.match(e.message, /^c\.yaml:\d+:\d+: Cannot parse YAML/);
});

Deno.test("loadContainer() rejects duplicate keys", () => {
  assert.match(
    specError("name: a\nname: b\nimage: x\n").message,
    /^c\.yaml:2:1: Cannot parse YAML: Map keys must be unique/,
  );
});

Deno.test("loadContainer() checks ports, paths and protocols", () => {
  assert.equal(
    specError("name: a\nimage: x\nports:\n  - containerPort: 70000\n").path,
    "ports[0].containerPort",
  );
  assert.equal(
    specError("name: a\nimage: x\nports:\n  - containerPort: 80\n    protocol: ICMP\n").path,
    "ports[0].protocol",
  );
  assert.equal(
    specError("name: a\nimage: x\nports:\n  - containerPort: 80\n    hostIP: 300.1.1.1\n").path,
    "ports[0].hostIP",
  );
  assert.match(
    specError("name: a\nimage: x\nports:\n  - containerPort: 80\n  - containerPort: 80\n").detail,
    /listed twice/,
  );
  assert.match(specError("name: a\nimage: x\nworkingDir: rel/dir\n").detail, /must be absolute/);
  assert.match(
    specError("name: a\nimage: x\nargs: [sleep, 100]\n").message,
    /args\[1\]: Expected string, received number/,
  );
});

Deno.test("loadContainer() resolves hostPath mounts and named hostPath volumes", () => {
  const { spec } = loadContainer(
    "name: a\nimage: x\nvolumes:\n  - name: data\n    hostPath: {path: ./data}\nvolumeMounts:\n  - {name: data, mountPath: /data, readOnly: true}\n  - {hostPath: /etc/ssl, mountPath: /etc/ssl}\n",
    "c.yaml",
    { baseDir: "/srv" },
  );
  assert.deepEqual(spec.mounts.map((m) => [m.source, m.destination, m.readOnly]), [
    ["/srv/data", "/data", true],
    ["/etc/ssl", "/etc/ssl", false],
  ]);
  assert.match(
    specError("name: a\nimage: x\nvolumeMounts:\n  - {name: nope, mountPath: /d}\n").detail,
    /not declared/,
  );
});

Deno.test("loadContainer() rejects an empty file", () => {
  assert.match(specError("").message, /^c\.yaml: Cannot parse YAML: the file is empty/);
});

Deno.test("a YAML alias bomb is refused with the file, a position and no expansion", () => {
  let text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (let i = 1; i < 9; i++) {
    const p = String.fromCharCode(96 + i);
    const n = String.fromCharCode(97 + i);
    text += `${n}: &${n} [${Array(10).fill(`*${p}`).join(", ")}]\n`;
  }
  text += "name: bomb\nimage: x\n";
  assert.throws(
    () => loadContainer(text, "bomb.yaml"),
    (e: Error) =>
      e instanceof SpecError && /^bomb\.yaml:1:1: .*too many aliases/.test(e.message) &&
      e.exitCode === 2,
  );
});

Deno.test("a single container's restartPolicy becomes the label rkl daemon restarts by", () => {
  const { spec } = loadContainer("name: a\nimage: b\nrestartPolicy: OnFailure\n", "a.yaml");
  assert.equal(spec.labels["org.rkl.restart"], "OnFailure");
  assert.equal(
    loadContainer("name: a\nimage: b\n", "a.yaml").spec.labels["org.rkl.restart"],
    undefined,
  );
});

Deno.test("loadContainer(): a path is a bundle (made absolute), anything else an image reference", () => {
  const bundle = loadContainer("name: a\nimage: ./bundles/busybox\n", "/w/c.yaml").spec;
  assert.equal(bundle.image, "/w/bundles/busybox");
  const ref = loadContainer("name: a\nimage: busybox:1.36\nimagePullPolicy: Never\n", "/w/c.yaml")
    .spec;
  assert.equal(ref.image, "busybox:1.36");
  assert.equal(ref.imagePullPolicy, "Never");
});
