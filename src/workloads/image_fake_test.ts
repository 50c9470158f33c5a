/**
 * Containers from an image (the FakeHost's image service: a config, layers
 * on the MemFs) and with a subPath volume, end to end on the FakeHost: each
 * create step failed in turn leaves the host as it was, each rm -f step
 * failed leaves a retry that finishes, an unrelated container survives
 * (src/testing/sweep.ts).
 */
import assert from "node:assert/strict";
import { loadContainer } from "../spec/container.ts";
import { diffSnapshots, FakeHost } from "../testing/fake_host.ts";
import { sweep, type SweepResult } from "../testing/sweep.ts";
import { createContainer, removeContainer, startContainer } from "./container.ts";

const BUNDLE = "/fake/bundles/busybox";
const IMAGE = "registry.example/team/app:1";

function report(what: string, r: SweepResult): void {
  console.log(
    `${what}: ${r.steps.length} create steps failed in turn (${r.tolerated.length} survived), ` +
      `${r.teardownSteps.length} teardown steps (${r.teardownTolerated.length} survived), ${r.ms} ms`,
  );
  if (r.tolerated.length) console.log(`  create survived: ${r.tolerated.join(", ")}`);
  if (r.teardownTolerated.length) {
    console.log(`  teardown survived: ${r.teardownTolerated.join(", ")}`);
  }
}

/** An image whose User is a name: its upper layer's /etc/passwd says who "app" is. */
function addImage(host: FakeHost): void {
  host.images.add(IMAGE, {
    config: {
      Entrypoint: ["/bin/app"],
      Cmd: ["--serve"],
      Env: ["MODE=prod"],
      User: "app:staff",
      WorkingDir: "/srv",
    },
    layers: [
      {
        "bin/sh": "",
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
        "etc/group": "root:x:0:\n",
      },
      {
        "bin/app": "",
        "srv/": "",
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1000::/srv:/bin/sh\n",
        "etc/group": "root:x:0:\nstaff:x:2345:app\n",
      },
    ],
  });
}

const fromImage = (name: string, policy = "IfNotPresent") =>
  loadContainer(
    `name: ${name}\nimage: ${IMAGE}\nimagePullPolicy: ${policy}\n`,
    `/fake/${name}.yaml`,
  );

/** The bundle, the image (pulled), and an unrelated container "other", running. */
async function withOther(host: FakeHost): Promise<void> {
  host.addBundle(BUNDLE);
  addImage(host);
  await host.images.pull(IMAGE);
  const rec = await createContainer(
    host,
    loadContainer(`name: other\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n`, "/fake/other.yaml"),
    { network: null },
  );
  await startContainer(host, rec.name);
}

