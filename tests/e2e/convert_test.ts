/**
 * From compose to Kubernetes and back to what runs: `compose up` and `pod
 * run` of `compose convert`'s output must give the same processes (command
 * lines, environment, working directory, user, mounts), the same reachable
 * ports, names that resolve and files mounted; `generate kube` of a running
 * pod or project must recreate it with the same spec. Every test leaves the
 * host census as it found it.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupEnv, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("conv", 10) : undefined;
const { test } = censusTests(ready, () => env!);

interface Seen {
  args: string[];
  env: string[];
  cwd: string;
  user: unknown;
  mounts: string[];
  caps: string[];
}

/** What the runtime was told to run for a container record. */
async function observe(record: string): Promise<Seen> {
  const cfg = JSON.parse(await Deno.readTextFile(`${env!.root}/containers/${record}/config.json`));
  return {
    args: cfg.process.args,
    env: [...cfg.process.env].sort(),
    cwd: cfg.process.cwd,
    user: cfg.process.user,
    mounts: cfg.mounts.map((m: { destination: string }) => m.destination).sort(),
    caps: [...cfg.process.capabilities.bounding].sort(),
  };
}

async function project(name: string, files: Record<string, string>): Promise<string> {
  const dir = `${env!.dir}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${f}`, text);
  try {
    await Deno.lstat(`${dir}/bundles`);
  } catch {
    await Deno.symlink(`${REPO}/bundles`, `${dir}/bundles`);
  }
  return dir;
}

async function get(url: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 40; i++) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      last = await r.text();
      if (r.ok) return last;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return last;
}

const RICH = `name: rich
services:
  db:
    image: ./bundles/busybox
    command: ["sh", "-c", "mkdir -p /www && echo db-up > /www/index.html && exec httpd -f -p 5432 -h /www"]
    environment: {POSTGRES_DB: app, POSTGRES_PASSWORD_FILE: /run/secrets/db_pw}
    env_file: [./db.env]
    healthcheck: {test: ["CMD", "wget", "-qO-", "http://127.0.0.1:5432/"], interval: 1s, retries: 5}
    secrets: [db_pw]
    volumes: ["dbdata:/var/lib/data"]
    ports: ["15432:5432"]
    networks: [back]
  web:
    image: ./bundles/busybox
    command: ["sh", "-c", "exec httpd -f -p 80 -h /srv"]
    working_dir: /srv
    depends_on: {db: {condition: service_healthy}}
    configs: [{source: site, target: /srv/index.html}]
    environment: {DB_URL: "http://db:5432/", PRICE: "$$5 and $$(DB_URL)"}
    ports: ["18080:80"]
    networks: [front, back]
  worker:
    image: ./bundles/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    user: "1000:1000"
    cap_add: [NET_ADMIN]
    depends_on: [web]
    networks: [front]
configs:
  site: {content: "hello from web\\n"}
secrets:
  db_pw: {file: ./db_pw.txt}
volumes:
  dbdata: {}
networks:
  front: {}
  back: {}
`;

/** The behaviour both forms must show, checked from inside and from the host. */
async function behaves(exec: (svc: string, sh: string) => Promise<string>): Promise<void> {
  assert.equal(await get("http://127.0.0.1:18080/"), "hello from web\n");
  assert.equal(await get("http://127.0.0.1:15432/"), "db-up\n");
  assert.equal(
    await exec("worker", "wget -qO- http://web/ && wget -qO- $(echo http://db:5432/)"),
    "hello from web\ndb-up\n",
  );
  assert.equal(
    await exec("web", 'wget -qO- $DB_URL; echo "$PRICE"'),
    "db-up\n$5 and $(DB_URL)\n",
  );
  assert.equal(await exec("db", "cat /run/secrets/db_pw; echo $LEVEL"), "s3cret\ndebug\n");
  assert.equal(await exec("worker", "id -u; id -g"), "1000\n1000\n");
}

