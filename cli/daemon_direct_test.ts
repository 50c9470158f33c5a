import assert from "node:assert/strict";
import { plainDaemonArgv } from "./daemon_direct.ts";

Deno.test("plainDaemonArgv takes the daemon's own flags and the global options", () => {
  assert.deepEqual(
    plainDaemonArgv([
      "--root",
      "/r",
      "--run-root=/run/x",
      "daemon",
      "--manifests",
      "/m",
      "--network=rklb0",
      "--cri-socket",
      "/s.sock",
      "--no-cli",
      "--pause-image",
      "",
      "--relist",
      "7",
    ]),
    {
      globals: { root: "/r", runRoot: "/run/x" },
      flags: {
        manifests: "/m",
        network: "rklb0",
        criSocket: "/s.sock",
        cli: false,
        pauseImage: "",
        relist: "7",
      },
    },
  );
  assert.deepEqual(plainDaemonArgv(["pod", "daemon", "--no-cri"]), {
    globals: {},
    flags: { cri: false },
  });
});

Deno.test("plainDaemonArgv leaves anything else to commander", () => {
  for (
    const argv of [
      ["daemon", "--help"],
      ["daemon", "install"],
      ["daemon", "status"],
      ["daemon", "--manifests"],
      ["daemon", "--manifests", "--network"],
      ["daemon", "--bogus"],
      ["daemon", "--cri"],
      ["daemon", "--no-cri=1"],
      ["daemon", "--debug"],
      ["pod", "run", "x.yaml"],
      ["--root"],
      ["--help", "daemon"],
    ]
  ) {
    assert.equal(plainDaemonArgv(argv), undefined, argv.join(" "));
  }
});
