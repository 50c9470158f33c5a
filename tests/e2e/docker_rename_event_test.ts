/**
 * `rkl rename` emits docker's `rename` event (container rename NEW, with the
 * oldName attribute) into the event log `rkl events` reads: in the past
 * (`--since`) and to a streaming `rkl events`, which tells the rename once
 * and neither a destroy of the old name nor a second create/start under the
 * new one. `rkl rm` leaves docker's `destroy` in the same log: `--since`
 * tells it after the record is gone, a stream tells it once. `busybox` comes from a local docker-registry behind a docker.io
 * mirror entry. Each test ends with the host census as it began.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import type { Registry } from "../_helpers/oci.ts";
import { busyboxMirror } from "../_helpers/busybox_mirror.ts";

const ready = requires("root", "conmon", "bundles", "youki", "registry");
const env = ready ? await makeEnv("drev", 54) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
// Pulled before the first census: the image stays for the file's tests.
if (ready) registry = await busyboxMirror(env!);

interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

const parse = (out: string): DockerEvent[] =>
  out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

/** The last five minutes' events that match `filter`, as JSON. */
const pastEvents = async (filter: string) =>
  parse(
    await rklOk(
      env!,
      ["events", "--since", "5m", "--until", new Date().toISOString()].concat([
        "--format",
        "json",
        "--filter",
        filter,
      ]),
    ),
  );

test("rename: `rkl events` shows docker's container rename event with oldName, in the past and while streaming", async () => {
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "web",
    "--network",
    "none",
    "busybox",
    "sleep",
    "1000",
  ]);
  await rklOk(env!, ["rename", "web", "front"]);
  const past = await pastEvents("event=rename");
  assert.deepEqual(past.map((e) => [e.Type, e.Action, e.Actor.ID, e.Actor.Attributes.oldName]), [
    ["container", "rename", "front", "web"],
  ]);
  assert.equal(past[0].Actor.Attributes.image, "busybox");

  // Streaming: events from now until a time a few seconds ahead; a rename meanwhile.
  const until = new Date(Date.now() + 4000).toISOString();
  const stream = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "events", "--format", "json"]
      .concat(["--until", until]),
    env: env!.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Its first look at the records is taken at its start (a second or less here).
  await new Promise((r) => setTimeout(r, 1500));
  await rklOk(env!, ["rename", "front", "back"]);
  const out = await stream.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const seen = parse(text).map((e) => `${e.Action} ${e.Actor.ID}`);
  assert.deepEqual(seen, ["rename back"], text);
  const [ev] = parse(text);
  assert.equal(ev.Actor.Attributes.oldName, "front");

  await rklOk(env!, ["rm", "-f", "back"]);
});

test("rm: the destroy stays in the past (`--since`) once the record is gone, and a stream tells it once", async () => {
  const run = (name: string) =>
    rklOk(env!, ["run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000"]);
  await run("gone");
  await rklOk(env!, ["rm", "-f", "gone"]);
  const past = await pastEvents("container=gone");
  // The record told create, start and die; with it gone, the log still tells the end.
  assert.deepEqual(past.map((e) => [e.Type, e.Action, e.Actor.ID]), [
    ["container", "destroy", "gone"],
  ]);
  assert.equal(past[0].Actor.Attributes.image, "busybox");

  const until = new Date(Date.now() + 4000).toISOString();
  const stream = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "events", "--format", "json"]
      .concat(["--until", until, "--filter", "container=gone2"]),
    env: env!.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await new Promise((r) => setTimeout(r, 1500));
  await run("gone2");
  await rklOk(env!, ["rm", "-f", "gone2"]);
  const out = await stream.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  // From the records while streaming; the log's copy of the destroy is not printed again.
  assert.deepEqual(parse(text).filter((e) => e.Action === "destroy").length, 1, text);
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
