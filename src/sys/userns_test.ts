import assert from "node:assert/strict";
import { RklError } from "../errors.ts";
import {
  enterArgv,
  idMapArgs,
  isInitialUserNs,
  privateUserDir,
  rootlessRoots,
  subordinateRange,
  userName,
} from "./userns.ts";

Deno.test("subordinateRange() finds the user's first range by name or by uid", () => {
  const text = "# comment\nalice:100000:65536\nbob:165536:65536\n1003:231072:1000\nalice:9:9\n";
  assert.deepEqual(subordinateRange(text, "alice", 1001), { start: 100000, count: 65536 });
  assert.deepEqual(subordinateRange(text, "bob", 1002), { start: 165536, count: 65536 });
  assert.deepEqual(subordinateRange(text, "carol", 1003), { start: 231072, count: 1000 });
  assert.equal(subordinateRange(text, "dave", 1004), undefined);
});

Deno.test("subordinateRange() skips malformed, empty and wrapping ranges", () => {
  const text = "alice:x:65536\nalice:1:0\nalice:4294967000:65536\nalice:1:2:3\nalice:200000:10\n";
  assert.deepEqual(subordinateRange(text, "alice", 1001), { start: 200000, count: 10 });
  assert.equal(subordinateRange("", "alice", 1001), undefined);
});

Deno.test("isInitialUserNs() tells the initial namespace's identity map from a user's", () => {
  assert.equal(isInitialUserNs("         0          0 4294967295\n"), true);
  assert.equal(
    isInitialUserNs("         0       1001          1\n         1     100000      65536\n"),
    false,
  );
  assert.equal(isInitialUserNs(""), false);
});

Deno.test("idMapArgs() maps 0 to the user and 1.. to the subordinate range", () => {
  assert.deepEqual(idMapArgs(42, 1001, { start: 100000, count: 65536 }), [
    "42",
    "0",
    "1001",
    "1",
    "1",
    "100000",
    "65536",
  ]); // deno-fmt-ignore
});

Deno.test("rootlessRoots() follows the XDG rules, with /tmp/rkl-UID without a runtime dir", () => {
  assert.deepEqual(rootlessRoots({ HOME: "/home/a" }, 1001), {
    root: "/home/a/.local/share/rkl",
    runRoot: "/tmp/rkl-1001",
    configDir: "/home/a/.config/rkl",
  });
  assert.deepEqual(
    rootlessRoots({
      HOME: "/home/a",
      XDG_DATA_HOME: "/d",
      XDG_CONFIG_HOME: "/c",
      XDG_RUNTIME_DIR: "/run/user/1001",
    }, 1001),
    { root: "/d/rkl", runRoot: "/run/user/1001/rkl", configDir: "/c/rkl" },
  );
  // Relative XDG values are ignored, as the spec says.
  assert.equal(rootlessRoots({ HOME: "/h", XDG_DATA_HOME: "rel" }, 1).root, "/h/.local/share/rkl");
  assert.throws(() => rootlessRoots({}, 1001), RklError);
  assert.deepEqual(
    rootlessRoots({ XDG_DATA_HOME: "/d", XDG_CONFIG_HOME: "/c", XDG_RUNTIME_DIR: "/r" }, 7),
    { root: "/d/rkl", runRoot: "/r/rkl", configDir: "/c/rkl" },
  );
});

Deno.test("userName() reads /etc/passwd, else the uid", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n";
  assert.equal(userName(1001, passwd), "alice");
  assert.equal(userName(1002, passwd), "1002");
});

Deno.test("enterArgv() enters the user and mount namespaces in the same directory", () => {
  assert.deepEqual(enterArgv(9, "/home/a", ["rkl", "ps"]), [
    "nsenter",
    "-t",
    "9",
    "-U",
    "-m",
    "--wd=/home/a",
    "--",
    "rkl",
    "ps",
  ]); // deno-fmt-ignore
});

Deno.test("privateUserDir() makes a 0700 dir, and refuses one of another owner, open to others, or a file", async () => {
  const base = await Deno.makeTempDir();
  try {
    Deno.mkdirSync(`${base}/a`);
    const uid = Deno.statSync(`${base}/a`).uid!; // this process's (no sys permission in unit tests)
    privateUserDir(`${base}/a/rkl`, uid);
    assert.equal(Deno.statSync(`${base}/a/rkl`).mode! & 0o777, 0o700);
    assert.throws(() => privateUserDir(`${base}/a/rkl`, uid + 1), /owned by uid/);
    Deno.mkdirSync(`${base}/open`, { mode: 0o755 });
    Deno.chmodSync(`${base}/open`, 0o755);
    assert.throws(() => privateUserDir(`${base}/open`, uid), /mode 0700 \(found a directory/);
    Deno.writeTextFileSync(`${base}/file`, "");
    assert.throws(() => privateUserDir(`${base}/file`, uid), /found no directory/);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
