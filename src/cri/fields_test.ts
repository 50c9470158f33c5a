import assert from "node:assert/strict";
import { CONTAINER_FIELDS, fieldPath, SANDBOX_FIELDS } from "./fields.ts";

Deno.test("fieldPath() gives the proto field a workload path came from, indices carried over", () => {
  const at = (p: (string | number)[]) => fieldPath(CONTAINER_FIELDS, "config", p);
  assert.equal(at(["image"]), "config.image.image");
  assert.equal(at(["args"]), "config.args");
  assert.equal(at(["env", 2, "name"]), "config.envs[2].key");
  assert.equal(at(["mounts", 1, "source"]), "config.mounts[1].host_path");
  assert.equal(
    at(["securityContext", "seccompProfile", "localhostProfile"]),
    "config.linux.security_context.seccomp.localhost_ref",
  );
  // Below a known field: that field, the deepest one the request has.
  assert.equal(at(["env", 2, "valueFrom", "fieldRef"]), "config.envs[2]");
  assert.equal(at(["securityContext", "runAsNonRoot"]), "config.linux.security_context");
  // No request field (rkl's own, or nothing the CRI can set): the root, never a made-up name.
  assert.equal(at(["ulimits", 0]), "config");
  assert.equal(at(["volumeMounts", 0, "subPath"]), "config");
  assert.equal(at(["env", "x"]), "config"); // "#" matches an index only
  assert.equal(fieldPath(SANDBOX_FIELDS, "config", ["metadata", "name"]), "config");
  assert.equal(
    fieldPath(SANDBOX_FIELDS, "config", ["metadata", "labels", "bundle"]),
    "config.labels",
  );
});
