/**
 * COMPOSE_PROFILES from the project directory's `.env` and from the
 * environment (which wins), as docker compose reads them (issue 38 item 2):
 * `compose config` shows which services a profile brings in. Nothing is
 * created, so no root is needed; the state dirs are temporary.
 */
import assert from "node:assert/strict";
import { REPO } from "../_helpers/requires.ts";

const FILE = `services:
  web:
    image: ./bundles/busybox
  debug:
    image: ./bundles/busybox
    profiles: [debug]
  tools:
    image: ./bundles/busybox
    profiles: [tools]
`;

async function services(dir: string, env: Record<string, string>, args: string[] = []) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "compose", ...args, "config"],
    cwd: dir,
    env: { RKL_ROOT: `${dir}/.root`, RKL_RUN_ROOT: `${dir}/.run`, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  // `services:` lists `  - name: X` entries, before `networks:`.
  const part = out.slice(out.indexOf("\nservices:"), out.indexOf("\nnetworks:"));
  return [...part.matchAll(/^ {2}- name: (\S+)$/gm)].map((m) => m[1]).sort();
}

Deno.test("COMPOSE_PROFILES in .env enables its profiles; the environment and --profile win", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rkl-profiles-" });
  try {
    await Deno.writeTextFile(`${dir}/compose.yaml`, FILE);
    assert.deepEqual(await services(dir, {}), ["web"]);
    await Deno.writeTextFile(`${dir}/.env`, "COMPOSE_PROFILES=debug\n");
    assert.deepEqual(await services(dir, {}), ["debug", "web"]);
    assert.deepEqual(await services(dir, { COMPOSE_PROFILES: "tools" }), ["tools", "web"]);
    assert.deepEqual(await services(dir, { COMPOSE_PROFILES: "debug,tools" }), [
      "debug",
      "tools",
      "web",
    ]);
    assert.deepEqual(await services(dir, {}, ["--profile", "tools"]), ["tools", "web"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
