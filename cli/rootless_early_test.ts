import assert from "node:assert/strict";
import {
  defaultRootlessRuntime,
  innerEnv,
  needsNamespace,
  ownDaemon,
  selfArgvEarly,
  type Stat,
  untrustedSocket,
} from "./rootless_early.ts";
import { killFirst } from "./rootless_host.ts";
import { rootsOf } from "./remote.ts";

Deno.test("needsNamespace(): commands that build a Host enter; help, doctor, install --user do not", () => {
  for (
    const argv of [
      ["container", "run", "--network", "none", "c.yaml"],
      ["c", "rm", "-f", "x"],
      ["--root", "/r", "pod", "list"],
      ["--debug", "ps", "-a"],
      ["compose", "up", "-d"],
      ["image", "pull", "busybox"],
      ["daemon"],
      ["daemon", "--manifests", "/m"],
      ["container", "exec", "c", "--", "sh", "--help"],
    ]
  ) assert.equal(needsNamespace(argv), true, argv.join(" "));
  for (
    const argv of [
      [],
      ["--help"],
      ["-h", "container"],
      ["--version"],
      ["doctor"],
      ["version"],
      ["completion", "bash"],
      ["help"],
      ["node", "install"],
      ["container", "run", "--help"],
      ["pod", "-h"],
      ["daemon", "install", "--user"],
      ["daemon", "uninstall", "--user"],
      ["--root", "/r"],
      ["nonsense"],
    ]
  ) assert.equal(needsNamespace(argv), false, argv.join(" "));
});

Deno.test("defaultRootlessRuntime(): rkl's youki, else runc on cgroup v1; the usual default on v2", () => {
  const v1 = "30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n" +
    "31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  const v2 = "31 25 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
  const named = "32 25 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";
  const tools: Record<string, string> = { runc: "/usr/sbin/runc", youki: "/usr/local/bin/youki" };
  const both = (n: string) => tools[n];
  const onlyRunc = (n: string) => n === "runc" ? tools.runc : undefined;
  const ours = (b: string) => b === "/usr/local/bin/youki";
  const theirs = () => false;
  // v1: rkl's youki (by its path, the very binary the marker describes), else runc.
  assert.equal(defaultRootlessRuntime(v1, both, ours), "/usr/local/bin/youki");
  assert.equal(defaultRootlessRuntime(v1, both, theirs), "runc");
  assert.equal(defaultRootlessRuntime(v1, onlyRunc, ours), "runc");
  assert.equal(
    defaultRootlessRuntime(v1, (n) => n === "youki" ? tools.youki : undefined, ours),
    tools.youki,
  );
  assert.equal(defaultRootlessRuntime(v1, () => undefined, ours), undefined);
  // v2, or only a named v1 hierarchy: the usual default, whatever youki is.
  assert.equal(defaultRootlessRuntime(v2, both, ours), undefined);
  assert.equal(defaultRootlessRuntime(v2 + named, both, ours), undefined);
});

Deno.test("innerEnv(): the runtime the outer rkl picked, unless the user set one", () => {
  const roots = { root: "/h/d", runRoot: "/r/rkl", configDir: "/h/c" };
  assert.equal(innerEnv({}, roots, "runc").RKL_RUNTIME, "runc");
  assert.equal(innerEnv({ RKL_RUNTIME: "crun" }, roots, "runc").RKL_RUNTIME, "crun");
  assert.equal("RKL_RUNTIME" in innerEnv({}, roots), false);
});

Deno.test("selfArgvEarly(): the artifact, a compiled binary, or deno run of main.ts", () => {
  const main = new URL("file:///src/rkl/cli/main.ts");
  assert.deepEqual(selfArgvEarly({}, "/usr/local/bin/deno", main, () => true), [
    "/usr/local/bin/deno",
    "run",
    "-A",
    "/src/rkl/cli/main.ts",
  ]);
  assert.deepEqual(selfArgvEarly({}, "/usr/bin/rkl", main, () => true), ["/usr/bin/rkl"]);
  assert.deepEqual(selfArgvEarly({ RKL_SELF: "/opt/rkl" }, "/x/deno", main, () => true), [
    "/opt/rkl",
  ]);
  assert.deepEqual(
    selfArgvEarly({ RKL_SELF: "/opt/rkl" }, "/usr/bin/rkl", main, () => false),
    ["/usr/bin/rkl"],
  );
});

const dir = (uid: number, mode = 0o40700): Stat => ({
  isDirectory: true,
  isSocket: false,
  isSymlink: false,
  uid,
  mode,
});
const sock = (uid: number, mode = 0o140600): Stat => ({
  isDirectory: false,
  isSocket: true,
  isSymlink: false,
  uid,
  mode,
});