test("compose up and pod run of `compose convert` give the same processes, ports, names and files", async () => {
  const dir = await project("rich", {
    "compose.yaml": RICH,
    "db.env": "LEVEL=debug\n",
    "db_pw.txt": "s3cret\n",
  });
  const compose = (...a: string[]) => rklOk(env!, ["compose", ...a], { cwd: dir });
  await compose("up", "-d");
  const services = ["db", "web", "worker"];
  const viaCompose = Object.fromEntries(
    await Promise.all(services.map(async (s) => [s, await observe(`rich-${s}-1`)])),
  );
  await behaves((svc, sh) => compose("exec", svc, "sh", "-c", sh));
  await rklOk(env!, ["compose", "exec", "db", "sh", "-c", "echo kept > /var/lib/data/f"], {
    cwd: dir,
  });
  await compose("down", "-t", "1");

  const yaml = await compose("convert");
  assert.match(yaml, /kind: Secret/);
  assert.match(yaml, /kind: ConfigMap/);
  assert.match(yaml, /name: wait-for-db/);
  assert.match(yaml, /readinessProbe:/);
  await Deno.writeTextFile(`${dir}/k8s.yaml`, yaml);
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/k8s.yaml`]);
  const viaPods = Object.fromEntries(
    await Promise.all(services.map(async (s) => [s, await observe(`rich-${s}-1_${s}`)])),
  );
  assert.deepEqual(viaPods, viaCompose);
  await behaves((svc, sh) => rklOk(env!, ["pod", "exec", `rich-${svc}-1`, svc, "sh", "-c", sh]));
  // The named volume is the same directory for both.
  assert.equal(
    await rklOk(env!, ["pod", "exec", "rich-db-1", "db", "cat", "/var/lib/data/f"]),
    "kept\n",
  );
  for (const s of ["worker", "web", "db"]) await rklOk(env!, ["pod", "rm", "-f", `rich-${s}-1`]);
  await rklOk(env!, ["volume", "rm", "rich_dbdata"]);
});

test("rk8s's compose example converts, and front still reaches back by name", async () => {
  const dir = await project("rk8s", {
    "compose.yaml": await Deno.readTextFile(`${REPO}/tests/fixtures/rk8s-compose.yaml`),
    "config.yaml": "a: 1\n",
  });
  const yaml = await rklOk(env!, ["compose", "convert"], { cwd: dir });
  await Deno.writeTextFile(`${dir}/k8s.yaml`, yaml);
  const out = await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/k8s.yaml`]);
  assert.equal(out, "back\nfront\n");
  const ping = (from: string, c: string, to: string) =>
    rklOk(env!, ["pod", "exec", from, c, "ping", "-c", "1", "-W", "2", to]);
  assert.match(await ping("front", "frontend", "back"), /1 packets received/);
  assert.match(await ping("front", "frontend", "backend"), /1 packets received/);
  assert.match(await ping("back", "backend", "front"), /1 packets received/);
  await rklOk(env!, ["pod", "rm", "-f", "front"]);
  // A pod that goes leaves the others' /etc/hosts.
  assert.doesNotMatch(
    await rklOk(env!, ["pod", "exec", "back", "backend", "cat", "/etc/hosts"]),
    /front/,
  );
  await rklOk(env!, ["pod", "rm", "-f", "back"]);
  await Deno.remove(`${dir}/tmp`, { recursive: true });
});

test("a compose file that cannot be a Pod is one line naming the file, line and key", async () => {
  const dir = await project("bad", {
    "compose.yaml":
      "services:\n  a:\n    image: ./bundles/busybox\n    user: nobody\n  b:\n    image: ./bundles/busybox\n    shm_size: 128m\n",
  });
  const r = await rkl(env!, ["compose", "convert"], { cwd: dir });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    "rkl: compose.yaml:4:5: services.a.user: a Pod takes numeric ids (runAsUser/runAsGroup): write `user: UID[:GID]` (see the image's /etc/passwd)\n",
  );
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    "services:\n  b:\n    image: ./bundles/busybox\n    shm_size: 128m\n",
  );
  const w = await rkl(env!, ["compose", "convert"], { cwd: dir });
  assert.equal(w.code, 0);
  assert.equal(
    w.stderr,
    "warning: compose.yaml:4:5: services.b.shm_size: no Pod field sets /dev/shm's size; dropped\n",
  );
});

