import assert from "node:assert/strict";
import {
  byTime,
  diffRecords,
  eventJson,
  formatEvent,
  HOLD_MS,
  matches,
  parseDaemonLog,
  parseFilters,
  parseTimeArg,
  recordEvents,
  type RecordView,
  type RklEvent,
  StreamDedup,
} from "./events.ts";
import { UsageError } from "../errors.ts";

Deno.test("parseDaemonLog() maps the daemon's lines to container, pod and daemon events; skips torn lines", () => {
  const text = [
    `{"time":"2026-01-01T00:00:00.000Z","action":"start"}`,
    `{"time":"2026-01-01T00:00:01.000Z","action":"create","pod":"web","file":"/m/web.yaml","hash":"ab"}`,
    `{"time":"2026-01-01T00:00:02.000Z","action":"restart","container":"web-app","exitCode":1}`,
    `{"time":"2026-01-01T00:00:03.000Z","action":"probe","container":"web-app","probe":"liveness","error":"failed"}`,
    `not json`,
    `{"action":"start"}`,
    `{"time":"2026-01-01T00:00:04`,
  ].join("\n");
  const ev = parseDaemonLog(text);
  assert.deepEqual(ev.map((e) => `${e.type} ${e.action} ${e.actor}`), [
    "daemon start rkl",
    "pod create web",
    "container restart web-app",
    "container health_status: unhealthy web-app",
  ]);
  assert.deepEqual(ev[2].attributes, { exitCode: "1" });
  assert.equal(
    formatEvent(ev[1]),
    "2026-01-01T00:00:01.000Z pod create web (file=/m/web.yaml, hash=ab)",
  );
  assert.deepEqual(eventJson(ev[2]), {
    Type: "container",
    Action: "restart",
    Actor: { ID: "web-app", Attributes: { exitCode: "1" } },
    time: 1767225602,
    timeNano: 1767225602000 * 1e6,
  });
});

const c1: RecordView = {
  kind: "container",
  name: "a",
  image: "busybox",
  status: "running",
  createdAt: "2026-01-01T00:00:00.000Z",
  startedAt: "2026-01-01T00:00:01.000Z",
};

Deno.test("recordEvents() tells create, start and die from a record; diffRecords() what changed between looks", () => {
  assert.deepEqual(recordEvents(c1).map((e) => e.action), ["create", "start"]);
  const died = { ...c1, status: "exited", finishedAt: "2026-01-01T00:00:09.000Z", exitCode: 3 };
  assert.deepEqual(recordEvents(died).map((e) => e.action), ["create", "start", "die"]);
  const before = new Map([["container/a", c1]]);
  const d = diffRecords(before, new Map([["container/a", died]]), "2026-01-01T00:01:00.000Z");
  assert.deepEqual(d.map((e) => [e.action, e.attributes.exitCode]), [["die", "3"]]);
  const gone = diffRecords(before, new Map(), "2026-01-01T00:01:00.000Z");
  assert.deepEqual(gone.map((e) => [e.action, e.actor, e.time]), [[
    "destroy",
    "a",
    "2026-01-01T00:01:00.000Z",
  ]]);
  const fresh = diffRecords(new Map(), before, "x");
  assert.deepEqual(fresh.map((e) => e.action), ["create", "start"]);
});