Deno.test("untrustedSocket(): only the user's own socket in its own private run root", () => {
  const at = (m: Record<string, Stat>) => (p: string) => m[p];
  const ok = { "/r": dir(1000), "/r/cli.sock": sock(1000) };
  assert.equal(untrustedSocket("/r", "/r/cli.sock", 1000, at(ok)), undefined);
  // Root's socket, another user's, a symlink, a file, an open mode: never trusted.
  for (
    const [m, why] of [
      [{ ...ok, "/r/cli.sock": sock(0) }, /belongs to uid 0/],
      [{ ...ok, "/r/cli.sock": sock(1001) }, /belongs to uid 1001/],
      [
        { ...ok, "/r/cli.sock": { ...sock(1000), isSocket: false, isSymlink: true } },
        /not a socket/,
      ],
      [{ ...ok, "/r/cli.sock": { ...sock(1000), isSocket: false } }, /not a socket/],
      [{ ...ok, "/r/cli.sock": sock(1000, 0o140666) }, /open to others/],
      [{ ...ok, "/r": dir(0) }, /belongs to uid 0/],
      [{ ...ok, "/r": dir(1000, 0o40777) }, /open to others/],
      [{ ...ok, "/r": { ...dir(1000), isDirectory: false, isSymlink: true } }, /not a directory/],
      [{ "/r": dir(1000) }, /missing/],
      [{}, /missing/],
    ] as [Record<string, Stat>, RegExp][]
  ) assert.match(untrustedSocket("/r", "/r/cli.sock", 1000, at(m)) ?? "trusted", why);
});

Deno.test("ownDaemon(): the user's socket under its own run root, and the inner rkl's env", () => {
  const env = { HOME: "/home/u", XDG_RUNTIME_DIR: "/run/user/1000", PATH: "/bin" };
  const stats: Record<string, Stat> = {
    "/run/user/1000/rkl": dir(1000),
    "/run/user/1000/rkl/cli.sock": sock(1000),
  };
  const own = ownDaemon({}, env, "/w", 1000, rootsOf, (p) => stats[p]);
  assert.ok(own);
  assert.equal(own.socket, "/run/user/1000/rkl/cli.sock");
  assert.equal(own.root, "/home/u/.local/share/rkl");
  assert.equal(own.runRoot, "/run/user/1000/rkl");
  assert.equal(own.env.RKL_ROOTLESS, "1");
  assert.equal(own.env.RKL_RUN_ROOT, "/run/user/1000/rkl");
  // --run-root pointing at root's run root: its socket is root's, not trusted.
  const rootStats: Record<string, Stat> = {
    "/run/rkl": dir(0, 0o40755),
    "/run/rkl/cli.sock": sock(0),
  };
  assert.equal(
    ownDaemon({ runRoot: "/run/rkl" }, env, "/w", 1000, rootsOf, (p) => rootStats[p]),
    undefined,
  );
  // Another user's socket in this user's run root: not trusted.
  stats["/run/user/1000/rkl/cli.sock"] = sock(1001);
  assert.equal(ownDaemon({}, env, "/w", 1000, rootsOf, (p) => stats[p]), undefined);
  // No HOME: no daemon (the in-namespace path says why).
  assert.equal(ownDaemon({}, { PATH: "/bin" }, "/w", 1000, rootsOf, (p) => stats[p]), undefined);
});

Deno.test("killFirst(): SIGKILL to runc's init while its starttime matches, then waits for it", async () => {
  const stat = (state: string, start: string) =>
    `42 (sleep) ${state} 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 100 0`;
  let procStat: string | undefined = stat("S", "777");
  const killed: number[] = [];
  const ports = {
    read: (p: string) =>
      p === "/rt/c1/state.json"
        ? JSON.stringify({ init_process_pid: 42, init_process_start: 777 })
        : p === "/proc/42/stat"
        ? procStat
        : undefined,
    kill: (pid: number) => {
      killed.push(pid);
    },
    sleep: () => {
      procStat = stat("Z", "777"); // conmon has not reaped it yet: a zombie is gone
      return Promise.resolve();
    },
    now: () => 0,
  };
  assert.equal(await killFirst("/rt/c1/state.json", ports), true);
  assert.deepEqual(killed, [42]);
  // A reused pid (another starttime) is never signalled.
  procStat = stat("S", "999");
  killed.length = 0;
  assert.equal(await killFirst("/rt/c1/state.json", ports), false);
  assert.deepEqual(killed, []);
  // No state, or another format: runc's delete does the work.
  assert.equal(await killFirst("/rt/none/state.json", ports), false);
  const other = {
    ...ports,
    read: (p: string) => p.endsWith("state.json") ? '{"pid":42}' : undefined,
  };
  assert.equal(await killFirst("/rt/c1/state.json", other), false);
  // An init that does not go within the budget: false, and runc's delete takes over.
  procStat = stat("S", "777");
  let t = 0;
  const stuck = { ...ports, sleep: () => Promise.resolve(), now: () => (t += 100) };
  assert.equal(await killFirst("/rt/c1/state.json", stuck, 300), false);
});