test("generate kube recreates a running pod and a compose project with the same spec", async () => {
  const dir = await project("gen", {
    "pod.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {app.conf: "port=1\\n"}
---
apiVersion: v1
kind: Pod
metadata: {name: genpod, labels: {app: gen}}
spec:
  securityContext: {fsGroup: 2000}
  hostAliases: [{ip: 10.1.1.1, hostnames: [x.local]}]
  initContainers:
    - {name: init, image: ./bundles/busybox, command: ["sh", "-c", "echo ready > /work/r"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
    - name: app
      image: ./bundles/busybox
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
      workingDir: /work
      env: [{name: A, value: "1"}, {name: B, value: "$(A)-2"}]
      resources: {limits: {cpu: 250m, memory: 64Mi}}
      securityContext: {runAsUser: 1000, capabilities: {drop: [NET_RAW]}}
      ports: [{containerPort: 8080, hostPort: 18181}]
      lifecycle: {preStop: {exec: {command: ["sh", "-c", "true"]}}}
      volumeMounts:
        - {name: work, mountPath: /work}
        - {name: conf, mountPath: /etc/app.conf, subPath: app.conf}
  volumes:
    - {name: work, emptyDir: {}}
    - {name: conf, configMap: {name: cfg}}
`,
  });
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/pod.yaml`]);
  const before = await observe("genpod_app");
  const yaml = await rklOk(env!, ["generate", "kube", "genpod"]);
  await Deno.writeTextFile(`${dir}/gen.yaml`, yaml);
  await rklOk(env!, ["pod", "rm", "-f", "genpod"]);
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/gen.yaml`]);
  assert.deepEqual(await observe("genpod_app"), before);
  const inside = await rklOk(env!, [
    "pod",
    "exec",
    "genpod",
    "app",
    "sh",
    "-c",
    "cat /work/r /etc/app.conf; echo $B; id -G; stat -c %g /work; grep x.local /etc/hosts",
  ]);
  assert.equal(inside, "ready\nport=1\n1-2\n0 2000\n2000\n10.1.1.1\tx.local\n");
  await rklOk(env!, ["pod", "rm", "-f", "genpod"]);

  // A compose project: a Pod per container, which still find each other by name.
  const pdir = await project("genc", {
    "compose.yaml": `services:
  api:
    image: ./bundles/busybox
    command: ["sh", "-c", "mkdir -p /w && echo api > /w/index.html && exec httpd -f -p 80 -h /w"]
    configs: [{source: c, target: /etc/c.txt}]
  cli:
    image: ./bundles/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
configs:
  c: {content: "from config"}
`,
  });
  await rklOk(env!, ["compose", "up", "-d"], { cwd: pdir });
  const seen = { api: await observe("genc-api-1"), cli: await observe("genc-cli-1") };
  const gen = await rklOk(env!, ["generate", "kube", "genc"]);
  await rklOk(env!, ["compose", "down", "-t", "1"], { cwd: pdir });
  await Deno.writeTextFile(`${pdir}/gen.yaml`, gen);
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${pdir}/gen.yaml`]);
  assert.deepEqual(
    { api: await observe("genc-api-1_genc-api-1"), cli: await observe("genc-cli-1_genc-cli-1") },
    seen,
  );
  await waitFor(
    "api to answer cli by service name",
    async () =>
      (await rkl(env!, ["pod", "exec", "genc-cli-1", "genc-cli-1", "wget", "-qO-", "http://api/"]))
        .stdout === "api\n",
  );
  assert.equal(
    await rklOk(env!, ["pod", "exec", "genc-api-1", "genc-api-1", "cat", "/etc/c.txt"]),
    "from config",
  );
  for (const p of ["genc-cli-1", "genc-api-1"]) await rklOk(env!, ["pod", "rm", "-f", p]);
});

Deno.test({
  name: "convert: cleanup",
  ignore: !ready,
  sanitizeResources: false,
  fn: () => cleanupEnv(env!),
});
