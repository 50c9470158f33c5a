import assert from "node:assert/strict";
import { diffRecords, eventJson, formatEvent, parseDaemonLog, type RecordView } from "./events.ts";

const web: RecordView = {
  kind: "container",
  name: "web",
  id: "web",
  image: "busybox",
  status: "running",
  createdAt: "2026-01-01T00:00:00.000Z",
  startedAt: "2026-01-01T00:00:01.000Z",
};

Deno.test("parseDaemonLog(): `rkl rename`'s line is docker's container rename event, with oldName", () => {
  const [e] = parseDaemonLog(
    `{"time":"2026-01-01T00:00:05.000Z","action":"rename","container":"front","oldName":"web","image":"busybox"}\n`,
  );
  assert.deepEqual(e, {
    time: "2026-01-01T00:00:05.000Z",
    type: "container",
    action: "rename",
    actor: "front",
    attributes: { oldName: "web", image: "busybox" },
  });
  assert.equal(
    formatEvent(e),
    "2026-01-01T00:00:05.000Z container rename front (image=busybox, oldName=web)",
  );
  assert.deepEqual(eventJson(e).Actor, {
    ID: "front",
    Attributes: { oldName: "web", image: "busybox" },
  });
});

Deno.test("diffRecords(): a rename between two looks is neither a destroy nor a second create/start", () => {
  const before = new Map([["container/web", web]]);
  const after = new Map([["container/front", { ...web, name: "front" }]]);
  assert.deepEqual(diffRecords(before, after, "2026-01-01T00:01:00.000Z"), []);
  // It dies under its new name: one die, by the new name.
  const died = { ...web, name: "front", status: "exited", finishedAt: "2026-01-01T00:00:09.000Z" };
  assert.deepEqual(
    diffRecords(before, new Map([["container/front", died]]), "x").map((e) => [e.action, e.actor]),
    [["die", "front"]],
  );
});

Deno.test("diffRecords(): the old name taken by a new container (another id) between two looks", () => {
  const before = new Map([["container/web", web]]);
  const other: RecordView = {
    ...web,
    id: "a".repeat(64),
    createdAt: "2026-01-01T00:00:30.000Z",
    startedAt: "2026-01-01T00:00:31.000Z",
  };
  // Renamed to front, and a new web: only the new one's create and start.
  const renamed = new Map([["container/front", { ...web, name: "front" }], [
    "container/web",
    other,
  ]]);
  assert.deepEqual(
    diffRecords(before, renamed, "x").map((e) => [e.action, e.actor, e.time]),
    [["create", "web", other.createdAt], ["start", "web", other.startedAt]],
  );
  // Removed, and a new web: the first one's destroy, then the new one's create and start.
  const replaced = new Map([["container/web", other]]);
  assert.deepEqual(
    diffRecords(before, replaced, "2026-01-01T00:01:00.000Z").map((e) => [e.action, e.time]),
    [
      ["create", other.createdAt],
      ["start", other.startedAt],
      ["destroy", "2026-01-01T00:01:00.000Z"],
    ],
  );
});
