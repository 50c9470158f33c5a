/**
 * `rkl daemon --runtime-handlers`: the names a RuntimeClass may give as its
 * handler (the node e2e suite's "test-handler", which containerd and CRI-O
 * are configured with in upstream CI) run as rkl's own; any other is
 * NOT_FOUND, as before.
 */
import { sandboxHandlers } from "./sandbox.ts";
import { criSandbox, failsWith, id64, never, testHost } from "./_testing.ts";
import { Status } from "../grpc.ts";

Deno.test("RunPodSandbox takes a configured runtime handler and refuses others", async () => {
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a")));
    const options = {
      network: "rkl0",
      version: "x",
      pauseImage: "",
      runtimeHandlers: ["test-handler"],
    };
    const h = sandboxHandlers(t.host, options);
    const config = {
      metadata: { name: "pod-aaaa", namespace: "default", uid: "uid-aaaa", attempt: 0 },
      hostname: "",
      labels: {},
      annotations: {},
    };
    // Past the handler check: refused only as the second sandbox of this pod attempt.
    await failsWith(
      () => h.RunPodSandbox({ config, runtime_handler: "test-handler" }, never),
      Status.ALREADY_EXISTS,
      new RegExp(`exists: ${id64("a")}`),
    );
    await failsWith(
      () => h.RunPodSandbox({ config, runtime_handler: "runc" }, never),
      Status.NOT_FOUND,
      /runtime handler "runc" is not configured/,
    );
  } finally {
    t.cleanup();
  }
});
