/**
 * Who the stop signal reaches: every process of the container for rkl's own
 * `stop`, the container's init alone for the CRI's StopContainer (as
 * containerd and CRI-O send it; the node e2e "Pod SIGKILL" spec traps SIGTERM
 * in a shell whose child must live until the SIGKILL, exit code 137).
 */
import assert from "node:assert/strict";
import { loadContainer } from "../../spec/container.ts";
import { FakeHost } from "../../testing/fake_host.ts";
import { runContainer, stopContainer } from "../container.ts";

const BUNDLE = "/fake/bundles/busybox";

async function killsOf(options?: { stopSignalToInitOnly?: boolean }): Promise<string[]> {
  const host = new FakeHost();
  host.addBundle(BUNDLE);
  const spec = `name: web\nimage: ${BUNDLE}\nargs: ["sleep", "1000"]\n`;
  await runContainer(host, loadContainer(spec, "/fake/web.yaml"), { network: null });
  const calls: string[] = [];
  const rt = host.runtime;
  const kill = rt.kill.bind(rt);
  rt.kill = (id, signal, o = {}) => {
    calls.push(`${signal}${o.all ? " --all" : ""}`);
    return kill(id, signal, o);
  };
  const stopped = await stopContainer(host, "web", 1, options);
  assert.equal(stopped.status, "exited");
  return calls;
}

Deno.test("stopContainer(): rkl's stop sends SIGTERM to every process", async () => {
  assert.deepEqual(await killsOf(), ["SIGTERM --all"]);
});

Deno.test("stopContainer() for the CRI: SIGTERM to the init alone", async () => {
  assert.deepEqual(await killsOf({ stopSignalToInitOnly: true }), ["SIGTERM"]);
});
