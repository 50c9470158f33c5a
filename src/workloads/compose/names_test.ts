/** depends_on restart: true — which services `restart` takes along, and the recreate hash. */
import assert from "node:assert/strict";
import { loadCompose } from "../../spec/compose.ts";
import { serviceHash, withRestartDependents } from "./names.ts";

const load = (text: string) =>
  loadCompose([{ file: "compose.yaml", text }], { env: {}, dir: "/srv/app" }).project;

const TEXT = `services:
  db: {image: busybox, command: ["sleep", "1"]}
  api:
    image: busybox
    depends_on:
      db: {condition: service_started, restart: true}
  worker:
    image: busybox
    depends_on:
      api: {condition: service_started, restart: true}
  web:
    image: busybox
    depends_on: [api]
  side:
    image: busybox
    network_mode: service:db
`;

Deno.test("withRestartDependents(): dependents with restart: true, transitively; unknown names kept", () => {
  const p = load(TEXT);
  assert.deepEqual(withRestartDependents(p, ["db"]).sort(), ["api", "db", "side", "worker"]);
  assert.deepEqual(withRestartDependents(p, ["web"]), ["web"]);
  assert.deepEqual(withRestartDependents(p, []), []);
  assert.deepEqual(withRestartDependents(p, ["nope"]), ["nope"]);
});

Deno.test("serviceHash(): a change to a restart: true dependency changes the dependent's hash only", async () => {
  const a = load(TEXT);
  const b = load(TEXT.replace(`["sleep", "1"]`, `["sleep", "2"]`));
  const h = async (p: typeof a, n: string) =>
    await serviceHash(p, p.services.find((s) => s.name === n)!);
  assert.notEqual(await h(a, "db"), await h(b, "db"));
  assert.notEqual(await h(a, "api"), await h(b, "api"));
  assert.notEqual(await h(a, "worker"), await h(b, "worker"));
  assert.equal(await h(a, "web"), await h(b, "web"));
});
