import assert from "node:assert/strict";
import {
  diffRecords,
  eventJson,
  formatEvent,
  matches,
  parseDaemonLog,
  parseFilters,
  parseTimeArg,
  recordEvents,
  type RecordView,
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
  assert.throws(() => parseFilters(["label=x"]), /keys are type, container, pod and event/);
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
