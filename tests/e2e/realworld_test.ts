/**
 * What Pod manifests and compose files lean on beyond containers and
 * hostPath: ConfigMaps and Secrets from the same file or --configmap, the
 * downward API, $(VAR), PersistentVolumeClaims, fsGroup, hostAliases,
 * pod-level resources, lifecycle hooks, and compose healthchecks tracked for
 * as long as a service runs. Real runtime, conmon, CNI and cgroupfs; every
 * test leaves the host census as it found it.
 */
import assert from "node:assert/strict";
import {
  assertRejected,
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  rklOk,
  waitFor,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("real", 8) : undefined;
const { test } = censusTests(ready, () => env!);

async function write(name: string, text: string): Promise<string> {
  const path = `${env!.dir}/${name}`;
  await Deno.writeTextFile(path, text.replaceAll("BUNDLE", `${REPO}/bundles/busybox`));
  return path;
}

const exec = (pod: string, c: string, sh: string) =>
  rklOk(env!, ["pod", "exec", pod, c, "--", "sh", "-c", sh]);

const OBJECTS = `apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data:
  MODE: production
  nginx.conf: |
    server { listen 80; }
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
type: Opaque
data: {password: c2VjcmV0LXB3}
stringData: {user: admin}
`;

test("a pod's env and volumes come from the ConfigMaps, Secrets and downward API in its file", async () => {
  const file = await write(
    "objects.yaml",
    `${OBJECTS}---
apiVersion: v1
kind: Pod
metadata: {name: objs, labels: {app: web, tier: front}}
spec:
  securityContext: {fsGroup: 3000, supplementalGroups: [4000]}
  hostAliases: [{ip: 10.77.0.9, hostnames: [db.internal, cache.internal]}]
  resources: {limits: {cpu: 500m, memory: 96Mi}}
  containers:
    - name: app
      image: BUNDLE
      command: ["sh", "-c", "echo mode=$(MODE) pod=$(POD_NAME) '$$(NOT_EXPANDED)'; exec sleep 3600"]
      envFrom: [{configMapRef: {name: web-config}, prefix: CFG_}]
      env:
        - {name: MODE, valueFrom: {configMapKeyRef: {name: web-config, key: MODE}}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: web-secret, key: password}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
        - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
        - {name: DSN, value: "postgres://$(PASSWORD)@db/$(POD_NAME)"}
      resources: {limits: {memory: 64Mi}}
      volumeMounts:
        - {name: conf, mountPath: /etc/nginx/conf.d}
        - {name: one, mountPath: /etc/single.conf, subPath: nginx.conf}
        - {name: creds, mountPath: /run/secrets/web}
        - {name: info, mountPath: /etc/podinfo}
        - {name: mixed, mountPath: /etc/mixed}
  volumes:
    - {name: conf, configMap: {name: web-config, items: [{key: nginx.conf, path: default.conf}]}}
    - {name: one, configMap: {name: web-config}}
    - {name: creds, secret: {secretName: web-secret, defaultMode: 0400}}
    - name: info
      downwardAPI:
        items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: uid, fieldRef: {fieldPath: metadata.uid}}
    - name: mixed
      projected:
        sources:
          - secret: {name: web-secret, items: [{key: user, path: auth/user}]}
          - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
`,
  );
  await rklOk(env!, ["pod", "run", "--network", env!.network, file]);
  const state = JSON.parse(await rklOk(env!, ["pod", "state", "objs", "-o", "json"]));
  const envOut = await exec(
    "objs",
    "app",
    'for v in MODE CFG_MODE PASSWORD POD_NAME POD_IP POD_UID TIER MEM_MI DSN; do eval echo "$v=\\$$v"; done',
  );
  const vars = Object.fromEntries(
    envOut.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  assert.equal(vars.MODE, "production");
  assert.equal(vars.CFG_MODE, "production");
  assert.equal(vars.PASSWORD, "secret-pw");
  assert.equal(vars.POD_NAME, "objs");
  assert.equal(vars.POD_IP, state.ip);
  assert.match(vars.POD_UID, /^[0-9a-f-]{36}$/);
  assert.equal(vars.TIER, "front");
  assert.equal(vars.MEM_MI, "64");
  assert.equal(vars.DSN, "postgres://secret-pw@db/objs");
  await waitFor(
    "the container's first line",
    async () => (await rkl(env!, ["pod", "logs", "objs", "app"])).stdout.includes("mode="),
  );
  assert.equal(
    (await rklOk(env!, ["pod", "logs", "objs", "app"])).trim(),
    "mode=production pod=objs $(NOT_EXPANDED)",
  );

  const files = await exec(
    "objs",
    "app",
    "cat /etc/nginx/conf.d/default.conf /etc/single.conf /run/secrets/web/password; echo; " +
      "cat /etc/podinfo/labels; echo; cat /etc/podinfo/uid; echo; cat /etc/mixed/auth/user /etc/mixed/name; echo; " +
      "stat -c '%a %g' /run/secrets/web/password /etc/nginx/conf.d/default.conf; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo; " +
      "touch /etc/nginx/conf.d/x 2>/dev/null && echo writable || echo read-only; grep internal /etc/hosts",
  );
  assert.deepEqual(files.trim().split("\n"), [
    "server { listen 80; }",
    "server { listen 80; }",
    "secret-pw",
    'app="web"',
    'tier="front"',
    vars.POD_UID,
    "adminobjs",
    "440 3000",
    "644 3000",
    "0 3000 4000 ",
    "read-only",
    "10.77.0.9\tdb.internal\tcache.internal",
  ]);
  // Pod-level resources are the pod cgroup's limits.
  assert.equal(state.limits.memoryLimit, 96 * 2 ** 20);
  assert.equal(state.limits.cpuQuota, 50_000);
  await rklOk(env!, ["pod", "rm", "-f", "objs"]);
});

test("--configmap supplies the objects; a missing one is one line naming the file, line and field", async () => {
  const objects = await write("objects-only.yaml", OBJECTS);
  const pod = await write(
    "uses.yaml",
    `apiVersion: v1
kind: Pod
metadata: {name: uses}
spec:
  restartPolicy: Never
  containers:
    - name: app
      image: BUNDLE
      command: ["sh", "-c", "echo $MODE"]
      env:
        - {name: MODE, valueFrom: {configMapKeyRef: {name: web-config, key: MODE}}}
`,
  );
  const bad = await rkl(env!, ["pod", "run", "--network", env!.network, pod]);
  assertRejected(
    "missing ConfigMap",
    bad,
    new RegExp(
      `^rkl: ${pod}:11:\\d+: spec.containers\\[0\\].env\\[0\\].valueFrom.configMapKeyRef.name: ConfigMap "web-config" is not defined`,
    ),
  );
  await rklOk(env!, ["pod", "run", "--network", env!.network, "--configmap", objects, pod]);
  await waitFor(
    "the pod to finish",
    async () => (await rkl(env!, ["pod", "logs", "uses", "app"])).stdout.trim() === "production",
  );
  await rklOk(env!, ["pod", "rm", "-f", "uses"]);
});

test("a PersistentVolumeClaim is a named volume that outlives its pod until `volume rm`", async () => {
  const spec = (cmd: string) =>
    `apiVersion: v1
kind: Pod
metadata: {name: claim-user}
spec:
  restartPolicy: Never
  containers:
    - {name: app, image: BUNDLE, command: ["sh", "-c", "${cmd}"], volumeMounts: [{name: d, mountPath: /data}]}
  volumes:
    - {name: d, persistentVolumeClaim: {claimName: keep-me}}
`;
  const first = await write("claim1.yaml", spec("echo kept > /data/f"));
  await rklOk(env!, ["pod", "run", "--network", env!.network, first]);
  await waitFor("the write", () => {
    try {
      return Deno.readTextFileSync(`${env!.root}/volumes/pvc-keep-me/f`) === "kept\n";
    } catch {
      return false;
    }
  });
  const inUse = await rkl(env!, ["volume", "rm", "pvc-keep-me"]);
  assert.equal(inUse.code, 1);
  assert.equal(inUse.stderr, 'rkl: Cannot remove volume "pvc-keep-me": in use by pod claim-user\n');
  await rklOk(env!, ["pod", "rm", "-f", "claim-user"]);
  const second = await write("claim2.yaml", spec("cat /data/f"));
  await rklOk(env!, ["pod", "run", "--network", env!.network, second]);
  await waitFor(
    "the read",
    async () => (await rkl(env!, ["pod", "logs", "claim-user", "app"])).stdout === "kept\n",
  );
  await rklOk(env!, ["pod", "rm", "-f", "claim-user"]);
  assert.match(await rklOk(env!, ["volume", "ls"]), /pvc-keep-me\s+claim\s+-/);
  await rklOk(env!, ["volume", "rm", "pvc-keep-me"]);
});

test("postStart runs before the pod counts as started; a failing one rolls the pod back; preStop runs at stop", async () => {
  const hooks = await write(
    "hooks.yaml",
    `apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      image: BUNDLE
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
      lifecycle:
        postStart: {exec: {command: ["sh", "-c", "echo up > /shared/post"]}}
        preStop: {exec: {command: ["sh", "-c", "echo down > /shared/pre"]}}
      volumeMounts: [{name: shared, mountPath: /shared}]
  volumes:
    - {name: shared, hostPath: {path: ${env!.dir}/hookdir, type: DirectoryOrCreate}}
`,
  );
  await rklOk(env!, ["pod", "run", "--network", env!.network, hooks]);
  // pod run returned: postStart had finished.
  assert.equal(await Deno.readTextFile(`${env!.dir}/hookdir/post`), "up\n");
  await rklOk(env!, ["pod", "stop", "hooks"]);
  assert.equal(await Deno.readTextFile(`${env!.dir}/hookdir/pre`), "down\n");
  await rklOk(env!, ["pod", "rm", "hooks"]);
  await Deno.remove(`${env!.dir}/hookdir`, { recursive: true });

  const failing = await write(
    "hook-fail.yaml",
    `apiVersion: v1
kind: Pod
metadata: {name: hookfail}
spec:
  containers:
    - name: app
      image: BUNDLE
      command: ["sleep", "3600"]
      lifecycle:
        postStart: {exec: {command: ["sh", "-c", "echo no config >&2; exit 3"]}}
`,
  );
  const r = await rkl(env!, ["pod", "run", "--network", env!.network, failing]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /container "hookfail_app": its postStart hook failed: "sh -c .*" exited with code 3: no config/,
  );
  assert.equal((await rklOk(env!, ["pod", "list", "-q"])).trim(), "");
});

test("compose healthchecks are tracked for as long as the service runs, and shown by ps", async () => {
  const dir = `${env!.dir}/health`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/compose.yaml`,
    `services:
  db:
    image: ${REPO}/bundles/busybox
    command: ["sh", "-c", "touch /tmp/ready; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ready"], interval: 500ms, timeout: 2s, retries: 2}
    networks: [n]
  app:
    image: ${REPO}/bundles/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    depends_on: {db: {condition: service_healthy}}
    networks: [n]
networks:
  n: {}
`,
  );
  const compose = (...args: string[]) => rklOk(env!, ["compose", ...args], { cwd: dir });
  await compose("up", "-d");
  const health = async () =>
    (JSON.parse(await compose("ps", "-o", "json")) as { name: string; health: string | null }[])
      .map((c) => `${c.name}:${c.health}`).sort().join(" ");
  assert.equal(await health(), "health-app-1:null health-db-1:healthy");
  await compose("exec", "db", "rm", "/tmp/ready");
  await waitFor("db to turn unhealthy", async () => (await health()).includes("db-1:unhealthy"));
  assert.match(await compose("ps"), /running \(unhealthy\)/);
  await compose("exec", "db", "touch", "/tmp/ready");
  await waitFor("db to recover", async () => (await health()).includes("db-1:healthy"));
  await compose("down");
  // The monitor goes once nothing with a healthcheck runs.
  await waitFor("the health monitor to exit", () => {
    try {
      Deno.statSync(`${env!.runRoot}/health/monitor.pid`);
      return false;
    } catch {
      return true;
    }
  }, 10_000);
});

cleanupAfterAll(env);
