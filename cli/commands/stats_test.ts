import assert from "node:assert/strict";
import { servable } from "../remote.ts";
import { renderFrame } from "./stats.ts";

Deno.test("servable(): a daemon serves `stats --no-stream`, never the live table or help", () => {
  assert.deepEqual(servable(["stats", "--no-stream"]), {
    globals: {},
    command: "stats",
    verb: "--no-stream",
  });
  assert.deepEqual(servable(["--root", "/r", "stats", "-a", "--no-stream", "web"]), {
    globals: { root: "/r" },
    command: "stats",
    verb: "--no-stream",
  });
  assert.equal(servable(["stats"]), undefined);
  assert.equal(servable(["stats", "--no-stream", "--help"]), undefined);
});

Deno.test("renderFrame(): docker's table, JSON lines, a template and a `table` template with its header", () => {
  const row = {
    ID: "abc",
    Container: "abc",
    Name: "web",
    CPUPerc: "1.00%",
    MemUsage: "1MiB / 2GiB",
    MemPerc: "0.05%",
    NetIO: "0B / 0B",
    BlockIO: "0B / 0B",
    PIDs: "1",
  };
  assert.equal(
    renderFrame([row], undefined).split("\n")[0],
    "CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS",
  );
  assert.equal(renderFrame([row], "json"), JSON.stringify(row) + "\n");
  assert.equal(renderFrame([row], "{{.Name}}={{.PIDs}}"), "web=1\n");
  assert.equal(renderFrame([row], "table {{.Name}}\\t{{.CPUPerc}}"), "NAME\tCPU %\nweb\t1.00%\n");
});
