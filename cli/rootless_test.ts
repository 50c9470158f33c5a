import assert from "node:assert/strict";
import { innerEnv } from "./rootless.ts";
import { runRootLock, unprivilegedPortStart } from "./rootless_host.ts";

const ROOTS = { root: "/h/.local/share/rkl", runRoot: "/r/rkl", configDir: "/h/.config/rkl" };

Deno.test("innerEnv() gives the inner rkl the user's roots, config and runtime, and no daemon", () => {
  const env = innerEnv({ HOME: "/h", PATH: "/bin" }, ROOTS);
  assert.deepEqual(env, {
    HOME: "/h",
    PATH: "/bin",
    RKL_ROOTLESS: "1",
    RKL_ROOT: "/h/.local/share/rkl",
    RKL_RUN_ROOT: "/r/rkl",
    RKL_REGISTRIES_CONFIG: "/h/.config/rkl/registries.yaml",
    REGISTRY_AUTH_FILE: "/h/.config/rkl/auth.json",
    RKL_NO_DAEMON: "1",
  });
  assert.equal(innerEnv({ HOME: "/h" }, ROOTS, "runc").RKL_RUNTIME, "runc");
  // What the user set stays.
  const own = innerEnv({ RKL_ROOT: "/mine", REGISTRY_AUTH_FILE: "/a.json" }, ROOTS);
  assert.equal(own.RKL_ROOT, "/mine");
  assert.equal(own.REGISTRY_AUTH_FILE, "/a.json");
});

Deno.test("unprivilegedPortStart() reads the sysctl, 1024 when unreadable", () => {
  assert.equal(unprivilegedPortStart("80\n"), 80);
  assert.equal(unprivilegedPortStart("junk"), 1024);
});

Deno.test("runRootLock() keeps /run/lock's files under the run root", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const held = await runRootLock(dir).hold("/run/lock/rkl-net.lock", true, () => {
      return Promise.resolve([...Deno.readDirSync(`${dir}/locks`)].map((e) => e.name));
    });
    assert.deepEqual(held, ["rkl-net.lock"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
