/**
 * `rkl compose` loading files as docker compose does (issue 38 part 2), on
 * the real runtime: compose.override.yaml beside the main file, a `.env`
 * naming the compose file and the project, same-file `extends` with
 * `!reset`, service `tmpfs` as a real tmpfs, and a host census left as it was.
 */
import assert from "node:assert/strict";
import { cleanupAfterAll, makeEnv, rkl, waitFor } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import { composeTests, composeTools } from "../_helpers/compose.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("compload", 26) : undefined;
const { projectDir, composeResult: composeOk } = composeTools(() => env!);
const { test, assertCensusUnchanged } = composeTests(ready, () => env!);

async function get(url: string): Promise<string | undefined> {
  try {
    return await (await fetch(url)).text();
  } catch {
    return undefined;
  }
}

async function downAndCensus(dir: string): Promise<void> {
  await composeOk(dir, ["down", "-t", "0"]);
  await assertCensusUnchanged();
}

const HTTPD = `["sh", "-c", "exec httpd -f -p 80 -h /www"]`;

test("compose.override.yaml beside compose.yaml changes a mount and a port", async (dirs) => {
  const dir = await projectDir("override", {
    "a/index.html": "from a\n",
    "b/index.html": "from b\n",
    "compose.yaml": `services:
  web:
    image: ./bundles/busybox
    command: ${HTTPD}
    volumes: ["./a:/www:ro"]
    ports: ["18761:80"]
`,
    "compose.override.yaml": `services:
  web:
    volumes: ["./b:/www:ro"]
    ports: !override ["18762:80"]
`,
  });
  dirs.push(dir);
  await composeOk(dir, ["up", "-d"]);
  let body: string | undefined;
  await waitFor(
    "httpd on 18762",
    async () => (body = await get("http://127.0.0.1:18762/")) !== undefined,
  );
  assert.equal(body, "from b\n");
  assert.equal(
    await get("http://127.0.0.1:18761/"),
    undefined,
    "the base file's port is published",
  );
  const config = JSON.parse((await composeOk(dir, ["config", "-o", "json"])).stdout);
  assert.deepEqual(config.files, ["compose.yaml", "compose.override.yaml"]);
  await downAndCensus(dir);
});

test("a .env names the compose file and the project; ${COMPOSE_PROJECT_NAME} is that name", async (dirs) => {
  const dir = await projectDir("dotenv", {
    ".env": "COMPOSE_FILE=stack/app.yaml\nCOMPOSE_PROJECT_NAME=fromdotenv\n",
    "stack/app.yaml": `services:
  app:
    image: ../bundles/busybox
    command: ["sleep", "300"]
    environment:
      P: \${COMPOSE_PROJECT_NAME}
`,
  });
  dirs.push(dir);
  const up = await composeOk(dir, ["up", "-d"]);
  assert.doesNotMatch(up.stderr, /COMPOSE_PROJECT_NAME is not set/);
  const p = await composeOk(dir, ["exec", "app", "--", "printenv", "P"]);
  assert.equal(p.stdout, "fromdotenv\n");
  const state = JSON.parse(
    (await rkl(env!, ["container", "state", "fromdotenv-app-1", "-o", "json"])).stdout,
  );
  assert.equal(state.labels["com.docker.compose.project"], "fromdotenv");
  await downAndCensus(dir);
});

test("same-file extends inherits image, command and environment; !reset drops the base's port", async (dirs) => {
  const dir = await projectDir("extends", {
    "www/index.html": "base\n",
    "compose.yaml": `services:
  base:
    image: ./bundles/busybox
    command: ${HTTPD}
    volumes: ["./www:/www:ro"]
    environment: {ROLE: base, SHARED: "yes"}
    ports: ["18763:80"]
  copy:
    extends: base
    environment: {ROLE: copy}
    ports: !reset []
`,
  });
  dirs.push(dir);
  // Without !reset both would publish 18763 and up would fail.
  await composeOk(dir, ["up", "-d"]);
  await waitFor("httpd on 18763", async () => (await get("http://127.0.0.1:18763/")) === "base\n");
  const envOf = async (svc: string) =>
    (await composeOk(dir, ["exec", svc, "--", "sh", "-c", "echo $ROLE $SHARED"])).stdout;
  assert.equal(await envOf("copy"), "copy yes\n");
  assert.equal(await envOf("base"), "base yes\n");
  const config = JSON.parse((await composeOk(dir, ["config", "-o", "json"])).stdout);
  const copy = config.services.find((s: { name: string }) => s.name === "copy");
  assert.deepEqual(copy.ports, []);
  await downAndCensus(dir);
});

test("service tmpfs: /run is a tmpfs of the given size and mode, not the rootfs", async (dirs) => {
  const dir = await projectDir("tmpfs", {
    "compose.yaml": `services:
  app:
    image: ./bundles/busybox
    command: ["sleep", "300"]
    tmpfs:
      - /run:size=8m,mode=750
`,
  });
  dirs.push(dir);
  const up = await composeOk(dir, ["up", "-d"]);
  assert.doesNotMatch(up.stderr, /ignored|unknown/i);
  const mounts = (await composeOk(dir, ["exec", "app", "--", "mount"])).stdout;
  const line = mounts.split("\n").find((l) => / on \/run type /.test(l));
  assert.ok(line, `no mount on /run in:\n${mounts}`);
  assert.match(line, /^tmpfs on \/run type tmpfs \(/);
  assert.match(line, /size=8192k/);
  assert.match(line, /mode=750/);
  assert.match(line, /noexec/);
  assert.equal(
    (await composeOk(dir, ["exec", "app", "--", "stat", "-c", "%a", "/run"])).stdout,
    "750\n",
  );
  const df = (await composeOk(dir, ["exec", "app", "--", "df", "-k", "/run"])).stdout;
  assert.match(df.split("\n")[1], /^tmpfs\s+8192\s/);
  await downAndCensus(dir);
});

cleanupAfterAll(env);
