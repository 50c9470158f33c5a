/**
 * From compose to Kubernetes and back to what runs: `compose up` and `pod
 * run` of `compose convert`'s output must give the same processes (command
 * lines, environment, working directory, user, mounts), the same reachable
 * ports, names that resolve and files mounted; `generate kube` of a running
 * pod or project must recreate it with the same spec. Every test leaves the
 * host census as it found it.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
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

/**
 * The round trip: `compose up`, observe and check; `down`; `convert`; `pod
 * run`; observe and check again. `replicas` maps compose container names to
 * the converted pod's container record.
 */
async function roundTrip(
  name: string,
  files: Record<string, string>,
  replicas: Record<string, string>,
  checks: (exec: (replica: string, sh: string) => Promise<string>) => Promise<void>,
): Promise<string> {
  const dir = await project(name, files);
  const compose = (...a: string[]) => rklOk(env!, ["compose", ...a], { cwd: dir });
  await compose("up", "-d");
  const seen = async (pick: (composeName: string, podRecord: string) => string) =>
    Object.fromEntries(
      await Promise.all(
        Object.entries(replicas).map(async ([c, p]) => [c, await observe(pick(c, p))]),
      ),
    );
  const viaCompose = await seen((c) => c);
  const containerOf = (replica: string) => replicas[replica].slice(replica.length + 1);
  try {
    await checks((replica, sh) => rklOk(env!, ["container", "exec", replica, "sh", "-c", sh]));
  } finally {
    await compose("down", "-t", "1");
  }
  const yaml = await compose("convert");
  await Deno.writeTextFile(`${dir}/k8s.yaml`, yaml);
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/k8s.yaml`]);
  try {
    assert.deepEqual(await seen((_c, p) => p), viaCompose);
    await checks((replica, sh) =>
      rklOk(env!, ["pod", "exec", replica, containerOf(replica), "sh", "-c", sh])
    );
  } finally {
    for (const pod of Object.keys(replicas).reverse()) {
      await rkl(env!, ["pod", "rm", "-f", pod]);
    }
  }
  return yaml;
}

test("compose up and pod run of `compose convert` give the same processes, ports, names and files", async () => {
  let volume = "";
  const yaml = await roundTrip(
    "rich",
    { "compose.yaml": RICH, "db.env": "LEVEL=debug\n", "db_pw.txt": "s3cret\n" },
    {
      "rich-db-1": "rich-db-1_db",
      "rich-web-1": "rich-web-1_web",
      "rich-worker-1": "rich-worker-1_worker",
    },
    async (exec) => {
      await behaves((svc, sh) => exec(`rich-${svc}-1`, sh));
      // The named volume is one directory for both: what compose wrote, the pod reads.
      if (!volume) await exec("rich-db-1", "echo kept > /var/lib/data/f");
      volume = await exec("rich-db-1", "cat /var/lib/data/f");
    },
  );
  assert.equal(volume, "kept\n");
  assert.match(yaml, /kind: Secret/);
  assert.match(yaml, /kind: ConfigMap/);
  assert.match(yaml, /name: wait-for-db/);
  assert.match(yaml, /readinessProbe:/);
  await rklOk(env!, ["volume", "rm", "rich_dbdata"]);
});

test("replicas, anonymous volumes, x- anchors, env_file and labels round-trip too", async () => {
  await roundTrip(
    "stack",
    {
      "compose.yaml": `x-base: &base
  image: ./bundles/busybox
  labels: {tier: app, "com.example/desc": "a value, with spaces"}
services:
  cache:
    <<: *base
    command: ["sh", "-c", "exec nc -ll -p 6379 -e echo +PONG"]
  app:
    <<: *base
    command: ["sh", "-c", "mkdir -p /w && hostname > /w/index.html && exec httpd -f -p 80 -h /w"]
    deploy: {replicas: 2}
    env_file: ./app.env
    volumes: ["/scratch"]
    depends_on: [cache]
`,
      "app.env": "MODE=prod\nGREETING=hi there\n",
    },
    {
      "stack-cache-1": "stack-cache-1_cache",
      "stack-app-1": "stack-app-1_app",
      "stack-app-2": "stack-app-2_app",
    },
    async (exec) => {
      const retry = (c: string) =>
        `for i in $(seq 1 25); do ${c} && exit 0; sleep 0.2; done; exit 1`;
      assert.equal(
        await exec("stack-cache-1", retry("wget -qO- http://stack-app-2/")),
        "stack-app-2\n",
      );
      assert.equal(await exec("stack-app-1", retry("echo PING | nc -w 1 cache 6379")), "+PONG\n");
      assert.equal(
        await exec("stack-app-2", 'echo "$MODE/$GREETING"; touch /scratch/x && echo rw'),
        "prod/hi there\nrw\n",
      );
    },
  );
});

test("rk8s's compose example round-trips, and front still reaches back by name", async () => {
  await roundTrip(
    "rk8s",
    {
      "compose.yaml": await Deno.readTextFile(`${REPO}/tests/fixtures/rk8s-compose.yaml`),
      "config.yaml": "a: 1\n",
    },
    { back: "back_backend", front: "front_frontend" },
    async (exec) => {
      for (const [from, to] of [["front", "back"], ["front", "backend"], ["back", "front"]]) {
        assert.match(await exec(from, `ping -c 1 -W 2 ${to}`), /1 packets received/);
      }
      assert.equal(await exec("back", "touch /app/data/x && echo ok"), "ok\n");
    },
  );
  await Deno.remove(`${env!.dir}/rk8s/tmp`, { recursive: true });
});

test("a pod that leaves its hosts group leaves the others' /etc/hosts", async () => {
  const dir = await project("group", {
    "compose.yaml": `services:
  a: {image: ./bundles/busybox, command: ["sleep", "300"]}
  b: {image: ./bundles/busybox, command: ["sleep", "300"]}
`,
  });
  const yaml = await rklOk(env!, ["compose", "convert"], { cwd: dir });
  await Deno.writeTextFile(`${dir}/k8s.yaml`, yaml);
  await rklOk(env!, ["pod", "run", "--network", env!.network, `${dir}/k8s.yaml`]);
  assert.match(
    await rklOk(env!, ["pod", "exec", "group-a-1", "a", "cat", "/etc/hosts"]),
    /\tgroup-b-1 b\n/,
  );
  await rklOk(env!, ["pod", "rm", "-f", "group-b-1"]);
  assert.doesNotMatch(
    await rklOk(env!, ["pod", "exec", "group-a-1", "a", "cat", "/etc/hosts"]),
    /group-b-1/,
  );
  await rklOk(env!, ["pod", "rm", "-f", "group-a-1"]);
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

cleanupAfterAll(env);
