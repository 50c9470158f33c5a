/**
 * `rkl rename` emits docker's `rename` event (container rename NEW, with the
 * oldName attribute) into the event log `rkl events` reads: in the past
 * (`--since`) and to a streaming `rkl events`, which tells the rename once
 * and neither a destroy of the old name nor a second create/start under the
 * new one. `rkl rm` leaves docker's `destroy` in the same log: `--since`
 * tells it after the record is gone, a stream tells it once. `stop`, `kill`,
 * `pause` and `unpause`, a user's exec (`exec_create`, `exec_start`,
 * `exec_die`) and the images' `pull`, `tag`, `untag` and `delete` are there
 * too, as docker tells them. `busybox` comes from a local
 * docker-registry behind a docker.io mirror entry. Each test ends with the
 * host census as it began.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirTar, pushImage, type Registry } from "../_helpers/oci.ts";
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

/**
 * A streaming `rkl events --format json ARGS`, ready once it has printed a
 * line that `ready` accepts (its history: the marker that says it has taken
 * its first look), stopped with ^C by `stop()` a second (four polls) later.
 */
function streamEvents(args: string[], ready: (e: DockerEvent) => boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli/main.ts`, "events", "--format", "json", ...args],
    env: env!.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let seen = () => {};
  const isReady = new Promise<void>((r) => seen = r);
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (parse(text.slice(0, text.lastIndexOf("\n") + 1)).some(ready)) seen();
    }
  })();
  const stderr = new Response(child.stderr).text();
  return {
    ready: Promise.race([
      isReady,
      child.status.then(async () => {
        throw new Error(`rkl events ended before it was ready: ${text}${await stderr}`);
      }),
    ]),
    async stop(): Promise<DockerEvent[]> {
      await new Promise((r) => setTimeout(r, 1000));
      child.kill("SIGINT");
      const st = await child.status;
      await reading;
      assert.equal(st.code, 0, await stderr);
      return parse(text);
    },
  };
}

test("rename: `rkl events` shows docker's container rename event with oldName, in the past and while streaming", async () => {
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "web",
    "--label",
    "tier=front",
    "--network",
    "none",
    "busybox",
    "sleep",
    "1000",
  ]);
  const t0 = new Date().toISOString();
  await rklOk(env!, ["rename", "web", "front"]);
  const past = await pastEvents("event=rename");
  assert.deepEqual(past.map((e) => [e.Type, e.Action, e.Actor.ID, e.Actor.Attributes.oldName]), [
    ["container", "rename", "front", "web"],
  ]);
  assert.equal(past[0].Actor.Attributes.image, "busybox");
  // Its labels, as every container event carries them.
  assert.equal(past[0].Actor.Attributes.tier, "front");

  // Streaming, with the first rename as its history: ready once that is printed.
  const stream = streamEvents(["--since", t0], (e) => e.Action === "rename");
  await stream.ready;
  await rklOk(env!, ["rename", "front", "back"]);
  const events = await stream.stop();
  const seen = events.map((e) => `${e.Action} ${e.Actor.ID}`);
  // The second rename from the stream: neither a destroy of front nor a create of back.
  assert.deepEqual(seen, ["rename front", "rename back"], JSON.stringify(events));
  assert.equal(events[1].Actor.Attributes.oldName, "front");

  await rklOk(env!, ["rm", "-f", "back"]);
});

test("rm: the destroy stays in the past (`--since`) once the record is gone, and a stream tells it once", async () => {
  const run = (name: string) =>
    rklOk(env!, ["run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000"]);
  const t0 = new Date().toISOString();
  await run("gone");
  await rklOk(env!, ["rm", "-f", "gone"]);
  const past = await pastEvents("container=gone");
  // The record told create, start and die; with it gone, the log still tells the end: rm -f
  // killed it (SIGKILL, so 137), then removed it.
  assert.deepEqual(past.map((e) => [e.Type, e.Action, e.Actor.ID]), [
    ["container", "kill", "gone"],
    ["container", "die", "gone"],
    ["container", "destroy", "gone"],
  ]);
  assert.equal(past[0].Actor.Attributes.signal, "9");
  assert.equal(past[1].Actor.Attributes.exitCode, "137");
  assert.equal(past[0].Actor.Attributes.image, "busybox");

  // Streaming, with gone's destroy as its history: ready once that is printed.
  const stream = streamEvents(
    ["--since", t0, "--filter", "container=gone", "--filter", "container=gone2"],
    (e) => e.Actor.ID === "gone",
  );
  await stream.ready;
  await run("gone2");
  await rklOk(env!, ["rm", "-f", "gone2"]);
  const events = await stream.stop();
  // The kill, die and destroy once each: from the records, or from the log when gone2 came and
  // went between two looks (then its create and start are not seen).
  const mine = events.filter((e) => e.Actor.ID === "gone2").map((e) => e.Action);
  assert.ok(
    ["create,start,kill,die,destroy", "kill,die,destroy"].includes(mine.join(",")),
    JSON.stringify(events),
  );
});

test("run --rm: a stream sees a container of a few ms made, started, exited (its code) and removed", async () => {
  const stream = streamEvents(
    [
      "--since",
      new Date().toISOString(),
      "--filter",
      "container=quick",
      "--filter",
      "container=marker",
    ],
    (e) => e.Actor.ID === "marker",
  );
  await rklOk(env!, ["run", "--name", "marker", "--network", "none", "--rm", "busybox", "true"]);
  await stream.ready;
  for (let i = 0; i < 10; i++) {
    await rklOk(env!, ["run", "--rm", "--name", "quick", "--network", "none", "busybox", "true"]);
  }
  const events = (await stream.stop()).filter((e) => e.Actor.ID === "quick");
  const count = (a: string) => events.filter((e) => e.Action === a).length;
  // die and destroy of every life: from the records when a look saw them, else from the log.
  assert.equal(count("die"), 10, JSON.stringify(events));
  assert.equal(count("destroy"), 10);
  assert.ok(
    events.filter((e) => e.Action === "die").every((e) => e.Actor.Attributes.exitCode === "0"),
  );
  // create and start only from the records, seen at a look that inotify wakes within ~10 ms of
  // the record's change (a life is ~100 ms here): all 10 on a quiet host; a loaded one may
  // delay a look past a life.
  assert.ok(count("create") >= 8 && count("start") >= 8, JSON.stringify(events));
  // Each life in docker's order (a start taken before the runtime's, so an exit at once
  // does not sort before it).
  const lives = events.map((e) => e.Action).join(",").split("destroy").slice(0, -1);
  for (const l of lives) assert.match(l, /^,?(create,)?(start,)?die,$/, JSON.stringify(events));
});

test("stop, kill, pause: docker's kill (with the signal's number), die and stop, pause and unpause", async () => {
  const run = (name: string) =>
    rklOk(env!, ["run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000"]);
  await run("sig");
  await rklOk(env!, ["container", "pause", "sig"]);
  await rklOk(env!, ["container", "unpause", "sig"]);
  // sleep as the namespace's init ignores SIGTERM: after 1 s comes SIGKILL.
  await rklOk(env!, ["stop", "-t", "1", "sig"]);
  const past = await pastEvents("container=sig");
  assert.deepEqual(past.map((e) => [e.Action, e.Actor.Attributes.signal ?? ""]), [
    ["create", ""],
    ["start", ""],
    ["pause", ""],
    ["unpause", ""],
    ["kill", "15"],
    ["kill", "9"],
    ["die", ""],
    ["stop", ""],
  ]);
  assert.ok(past.every((e) => e.Actor.Attributes.image === "busybox"), JSON.stringify(past));

  await run("sig2");
  await rklOk(env!, ["kill", "-s", "USR1", "sig2"]);
  const killed = await pastEvents("container=sig2");
  assert.deepEqual(
    killed.filter((e) => e.Action === "kill").map((e) => e.Actor.Attributes.signal),
    [
      "10",
    ],
  );
  await rklOk(env!, ["rm", "-f", "sig", "sig2"]);
});

test("exec: docker's exec_create and exec_start with the command, exec_die with the code, one execID", async () => {
  await rklOk(env!, ["run", "-d", "--name", "ex", "--network", "none", "busybox", "sleep", "1000"]);
  const r = await rkl(env!, ["exec", "ex", "sh", "-c", "exit 3"]);
  assert.equal(r.code, 3, r.stderr);
  await rklOk(env!, ["exec", "ex", "true"]);
  // Not in the container: exit 127, as a shell gives, and its die says so.
  assert.equal((await rkl(env!, ["exec", "ex", "nosuch"])).code, 127);
  const past = (await pastEvents("container=ex")).filter((e) => e.Action.startsWith("exec_"));
  assert.deepEqual(past.map((e) => [e.Action, e.Actor.Attributes.exitCode ?? ""]), [
    ["exec_create: sh -c exit 3", ""],
    ["exec_start: sh -c exit 3", ""],
    ["exec_die", "3"],
    ["exec_create: true", ""],
    ["exec_start: true", ""],
    ["exec_die", "0"],
    ["exec_create: nosuch", ""],
    ["exec_start: nosuch", ""],
    ["exec_die", "127"],
  ]);
  const ids = past.map((e) => e.Actor.Attributes.execID);
  assert.match(ids[0], /^[0-9a-f]{64}$/);
  assert.deepEqual(ids.slice(0, 3), [ids[0], ids[0], ids[0]]);
  assert.notEqual(ids[3], ids[0]);
  assert.ok(past.every((e) => e.Actor.ID === "ex" && e.Actor.Attributes.image === "busybox"));
  // docker's filter takes the action before its colon.
  const dies = await pastEvents("event=exec_die");
  assert.deepEqual(
    dies.filter((e) => e.Actor.ID === "ex").map((e) => e.Actor.Attributes.exitCode),
    ["3", "0", "127"],
  );
  await rklOk(env!, ["rm", "-f", "ex"]);
});

test("images: pull, tag, untag and delete in `rkl events`, filtered by type=image and by image=", async () => {
  const dir = await Deno.makeTempDir({ dir: env!.dir });
  await Deno.writeTextFile(`${dir}/hello`, "hi\n");
  await pushImage(registry!.url, "library/tiny", "1", {
    layers: [await dirTar(dir)],
    config: { Cmd: ["/hello"] },
  });
  await rklOk(env!, ["pull", "-q", "tiny:1"]);
  const id = (await rklOk(env!, ["image", "inspect", "tiny:1"])).match(/sha256:[0-9a-f]{64}/)![0];
  await rklOk(env!, ["image", "tag", "tiny:1", "tiny:2"]);
  await rklOk(env!, ["rmi", "tiny:2"]);
  await rklOk(env!, ["rmi", "tiny:1"]);
  const past = await pastEvents("type=image");
  const full = (t: string) => `docker.io/library/tiny:${t}`;
  assert.deepEqual(
    past.filter((e) => e.Actor.ID === id || e.Actor.ID.includes("tiny"))
      .map((e) => [e.Action, e.Actor.ID, e.Actor.Attributes.name ?? ""]),
    [
      ["pull", full("1"), ""],
      ["tag", id, full("2")],
      ["untag", id, full("2")],
      ["untag", id, full("1")],
      ["delete", id, ""],
    ],
  );
  // image= matches the short name, the image's id and the tags an event names.
  const byName = await pastEvents("image=tiny:2");
  assert.deepEqual(byName.map((e) => e.Action), ["tag", "untag"]);
  const byId = await pastEvents(`image=${id}`);
  assert.deepEqual(byId.map((e) => e.Action), ["tag", "untag", "untag", "delete"]);
});

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
