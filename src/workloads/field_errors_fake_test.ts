/**
 * A request holds field paths, not positions: the core raises a FieldError
 * naming the path, and the create's entry places it through the request's
 * source (the front end's locator). On the FakeHost, without root: the same
 * one-line message as a YAML position gave, and nothing made.
 */
import assert from "node:assert/strict";
import { FieldError, SpecError } from "../errors.ts";
import { loadContainer } from "../spec/container.ts";
import { loadPods } from "../spec/pod.ts";
import { CONTAINER_FIELDS, requestSource } from "../cri/fields.ts";
import { FakeHost } from "../testing/fake_host.ts";
import { createContainer } from "./container.ts";
import { createPod } from "./pod.ts";
import { resolveNames } from "../image/users.ts";
import { loadCompose } from "../spec/compose.ts";
import { replicaSpec } from "./compose/replica.ts";

const BUNDLE = "/fake/bundles/busybox";

async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("the create did not fail");
}

Deno.test("a container's missing hostPath: FieldError in the core, file:line:col from the container file's source", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const loaded = loadContainer(
    `name: web\nimage: ${BUNDLE}\nargs: [sleep, "1"]\nvolumeMounts:\n  - {mountPath: /d, hostPath: /absent}\n`,
    "/fake/web.yaml",
  );
  const mount = loaded.spec.mounts[0];
  assert.deepEqual(mount.path, ["volumeMounts", 0, "hostPath"]);
  assert.ok(!("loc" in mount), "no position in the request");
  const before = host.snapshot();
  const e = await refusal(createContainer(host, loaded, { network: null }));
  assert.ok(e instanceof SpecError, String(e));
  assert.ok(e.cause instanceof FieldError);
  assert.equal(
    e.message,
    '/fake/web.yaml:5:31: volumeMounts[0].hostPath: hostPath "/absent" does not exist (the bind\'s create_host_path is false)',
  );
  assert.equal(e.exitCode, 2);
  assert.deepEqual(host.snapshot(), before, "nothing made");
});

Deno.test("a pod's missing typed hostPath volume: the pod's path, placed by the pod file's source", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const [pod] = loadPods(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: hp}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: /absent, type: Directory}}\n  containers:\n    - {name: a, image: ${BUNDLE}, args: [sleep, "1"], volumeMounts: [{name: d, mountPath: /d}]}\n`,
    "/fake/hp.yaml",
  );
  assert.deepEqual(pod.spec.containers[0].spec.mounts[0].path, [
    "spec",
    "volumes",
    0,
    "hostPath",
    "path",
  ]);
  const before = host.snapshot();
  const e = await refusal(createPod(host, pod, { network: null }));
  assert.ok(e instanceof SpecError, String(e));
  assert.equal(
    e.message,
    '/fake/hp.yaml:6:34: spec.volumes[0].hostPath.path: hostPath "/absent" does not exist (type Directory)',
  );
  assert.deepEqual(host.snapshot(), before, "nothing made");
});

Deno.test("the CRI places a mount's path at its proto field; a user name's at run_as_username", () => {
  const source = requestSource("CreateContainer", "config", CONTAINER_FIELDS);
  assert.deepEqual(source.at(["mounts", 2, "source"]), {
    file: "CreateContainer",
    path: "config.mounts[2].host_path",
  });
  let err: unknown;
  try {
    resolveNames({ user: "ghost", path: ["userNames"] }, {}, { passwd: "", where: "/r" });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof FieldError);
  assert.equal(
    new SpecError(source.at(err.path), err.detail).message,
    'CreateContainer: config.linux.security_context.run_as_username: user "ghost" is not in /r/etc/passwd',
  );
});

Deno.test("a compose replica's bind and user are placed at their compose key and line", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const { project } = loadCompose([{
    file: "compose.yaml",
    text:
      `services:\n  app:\n    image: ${BUNDLE}\n    user: ghost\n    volumes:\n      - {type: bind, source: /absent, target: /data}\n`,
  }], { env: {}, dir: "/fake/proj" });
  const svc = project.services[0];
  const spec = replicaSpec(host, project, svc, "proj-app-1", 1, "h");
  assert.deepEqual(spec.spec.mounts[0].path, ["volumes", 0]);
  assert.deepEqual(spec.spec.userNames?.path, ["user"]);
  const before = host.snapshot();
  const bind = await refusal(createContainer(host, spec, { network: null }));
  assert.match(
    bind.message,
    /^compose\.yaml:6:9: services\.app\.volumes\[0\]: hostPath "\/absent" does not exist/,
  );
  host.fs.mkdir("/absent");
  const user = await refusal(createContainer(host, spec, { network: null }));
  assert.equal(
    user.message,
    `compose.yaml:4:11: services.app.user: user "ghost" is not in ${BUNDLE}/rootfs/etc/passwd`,
  );
  host.fs.remove("/absent");
  assert.deepEqual(host.snapshot(), before, "nothing made");
});
