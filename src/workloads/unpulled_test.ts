import assert from "node:assert/strict";
import { ImageError } from "../errors.ts";
import type { ImageConfig } from "../image/store.ts";
import { loadPods } from "../spec/pod.ts";
import { planContainer } from "./container.ts";
import { cachedReader, checkUnpulled } from "./unpulled.ts";

const HOST = {
  paths: { root: "/nonexistent/root", runRoot: "/nonexistent/run", logDir: "/x", cniConfDir: "/x" },
  cgroupParent: "rkl",
  nofileHard: 1024,
};

function pod(container: string): ReturnType<typeof loadPods>[0] {
  const text =
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: docker.io/library/app:1\n${container}`;
  return loadPods(text, "/srv/p.yaml", { baseDir: "/srv" })[0];
}

function plan(c: ReturnType<typeof loadPods>[0]["spec"]["containers"][0], bundle = {}) {
  return planContainer(c, { host: HOST, network: null, bundle });
}

const CONFIG: ImageConfig = {
  Entrypoint: ["/bin/sh", "-c"],
  Cmd: ["echo hi"],
  User: "1000:1000",
  WorkingDir: "/srv",
  Env: ["A=1"],
};

Deno.test("an image not pulled is checked against its config from the registry", async () => {
  const c = pod("").spec.containers[0];
  // What `pod validate` did before: no defaults, and a false "no command".
  assert.throws(() => plan(c), /no command/);
  const asked: string[] = [];
  const read = cachedReader((ref) => {
    asked.push(ref);
    return Promise.resolve(CONFIG);
  });
  const u = await checkUnpulled(read, c);
  await checkUnpulled(read, c);
  assert.deepEqual(asked, ["docker.io/library/app:1"], "read once per reference");
  assert.equal(u.warning, undefined);
  const p = plan(u.loaded, u.bundle);
  assert.deepEqual(p.config.process.args, ["/bin/sh", "-c", "echo hi"]);
  assert.equal(p.config.process.cwd, "/srv");
  assert.deepEqual(p.config.process.user.uid, 1000);
  assert.ok(p.config.process.env?.includes("A=1"));
});

Deno.test("runAsNonRoot is checked against a numeric User in the image's config", async () => {
  const c = pod("    securityContext:\n      runAsNonRoot: true\n").spec.containers[0];
  const root = await checkUnpulled(() => Promise.resolve({ Cmd: ["sh"] }), c);
  assert.throws(() => plan(root.loaded, root.bundle), /runAsNonRoot/);
  const ok = await checkUnpulled(() => Promise.resolve({ Cmd: ["sh"], User: "65534" }), c);
  assert.equal(plan(ok.loaded, ok.bundle).config.process.user.uid, 65534);
  // a name needs the layers' /etc/passwd: said, not refused
  const named = await checkUnpulled(() => Promise.resolve({ Cmd: ["sh"], User: "app" }), c);
  plan(named.loaded, named.bundle);
  assert.match(named.notes.join("\n"), /runAsNonRoot not checked: the image's User "app"/);
});

Deno.test("an unreadable config is a warning naming what was not checked, not a refusal", async () => {
  const c = pod("    securityContext:\n      runAsNonRoot: true\n").spec.containers[0];
  const u = await checkUnpulled(
    () => Promise.reject(new ImageError("Cannot read x's config: connection refused")),
    c,
  );
  plan(u.loaded, u.bundle);
  assert.match(
    u.warning!,
    /^\/srv\/p\.yaml:8:\d+: spec\.containers\[0\]\.image: the image's config could not be read \(Cannot read x's config: connection refused\); not checked: the command it runs \(its Entrypoint\/Cmd\), runAsNonRoot \(its User\), its working directory, its environment$/,
  );
  // a bug is not a warning
  await assert.rejects(checkUnpulled(() => Promise.reject(new TypeError("bug")), c), TypeError);
});

Deno.test("imagePullPolicy Never with the image absent is the error run would give", async () => {
  const c = pod("    imagePullPolicy: Never\n").spec.containers[0];
  await assert.rejects(
    checkUnpulled(() => Promise.resolve(CONFIG), c),
    /image "docker\.io\/library\/app:1" is not in the store and imagePullPolicy is Never/,
  );
});
