import assert from "node:assert/strict";
import { containerEvents } from "./events.ts";
import { criContainer, id64, never, testHost } from "./_testing.ts";
import type { Handler, Message } from "../grpc.ts";

/** Runtime handlers that record their calls; the status calls answer what the events carry. */
function fakeRuntime(calls: string[]): Record<string, Handler> {
  const h = (name: string, res: Message = {}): Handler => (req) => {
    calls.push(`${name} ${req.container_id ?? req.pod_sandbox_id ?? ""}`.trim());
    return Promise.resolve(res);
  };
  return {
    CreateContainer: h("CreateContainer", { container_id: id64("1") }),
    StartContainer: h("StartContainer"),
    StopContainer: h("StopContainer"),
    RemoveContainer: h("RemoveContainer"),
    PodSandboxStatus: h("PodSandboxStatus", { status: { id: id64("a") } }),
    ContainerStatus: (req) => Promise.resolve({ status: { id: req.container_id } }),
  };
}

function nextEvent(events: Message[]): Promise<Message> {
  return new Promise((resolve, reject) => {
    const until = Date.now() + 5_000;
    const poll = () => {
      if (events.length > 0) return resolve(events.shift()!);
      if (Date.now() > until) return reject(new Error("no event within 5 s"));
      setTimeout(poll, 5);
    };
    poll();
  });
}

Deno.test("GetContainerEvents: each container call publishes its event with the sandbox's and containers' statuses", async () => {
  const t = testHost();
  const calls: string[] = [];
  const runtime = fakeRuntime(calls);
  const group = containerEvents(t.host, runtime);
  const abort = new AbortController();
  try {
    t.store.put(
      "containers",
      criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" }),
    );
    // No subscriber: the calls run and nothing is published.
    await runtime.StartContainer({ container_id: id64("1") }, never);
    assert.deepEqual(calls, [`StartContainer ${id64("1")}`]);
    const events: Message[] = [];
    const served = group.streams.GetContainerEvents({}, (e) => events.push(e), abort.signal);
    for (
      const [m, type] of [
        ["CreateContainer", "CONTAINER_CREATED_EVENT"],
        ["StartContainer", "CONTAINER_STARTED_EVENT"],
        ["StopContainer", "CONTAINER_STOPPED_EVENT"],
        ["RemoveContainer", "CONTAINER_DELETED_EVENT"],
      ]
    ) {
      await runtime[m]({ container_id: id64("1") }, never);
      const e = await nextEvent(events);
      assert.equal(e.container_event_type, type);
      assert.equal(e.container_id, id64("1"));
      assert.deepEqual(e.pod_sandbox_status, { id: id64("a") });
      assert.deepEqual(e.containers_statuses, [{ id: id64("1") }]);
    }
    // A container conmon saw exit: its exit file appears in the exit dir.
    Deno.writeTextFileSync(`${t.host.paths.root}/exits/${id64("1")}`, "0");
    const exit = await nextEvent(events);
    assert.equal(exit.container_event_type, "CONTAINER_STOPPED_EVENT");
    abort.abort();
    await served;
  } finally {
    abort.abort();
    group.close();
    t.cleanup();
  }
});

Deno.test("GetContainerEvents: a call on an unknown container publishes nothing", async () => {
  const t = testHost();
  const calls: string[] = [];
  const runtime = fakeRuntime(calls);
  const group = containerEvents(t.host, runtime);
  const abort = new AbortController();
  try {
    const events: Message[] = [];
    const served = group.streams.GetContainerEvents({}, (e) => events.push(e), abort.signal);
    await runtime.StopContainer({ container_id: id64("9") }, never);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(events, []);
    assert.deepEqual(calls, [`StopContainer ${id64("9")}`]);
    abort.abort();
    await served;
  } finally {
    group.close();
    t.cleanup();
  }
});