Deno.test("parseFilters() and matches(): OR within a key, AND across keys; a pod filter takes its containers", () => {
  const f = parseFilters(["type=container", "event=die", "event=start", "container=a"]);
  const e = recordEvents({ ...c1, status: "exited", finishedAt: "2026-01-01T00:00:09Z" });
  assert.deepEqual(e.filter((x) => matches(f, x)).map((x) => x.action), ["start", "die"]);
  assert.equal(matches(parseFilters(["container=b"]), e[0]), false);
  const inPod = recordEvents({ ...c1, pod: "p" })[0];
  assert.equal(matches(parseFilters(["pod=p"]), inPod), true);
  assert.throws(() => parseFilters(["type=volume"]), UsageError);
  assert.throws(
    () => parseFilters(["colour=x"]),
    /keys are type, container, pod, image, label and event/,
  );
  // label=KEY and label=KEY=VALUE, as docker's: every one given must match.
  const labelled = recordEvents({ ...c1, labels: { tier: "web", "a=b": "c" } })[0];
  assert.equal(matches(parseFilters(["label=tier"]), labelled), true);
  assert.equal(matches(parseFilters(["label=tier=web"]), labelled), true);
  assert.equal(matches(parseFilters(["label=tier=db"]), labelled), false);
  assert.equal(matches(parseFilters(["label=tier", "label=zone"]), labelled), false);
  assert.equal(matches(parseFilters(["label=image"]), labelled), true, "image is an attribute too");
  // A label's value with a newline cannot make a second line of the text output.
  const odd =
    recordEvents({ ...c1, labels: { note: "x\n2026-01-01T00:00:00Z container die y" } })[0];
  assert.equal(formatEvent(odd).split("\n").length, 1);
  assert.match(formatEvent(odd), /note="x\\n2026/);
  assert.throws(() => parseFilters(["event"]), /KEY=VALUE/);
});

Deno.test("parseTimeArg() takes RFC 3339, Unix seconds and durations before now", () => {
  const now = Date.parse("2026-01-01T01:00:00Z");
  assert.equal(parseTimeArg("--since", "2026-01-01T00:00:00Z", now), now - 3600e3);
  assert.equal(parseTimeArg("--since", "1767225600", now), now - 3600e3);
  assert.equal(parseTimeArg("--since", "1767225600.5", now), now - 3600e3 + 500);
  assert.equal(parseTimeArg("--since", "10m", now), now - 600e3);
  assert.equal(parseTimeArg("--since", "1h30m", now), now - 5400e3);
  assert.equal(parseTimeArg("--since", "45s", now), now - 45e3);
  assert.throws(
    () => parseTimeArg("--until", "yesterday", now),
    /--until "yesterday": give a time/,
  );
});

Deno.test("parseDaemonLog(): a kill keeps its signal; an image event's actor is the reference or the image id", () => {
  const id = "sha256:" + "ab".repeat(32);
  const text = [
    `{"time":"2026-01-01T00:00:00.000Z","action":"kill","container":"web","image":"busybox","signal":"15"}`,
    `{"time":"2026-01-01T00:00:01.000Z","action":"stop","container":"web","image":"busybox"}`,
    `{"time":"2026-01-01T00:00:02.000Z","action":"pull","ref":"docker.io/library/busybox:latest"}`,
    `{"time":"2026-01-01T00:00:03.000Z","action":"untag","ref":"${id}","name":"docker.io/library/busybox:latest"}`,
    `{"time":"2026-01-01T00:00:04.000Z","action":"delete","ref":"${id}"}`,
  ].join("\n");
  const ev = parseDaemonLog(text);
  assert.deepEqual(ev.map((e) => `${e.type} ${e.action} ${e.actor}`), [
    "container kill web",
    "container stop web",
    "image pull docker.io/library/busybox:latest",
    `image untag ${id}`,
    `image delete ${id}`,
  ]);
  assert.equal(
    formatEvent(ev[0]),
    "2026-01-01T00:00:00.000Z container kill web (image=busybox, signal=15)",
  );
  assert.deepEqual(ev[3].attributes, { name: "docker.io/library/busybox:latest" });
  // A pod member's line: a container event, its pod an attribute (so pod= takes it).
  const [member] = parseDaemonLog(
    `{"time":"2026-01-01T00:00:05.000Z","action":"die","container":"p_app","pod":"p","exitCode":0}`,
  );
  assert.equal(member.type, "container");
  assert.equal(member.attributes.pod, "p");
  assert.equal(matches(parseFilters(["pod=p"]), member), true);

  // image=: images by reference (short or full) or id, containers by the image they run.
  const busybox = parseFilters(["image=busybox"]);
  assert.deepEqual(ev.filter((e) => matches(busybox, e)).map((e) => e.action), [
    "kill",
    "stop",
    "pull",
    "untag",
  ]);
  const byId = parseFilters([`image=${id.slice(7)}`]);
  assert.deepEqual(ev.filter((e) => matches(byId, e)).map((e) => e.action), ["untag", "delete"]);
  const images = parseFilters(["type=image", "event=pull"]);
  assert.deepEqual(ev.filter((e) => matches(images, e)).map((e) => e.action), ["pull"]);
  assert.equal(matches(parseFilters(["image=alpine"]), ev[0]), false);
  assert.equal(matches(parseFilters(["image=busybox"]), recordEvents(c1)[0]), true);
});

Deno.test("StreamDedup: a removal told by the records and the log prints once, after its die, whichever look the log's lines come in", () => {
  const T0 = Date.parse("2026-01-01T00:00:00.000Z");
  const ev = (action: string, actor: string, ms = 0, type: "container" | "pod" = "container") => ({
    time: new Date(T0 + ms).toISOString(),
    type,
    action,
    actor,
    attributes: {},
  });
  const s = new StreamDedup();
  const told = (logged: ReturnType<typeof ev>[], diff: ReturnType<typeof ev>[], now = T0) =>
    s.look(logged, diff, now).map((e) => `${e.action} ${e.type}/${e.actor}`);
  // Same look: the log's die and destroy, the records' destroy dropped.
  assert.deepEqual(told([ev("die", "a", -5), ev("destroy", "a")], [ev("destroy", "a")]), [
    "die container/a",
    "destroy container/a",
  ]);
  // The log's lines a look later: the records' destroy held until then, then the log's after its die.
  assert.deepEqual(told([], [ev("destroy", "b")]), []);
  assert.deepEqual(
    told([ev("die", "b", -5), ev("destroy", "b", 2), ev("kill", "c", 3)], [], T0 + 250),
    [
      "die container/b",
      "destroy container/b",
      "kill container/c",
    ],
  );
  // Made and removed between two looks: the records never saw it, the log tells it.
  assert.deepEqual(told([ev("destroy", "d")], []), ["destroy container/d"]);
  // No log line comes (it could not be written): the records' destroy after HOLD_MS.
  assert.deepEqual(told([], [ev("destroy", "e", 0, "pod")]), []);
  assert.deepEqual(told([], [], T0 + HOLD_MS - 1), []);
  assert.deepEqual(told([], [], T0 + HOLD_MS), ["destroy pod/e"]);
  // A stream that ends gives what it holds.
  told([], [ev("destroy", "f")]);
  assert.deepEqual(s.flush().map((e) => e.actor), ["f"]);
  assert.deepEqual(s.flush(), []);
});

Deno.test("StreamDedup: an exit told by the records is not printed again from the log, nor one the records showed at the start", () => {
  const die = (actor: string, time: string) => ({
    time,
    type: "container" as const,
    action: "die",
    actor,
    attributes: { exitCode: "137" },
  });
  const s = new StreamDedup();
  // Exited before the stream began: past, and its die from the log at the removal is not news.
  s.told([die("old", "2026-01-01T00:00:00.000Z")]);
  assert.deepEqual(s.look([die("old", "2026-01-01T00:00:00.000Z")], []), []);
  // Seen exiting by the records, then removed: once.
  assert.equal(s.look([], [die("a", "2026-01-01T00:00:01.000Z")]).length, 1);
  assert.equal(s.look([die("a", "2026-01-01T00:00:01.000Z")], []).length, 0);
  // Exited and removed between two looks: the log's die.
  assert.equal(s.look([die("b", "2026-01-01T00:00:02.000Z")], []).length, 1);
  // Another exit of a reused name (another time) is another die.
  assert.equal(s.look([die("a", "2026-01-01T00:00:05.000Z")], []).length, 1);
  // Restarted twice, then removed: the records told both exits, the log has the last one.
  assert.equal(s.look([], [die("c", "2026-01-01T00:00:06.000Z")]).length, 1);
  assert.equal(s.look([], [die("c", "2026-01-01T00:00:07.000Z")]).length, 1);
  assert.equal(s.look([die("c", "2026-01-01T00:00:07.000Z")], []).length, 0);
});

Deno.test("recordEvents(): no die before the start is told, and none timed before it", () => {
  const exited = { ...c1, status: "exited", exitCode: 0 };
  // Exited before the command that started it wrote the start: the die waits for it.
  assert.deepEqual(
    recordEvents({ ...exited, startedAt: undefined, finishedAt: "2026-01-01T00:00:00.500Z" })
      .map((e) => e.action),
    ["create"],
  );
  // An exit file a kernel tick "older" than the start: the die is at the start.
  const ev = recordEvents({ ...exited, finishedAt: "2026-01-01T00:00:00.999Z" });
  assert.deepEqual(ev.map((e) => [e.action, e.time]), [
    ["create", c1.createdAt],
    ["start", c1.startedAt],
    ["die", c1.startedAt],
  ]);
});

Deno.test("parseDaemonLog(): an exec's create and start name its command, its die its code; all its execID", () => {
  const x = "ef".repeat(32);
  const text = [
    `{"time":"2026-01-01T00:00:00.000Z","action":"exec_create","container":"web","image":"busybox","execId":"${x}","command":"sh -c ls"}`,
    `{"time":"2026-01-01T00:00:00.001Z","action":"exec_start","container":"web","image":"busybox","execId":"${x}","command":"sh -c ls"}`,
    `{"time":"2026-01-01T00:00:01.000Z","action":"exec_die","container":"web","image":"busybox","execId":"${x}","exitCode":2}`,
  ].join("\n");
  const ev = parseDaemonLog(text);
  assert.deepEqual(ev.map((e) => e.action), [
    "exec_create: sh -c ls",
    "exec_start: sh -c ls",
    "exec_die",
  ]);
  assert.deepEqual(ev.map((e) => e.attributes.execID), [x, x, x]);
  assert.deepEqual(ev[2].attributes, { image: "busybox", execID: x, exitCode: "2" });
  // docker's event filter takes the action before its colon.
  const f = parseFilters(["event=exec_start"]);
  assert.deepEqual(ev.filter((e) => matches(f, e)).map((e) => e.action), ["exec_start: sh -c ls"]);
});

Deno.test("formatEvent(): an exec's command with a newline stays on its event's line", () => {
  const [ev] = parseDaemonLog(
    JSON.stringify({
      time: "2026-01-01T00:00:00.000Z",
      action: "exec_create",
      container: "web",
      execId: "ab".repeat(32),
      command: "sh -c echo\n2026-01-01T00:00:01.000Z container destroy web",
    }),
  );
  const line = formatEvent(ev);
  assert.equal(line.split("\n").length, 1);
  assert.ok(
    line.startsWith(
      `2026-01-01T00:00:00.000Z container "exec_create: sh -c echo\\n2026-01-01T00:00:01.000Z container destroy web" web (`,
    ),
    line,
  );
});

Deno.test("byTime(): one container's kill, die and stop in one millisecond keep docker's order; others keep theirs", () => {
  const at = "2026-01-01T00:00:00.005Z";
  const ev = (actor: string, action: string, time = at): RklEvent => ({
    time,
    type: "container",
    action,
    actor,
    attributes: {},
  });
  // As `events --since` merges them: the log's lines first, then the records'.
  const merged = [
    ev("a", "kill"),
    ev("b", "pause"),
    ev("a", "stop"),
    ev("a", "destroy", "2026-01-01T00:00:00.006Z"),
    ev("b", "create", "2026-01-01T00:00:00.001Z"),
    ev("a", "die"),
    ev("b", "unpause"),
  ];
  assert.deepEqual(byTime(merged).map((e) => `${e.actor}:${e.action}`), [
    "b:create",
    "a:kill",
    "b:pause",
    "a:die",
    "a:stop",
    "b:unpause",
    "a:destroy",
  ]);
});
