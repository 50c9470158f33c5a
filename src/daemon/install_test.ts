import assert from "node:assert/strict";
import { DAEMON_NOFILE, unitFile } from "./install.ts";

Deno.test("unitFile() sets the daemon's descriptor limit (LimitNOFILE), once, in [Service]", () => {
  const unit = unitFile({
    bin: "/usr/bin/rkl",
    manifests: "/etc/rk8s/manifests",
    runRoot: "/run/rkl",
  });
  const lines = unit.split("\n");
  const at = lines.indexOf(`LimitNOFILE=${DAEMON_NOFILE}`);
  assert.ok(at > lines.indexOf("[Service]") && at < lines.indexOf("[Install]"), unit);
  assert.equal(lines.filter((l) => l.startsWith("LimitNOFILE=")).length, 1);
  assert.equal(DAEMON_NOFILE, 1_048_576);
});
