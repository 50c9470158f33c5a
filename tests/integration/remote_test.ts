import assert from "node:assert/strict";
import { relevantEnv, servable } from "../../cli/remote.ts";

Deno.test("servable(): the verbs a daemon serves, after global and compose options", () => {
  assert.deepEqual(servable(["pod", "run", "x.yaml"]), {
    globals: {},
    command: "pod",
    verb: "run",
  });
  assert.deepEqual(servable(["--runtime", "runc", "--root=/r", "c", "ls"]), {
    globals: { runtime: "runc", root: "/r" },
    command: "container",
    verb: "ls",
  });
  for (
    const argv of [
      ["compose", "down"],
      ["compose", "-f", "a.yaml", "-p", "x", "down", "-v"],
      ["compose", "--file=a.yaml", "--profile", "dev", "up", "-d"],
      ["compose", "up", "web", "--detach"],
      ["compose", "--project-name", "x", "ps", "-a"],
    ]
  ) {
    assert.equal(servable(argv)?.command, "compose", argv.join(" "));
  }
});

Deno.test("servable(): docker's ps, and run when detached with nothing of the client's", () => {
  assert.deepEqual(servable(["ps", "-a", "--format", "{{.Names}}"]), {
    globals: {},
    command: "ps",
    verb: "",
  });
  for (
    const argv of [
      ["run", "-d", "busybox", "sleep", "100"],
      ["run", "--name", "x", "-d", "-p", "127.0.0.1:8080:80", "-e", "A=1", "busybox"],
      ["run", "--detach", "--memory=64m", "-v", "/srv:/srv:ro", "busybox", "-t"],
      // a named volume is the daemon's, not a client file
      ["run", "-d", "-v", "data:/data", "busybox"],
    ]
  ) {
    assert.equal(servable(argv)?.command, "run", argv.join(" "));
  }
});

Deno.test("servable(): what needs this process's terminal or streams stays in-process", () => {
  for (
    const argv of [
      ["compose", "up"], // follows logs until ^C
      ["compose", "-f", "up", "up"], // "-f up" is the file; the verb is up, without -d
      ["compose", "logs", "-f"],
      ["compose", "exec", "web", "sh"],
      ["compose", "-p"], // a value missing
      ["pod", "exec", "p", "c", "sh"],
      ["pod", "run", "x.yaml", "--help"],
      ["pod", "run", "--", "x.yaml"],
      // docker's run: attached, a terminal, --rm's waiter, the client's files or variables
      ["run", "busybox", "sh", "-c", "exec x -d"], // -d is the container's, after the image
      ["run", "-it", "busybox", "sh"],
      ["run", "-d", "-t", "busybox"],
      ["run", "-d", "--rm", "busybox"],
      ["run", "-d", "-e", "HOME", "busybox"],
      ["run", "-d", "--env-file", "x.env", "busybox"],
      ["run", "-d", "-v", "./data:/data", "busybox"],
      ["run", "-d", "--name"],
      ["--root"],
      [],
    ]
  ) {
    assert.equal(servable(argv), undefined, argv.join(" "));
  }
});

Deno.test("relevantEnv(): RKL_* but RKL_TRACE, PATH and REGISTRY_AUTH_FILE, sorted", () => {
  assert.deepEqual(
    Object.entries(relevantEnv({
      RKL_ROOT: "/r",
      HOME: "/root",
      RKL_TRACE: "1",
      PATH: "/bin",
      REGISTRY_AUTH_FILE: "/a",
      GREETING: "hi",
    })),
    [["PATH", "/bin"], ["REGISTRY_AUTH_FILE", "/a"], ["RKL_ROOT", "/r"]],
  );
});
