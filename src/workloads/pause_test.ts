import assert from "node:assert/strict";
import { freezerFile, frozen } from "./pause.ts";

Deno.test("freezerFile() is freezer.state on cgroup v1 and cgroup.freeze on v2; frozen() reads them", () => {
  const v1 = { version: 1 as const, mounts: { freezer: "/fs/freezer" } };
  const v2 = { version: 2 as const, root: "/fs/unified" };
  assert.deepEqual(freezerFile(v1, "rkl/web"), {
    file: "/fs/freezer/rkl/web/freezer.state",
    freeze: "FROZEN",
    thaw: "THAWED",
  });
  assert.deepEqual(freezerFile(v2, "rkl/web"), {
    file: "/fs/unified/rkl/web/cgroup.freeze",
    freeze: "1",
    thaw: "0",
    done: "/fs/unified/rkl/web/cgroup.events",
  });
  assert.equal(freezerFile({ version: 1, mounts: {} }, "rkl/web"), undefined);
  assert.throws(() => freezerFile(v2, "../x"), /relative and plain/);
  const files: Record<string, string> = {
    "/fs/freezer/rkl/a/freezer.state": "FROZEN\n",
    "/fs/freezer/rkl/b/freezer.state": "FREEZING\n",
    "/fs/freezer/rkl/c/freezer.state": "THAWED\n",
    "/fs/unified/rkl/a/cgroup.freeze": "1\n",
    "/fs/unified/rkl/c/cgroup.freeze": "0\n",
  };
  const read = (p: string) => files[p];
  assert.deepEqual(["a", "b", "c", "gone"].map((n) => frozen(v1, `rkl/${n}`, read)), [
    true,
    true,
    false,
    false,
  ]);
  assert.deepEqual(["a", "c", "gone"].map((n) => frozen(v2, `rkl/${n}`, read)), [
    true,
    false,
    false,
  ]);
});
