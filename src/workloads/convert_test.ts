import assert from "node:assert/strict";
import { loadCompose } from "../spec/compose.ts";
import { convertProject } from "./convert.ts";
import { realFs } from "../sys/fs.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

function convert(text: string, workloads = false) {
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/compose.yaml`;
  Deno.writeTextFileSync(file, text);
  const { project } = loadCompose([{ file, text }], { env: {}, dir, projectName: "demo" });
  const out = convertProject(project, {
    volumesDir: "/var/lib/rkl/volumes",
    workloads,
    readFile: () => new TextEncoder().encode("x"),
    fs: realFs,
  });
  Deno.removeSync(dir, { recursive: true });
  return out;
}

const kinds = (docs: Obj[]) => docs.map((d) => `${d.kind}/${d.metadata.name}`);

Deno.test("convertProject(): a Pod per replica with probes, restart policy, literal $ and waits", () => {
  const { services, warnings } = convert(`services:
  db:
    image: /b
    command: ["sh", "-c", "echo $$HOME $$(x)"]
    ports: ["5432:5432"]
    healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 500ms, retries: 4, start_period: 3s}
    restart: on-failure
    volumes: ["data:/data"]
    ulimits: {nofile: 1024}
  web:
    image: /b
    deploy: {replicas: 2}
    depends_on:
      db: {condition: service_healthy}
      job: {condition: service_completed_successfully}
  job:
    image: /b
volumes: {data: {}}
`);
  const [db] = services.find((s) => s.name === "db")!.docs as Obj[];
  assert.equal(db.spec.restartPolicy, "OnFailure");
  const c = db.spec.containers[0];
  assert.deepEqual(c.args, ["sh", "-c", "echo $$HOME $$(x)"]);
  assert.deepEqual(c.readinessProbe, {
    exec: { command: ["true"] },
    periodSeconds: 2,
    timeoutSeconds: 1,
    failureThreshold: 4,
    initialDelaySeconds: 3,
  });
  assert.deepEqual(db.spec.volumes, [{
    name: "vol-0",
    hostPath: { path: "/var/lib/rkl/volumes/demo_data/_data", type: "DirectoryOrCreate" },
  }]);
  assert.deepEqual(c.ports, [{ containerPort: 5432, hostPort: 5432 }]);
  const web = services.find((s) => s.name === "web")!.docs as Obj[];
  assert.deepEqual(kinds(web), ["Pod/demo-web-1", "Pod/demo-web-2"]);
  assert.deepEqual(web[0].spec.initContainers.map((i: Obj) => i.command[2]), [
    "until nc -w 1 db 5432 </dev/null; do echo waiting for db; sleep 1; done",
    "until grep -qw job /etc/hosts || nslookup job >/dev/null 2>&1; do echo waiting for job; sleep 1; done",
  ]);
  assert.equal(web[0].metadata.annotations["org.rkl.hosts-group"], "demo");
  assert.deepEqual(warnings.map((w) => `${w.line}:${w.path}`), [
    "9:services.db.ulimits",
    "15:services.web.depends_on.job",
  ]);
});

Deno.test("convertProject(): --workloads gives a Deployment, a Service per ports and a claim per volume", () => {
  const { services } = convert(
    `services:
  api:
    image: /b
    ports: ["8080:80"]
    deploy: {replicas: 3}
    volumes: ["cache:/cache"]
    secrets: [token]
secrets:
  token: {file: ./t}
volumes: {cache: {}}
`,
    true,
  );
  const docs = services[0].docs as Obj[];
  assert.deepEqual(kinds(docs), [
    "Secret/demo-secret-token",
    "PersistentVolumeClaim/demo-cache",
    "Deployment/api",
    "Service/api",
  ]);
  const dep = docs[2];
  assert.equal(dep.spec.replicas, 3);
  assert.deepEqual(dep.spec.selector.matchLabels, {
    "com.docker.compose.project": "demo",
    "com.docker.compose.service": "api",
  });
  assert.deepEqual(dep.spec.template.spec.containers[0].ports, [{ containerPort: 80 }]);
  assert.deepEqual(docs[3].spec.ports, [{ name: "tcp-80", port: 8080, targetPort: 80 }]);
  assert.equal(docs[0].data.token, btoa("x"));
});

Deno.test("convertProject(): --workloads warns of a restart policy only where the file sets one", () => {
  const { warnings } = convert(
    `services:
  quiet:
    image: /b
  said:
    image: /b
    restart: "no"
  policy:
    image: /b
    deploy: {restart_policy: {condition: on-failure}}
`,
    true,
  );
  const dropped = warnings.filter((w) => /restart policy is dropped/.test(w.message));
  assert.deepEqual(dropped.map((w) => [w.path, w.line]), [
    ["services.said.restart", 6],
    ["services.policy.deploy.restart_policy", 9],
  ]);
});