Deno.test("a container from an image: the image's entrypoint, env, workdir, and its User name resolved in the layers' /etc/passwd and /etc/group", async () => {
  const host = new FakeHost();
  await withOther(host);
  const before = host.snapshot();
  await createContainer(host, fromImage("web"), { network: null });
  const config = JSON.parse(
    host.fs.readTextFile("/fake/var/lib/rkl/containers/web/config.json"),
  );
  assert.deepEqual(config.process.args, ["/bin/app", "--serve"]);
  assert.equal(config.process.cwd, "/srv");
  assert.ok(config.process.env.includes("MODE=prod"), config.process.env.join(" "));
  assert.equal(config.process.user.uid, 1234);
  assert.equal(config.process.user.gid, 2345);
  const made = diffSnapshots(before, host.snapshot());
  const overlay = made.find((d) => d.startsWith("+ mounts ") && d.includes("(overlay)"));
  assert.ok(overlay, made.join("\n"));
  assert.deepEqual(host.images.pulls.length, 1, "IfNotPresent: no second pull");
  await removeContainer(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  assert.deepEqual(host.sys.fds.size, 0, "every fd the user lookup opened is closed");
});

Deno.test("a container from an image whose User names no one in it: one line naming the image and the user, nothing made", async () => {
  const host = new FakeHost();
  await withOther(host);
  host.images.add("registry.example/team/bad:1", {
    config: { User: "ghost" },
    layers: [{ "etc/passwd": "root:x:0:0::/:/bin/sh\n" }],
  });
  const before = host.snapshot();
  await assert.rejects(
    createContainer(
      host,
      loadContainer("name: bad\nimage: registry.example/team/bad:1\n", "/fake/bad.yaml"),
      { network: null },
    ),
    /the image's User "ghost": user "ghost" is not in image [0-9a-f]{12}\/etc\/passwd/,
  );
  const left = diffSnapshots(before, host.snapshot());
  // The pull stays (an image is kept once pulled); nothing of the container does.
  assert.deepEqual(left.filter((d) => !/^\+ images |\/images\/layers\//.test(d)), []);
});

Deno.test("a container from an image: each create step failed in turn leaves nothing; each rm -f step failed leaves a retry that finishes", async () => {
  const r = await sweep({
    setup: withOther,
    create: (host) => createContainer(host, fromImage("web"), { network: null }),
    teardown: (host) => removeContainer(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("container from an image (User by name)", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.made.some((d) => d.includes("(overlay)")), r.made.join("\n"));
});

Deno.test("a container whose image is pulled at create (policy Always): a failed pull leaves nothing, and the pulled image stays after rm", async () => {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  addImage(host);
  const other = loadContainer(`name: other\nimage: ${BUNDLE}\n`, "/fake/other.yaml");
  await createContainer(host, other, { network: null });
  const before = host.snapshot();
  host.failAt("image.pull");
  await assert.rejects(
    createContainer(host, fromImage("web", "Always"), { network: null }),
    /Cannot pull registry.example\/team\/app:1: injected fault/,
  );
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  await createContainer(host, fromImage("web", "Always"), { network: null });
  const id = host.images.list()[0].split(" ")[1];
  assert.deepEqual(host.images.pulls, [`pulled registry.example/team/app:1 ${id} (2 layers)`]);
  await removeContainer(host, "web", { force: true });
  const left = diffSnapshots(before, host.snapshot());
  assert.ok(left.includes(`+ images registry.example/team/app:1 ${id}`), left.join("\n"));
  const image = /^\+ (images |files \/fake\/var\/lib\/rkl\/images[/:])/;
  assert.deepEqual(left.filter((d) => !image.test(d)), []);
});

/** A hostPath volume with a subPath: the directory is opened beneath the volume and bind-mounted. */
const withSubPath = (name: string) =>
  loadContainer(
    `name: ${name}
image: ${BUNDLE}
args: ["sleep", "1000"]
volumes:
  - name: data
    hostPath: {path: /fake/data}
volumeMounts:
  - {name: data, mountPath: /conf, subPath: app/conf}
`,
    `/fake/${name}.yaml`,
  );

async function withData(host: FakeHost): Promise<void> {
  await withOther(host);
  host.fs.mkdir("/fake/data/app/conf", { recursive: true });
}

Deno.test("a container with a subPath volume: the subPath staged (opened beneath the volume, bind-mounted), and rm unstages it", async () => {
  const host = new FakeHost();
  await withData(host);
  const before = host.snapshot();
  await createContainer(host, withSubPath("web"), { network: null });
  const made = diffSnapshots(before, host.snapshot());
  assert.ok(
    made.some((d) =>
      /^\+ mounts \/fake\/var\/lib\/rkl\/containers\/web\/subpaths\/\S+ <- \/proc\/self\/fd\/\d+ bind$/
        .test(d)
    ),
    made.join("\n"),
  );
  await removeContainer(host, "web", { force: true });
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
  assert.equal(host.sys.fds.size, 0);
});

Deno.test("a subPath through a symlink in the volume is refused, nothing made", async () => {
  const host = new FakeHost();
  await withData(host);
  host.fs.mkdir("/fake/data/app2", { recursive: true });
  host.fs.symlink("/fake/etc", "/fake/data/app2/conf");
  const before = host.snapshot();
  await assert.rejects(
    createContainer(
      host,
      loadContainer(
        `name: web\nimage: ${BUNDLE}\nvolumes:\n  - name: data\n    hostPath: {path: /fake/data}\nvolumeMounts:\n  - {name: data, mountPath: /conf, subPath: app2/conf}\n`,
        "/fake/web.yaml",
      ),
      { network: null },
    ),
    /"app2\/conf" inside \/fake\/data is a symbolic link/,
  );
  assert.deepEqual(diffSnapshots(before, host.snapshot()), []);
});

Deno.test("a container with a subPath volume: each create step failed in turn leaves nothing; each rm -f step failed leaves a retry that finishes", async () => {
  const r = await sweep({
    setup: withData,
    create: (host) => createContainer(host, withSubPath("web"), { network: null }),
    teardown: (host) => removeContainer(host, "web", { force: true }),
  }, { teardownSweep: true });
  report("container with a subPath volume", r);
  assert.deepEqual(r.problems, []);
  assert.ok(r.steps.some((p) => p.op === "sys.mount" && p.detail.includes("/proc/self/fd/")));
});
