import assert from "node:assert/strict";
import { FakeCommandRunner } from "../sys/command.ts";
import { projectNetworkName } from "./compose.ts";
import { networkOptions, type RklPaths, rootHash, shortHash } from "./host.ts";

const paths = (root: string, tag: string): RklPaths => ({
  root,
  runRoot: "/run/x",
  logDir: "/l",
  cniConfDir: `${root}/net.d`,
  tag,
});

Deno.test("networkOptions(): the default root keeps rkl0 and 10.89.0.0/24, another root gets its own bridge and a choice", () => {
  const cmd = new FakeCommandRunner();
  const def = networkOptions({ paths: paths("/var/lib/rkl", ""), cmd });
  assert.equal(def.bridge, undefined);
  assert.equal(def.candidates, undefined);
  assert.equal(def.subnet, undefined); // loadNetwork then writes DEFAULT_SUBNET
  const tag = `r${shortHash("/srv/rkl-b")}-`;
  const other = networkOptions({ paths: paths("/srv/rkl-b", tag), cmd });
  assert.equal(other.bridge, `rkl0-${shortHash("/srv/rkl-b")}`);
  assert.ok(other.bridge!.length <= 15, "an interface name has at most 15 characters");
  assert.equal([...other.candidates!][0], "10.89.1.0/24");
  assert.equal([...other.candidates!].length, 255);
  assert.deepEqual(other.hostNet?.confDirs, ["/srv/rkl-b/net.d", "/etc/rkl/net.d"]);
  // RKL_SUBNET is taken as given (and checked when the conflist is written).
  assert.equal(
    networkOptions({ paths: paths("/srv/b", tag), cmd, subnet: "10.7.0.0/24" }).subnet,
    "10.7.0.0/24",
  );
  assert.equal(rootHash({ tag: "" }), "");
  assert.equal(rootHash({ tag: "../x" }), "");
});

Deno.test("projectNetworkName(): the same project in two roots gets two bridges; the default root keeps its names", async () => {
  const def = await projectNetworkName({ tag: "" }, "twin", "default");
  const a = await projectNetworkName({ tag: "r00000001-" }, "twin", "default");
  const b = await projectNetworkName({ tag: "r00000002-" }, "twin", "default");
  assert.match(def, /^cmp-[0-9a-f]{10}$/);
  assert.equal(new Set([def, a, b]).size, 3);
  // What rkl before named it: the hash of "PROJECT/NETWORK".
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode("twin/default")),
  );
  assert.equal(
    def,
    `cmp-${[...d].map((x) => x.toString(16).padStart(2, "0")).join("").slice(0, 10)}`,
  );
});
