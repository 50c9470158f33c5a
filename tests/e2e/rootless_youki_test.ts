/**
 * youki as the rootless runtime of a cgroup v1 host (issue 34), as an
 * unprivileged user (see rootless_user.ts). rkl's youki carries
 * scripts/youki/libcontainer-rootless-cgroup-v1.patch (runc's rootless
 * cgroupfs rule: no cgroup it may not make is fatal for a spec without
 * limits) and setup.sh's marker says so (src/oci/youki_marker.ts):
 *
 * - a user's rkl picks youki by default (doctor names it, the container's
 *   state says youki, runc's state dir is never made), and `--runtime runc`
 *   still runs runc;
 * - the container runs confined: seccomp in filter mode for its init and an
 *   exec'd process (Seccomp: 2), no cgroup of its own made on the host;
 * - stop, exec, rm -f work, and leave nothing;
 * - youki's compiled seccomp programs live under the user's run root,
 *   owned by the user, 0600 in a 0700 dir;
 * - a memory limit in the spec gets rkl's one-line warning, or a refusal
 *   with --strict-limits (exit 2); and youki itself, given a config.json
 *   with a memory limit, refuses it naming linux.resources.memory and makes
 *   nothing (it never drops a limit it was given), while the same config
 *   without limits runs.
 */
import assert from "node:assert/strict";
import { requires } from "../_helpers/requires.ts";
import { which } from "../../src/oci/runtime.ts";
import {
  bundlesFor,
  leftFiles,
  makeUser,
  pausePid,
  processesOf,
  removeUser,
  rklAs,
  rklOkAs,
  type User,
  userMounts,
  waitFor,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "bundles", "rootless", "youki-rootless-v1");

/** Directories named ID under any cgroup v1 hierarchy (youki's default path is `:youki:ID`). */
function hostCgroups(id: string): string[] {
  const out: string[] = [];
  for (const h of Deno.readDirSync("/sys/fs/cgroup")) {
    try {
      for (const e of Deno.readDirSync(`/sys/fs/cgroup/${h.name}`)) {
        if (e.isDirectory && e.name.includes(id)) out.push(`${h.name}/${e.name}`);
      }
    } catch { /* not a directory */ }
  }
  return out;
}

/**
 * `youki --root ROOT ARGS…` as the user inside its namespaces (as rkl runs
 * it): stdio to files, so that a container that did start cannot hold a
 * pipe of ours open.
 */
async function youkiAs(
  u: User,
  youki: string,
  root: string,
  args: string[],
  globals: string[] = [],
): Promise<{ code: number; stderr: string }> {
  const err = `${u.home}/youki.err`;
  const r = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "sh",
      "-c",
      'exec "$@" </dev/null >/dev/null 2>"$0"',
      err,
      "nsenter",
      "-t",
      String(pausePid(u)),
      "-U",
      "-m",
      "--",
      youki,
      ...globals,
      "--root",
      root,
      ...args,
    ],
    clearEnv: true,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: u.home, RUST_BACKTRACE: "0" },
    cwd: u.home,
  }).output();
  let stderr = "";
  try {
    stderr = Deno.readTextFileSync(err);
    Deno.removeSync(err);
  } catch { /* none */ }
  return { code: r.code, stderr };
}

Deno.test({
  name:
    "rootless youki on cgroup v1: the default, confined, limits never dropped, cache the user's",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    let u: User | undefined;
    try {
      u = await makeUser();
      const user = u;
      await bundlesFor(user);
      const youki = which("youki")!;
      const runRoot = `${user.xdg}/rkl`;
      writeAs(
        user,
        `${user.home}/c.yaml`,
        `name: yc\nimage: ${user.home}/bundles/busybox\n` +
          `command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 1; done"]\n`,
      );

      await t.step("doctor names rkl's youki as the runtime", async () => {
        const r = await rklAs(user, ["doctor"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, new RegExp(`ok +OCI runtime: youki \\(${youki}, rkl's build\\)`));
      });

      await t.step("run: youki by default, seccomp on, no cgroup made on the host", async () => {
        assert.equal(
          (await rklOkAs(user, ["container", "run", "--network", "none", "c.yaml"])).trim(),
          "yc",
        );
        assert.match(await rklOkAs(user, ["container", "state", "yc"]), /^Runtime: +youki$/m);
        assert.deepEqual(
          [...Deno.readDirSync(`${runRoot}/runtime`)].map((e) => e.name),
          ["youki"],
        );
        const status = await rklOkAs(user, [
          "container",
          "exec",
          "yc",
          "--",
          "grep",
          "-H",
          "^Seccomp:",
          "/proc/1/status",
          "/proc/self/status",
        ]);
        assert.match(status, /^\/proc\/1\/status:Seccomp:\s+2$/m, status);
        assert.match(status, /^\/proc\/self\/status:Seccomp:\s+2$/m, status);
        // The container's processes are in the user's namespace, in no cgroup of their own.
        assert.deepEqual(hostCgroups(":youki:yc"), []);
      });

      await t.step("youki's seccomp cache is the user's: 0600 files in a 0700 dir", () => {
        const dir = `${runRoot}/runtime/youki/.seccomp-cache`;
        const st = Deno.lstatSync(dir);
        assert.equal(st.isDirectory, true);
        assert.deepEqual([st.uid, st.mode! & 0o777], [user.uid, 0o700]);
        const files = [...Deno.readDirSync(dir)].map((e) => e.name);
        assert.ok(files.length > 0, "no compiled program cached");
        for (const f of files) {
          assert.match(f, /^[0-9a-f]{16}\.bpf$/);
          const fst = Deno.lstatSync(`${dir}/${f}`);
          assert.deepEqual([fst.isFile, fst.uid, fst.gid, fst.mode! & 0o777], [
            true,
            user.uid,
            user.gid,
            0o600,
          ]);
        }
      });

      await t.step("stop and rm -f of a running one", async () => {
        await rklOkAs(user, ["container", "stop", "-t", "5", "yc"]);
        assert.match(await rklOkAs(user, ["container", "list"]), /^yc +exited \(0\)/m);
        await rklOkAs(user, ["container", "rm", "yc"]);
        await rklOkAs(user, ["container", "run", "--network", "none", "c.yaml"]);
        assert.equal((await rklOkAs(user, ["container", "rm", "-f", "yc"])).trim(), "yc");
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        assert.deepEqual([...Deno.readDirSync(`${runRoot}/runtime/youki`)].map((e) => e.name), [
          ".seccomp-cache",
        ]);
      });

      await t.step("a memory limit: rkl's one warning, or --strict-limits refuses it", async () => {
        writeAs(
          user,
          `${user.home}/lim.yaml`,
          `name: lim\nimage: ${user.home}/bundles/busybox\ncommand: [sleep, "600"]\n` +
            `resources:\n  limits:\n    memory: 64Mi\n`,
        );
        const strict = await rklAs(user, ["container", "run", "--strict-limits", "lim.yaml"]);
        assert.equal(strict.code, 2, strict.stderr);
        assert.equal(strict.stderr.trim().split("\n").length, 1, strict.stderr);
        assert.match(
          strict.stderr,
          /lim\.yaml:\d+:\d+: .*resources\.limits\.memory cannot be applied rootless/,
        );
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        const r = await rklAs(user, ["container", "run", "--network", "none", "lim.yaml"]);
        assert.equal(r.code, 0, r.stderr);
        const warnings = r.stderr.trim().split("\n").filter(Boolean);
        assert.equal(warnings.length, 1, r.stderr);
        assert.match(
          warnings[0],
          /lim\.yaml:\d+:\d+: resources\.limits\.memory not applied: a rootless rkl cannot write cgroups \(this host has cgroup v1\)/,
        );
        assert.match(await rklOkAs(user, ["container", "state", "lim"]), /^Runtime: +youki$/m);
      });

      await t.step("youki given a memory limit refuses it; without limits it runs", async () => {
        // lim's own config.json (its rootfs is mounted in the user's namespace), with a limit.
        const config = JSON.parse(
          Deno.readTextFileSync(`${user.home}/.local/share/rkl/containers/lim/config.json`),
        );
        assert.deepEqual(config.linux.resources, {});
        assert.equal(config.linux.cgroupsPath, undefined);
        const bundle = `${user.home}/ybundle`;
        Deno.mkdirSync(bundle);
        config.linux.resources = { memory: { limit: 64 * 1024 * 1024 } };
        writeAs(user, `${bundle}/config.json`, JSON.stringify(config));
        Deno.chownSync(bundle, user.uid, user.gid);
        const root = `${user.xdg}/ytest`;
        const limited = await youkiAs(user, youki, root, ["create", "--bundle", bundle, "ylim"]);
        assert.notEqual(limited.code, 0, limited.stderr);
        assert.match(
          limited.stderr,
          /cannot apply linux\.resources\.memory to a rootless container on cgroup v1: it could not create or join a cgroup \(.*Permission denied/,
        );
        const none = await youkiAs(user, youki, root, ["state", "ylim"]);
        assert.notEqual(none.code, 0, "youki kept a container it refused");
        assert.deepEqual(hostCgroups(":youki:ylim"), []);
        // The same config without the limit: created, and deleted (forced, so killed) cleanly.
        config.linux.resources = {};
        writeAs(user, `${bundle}/config.json`, JSON.stringify(config));
        const ok = await youkiAs(user, youki, root, [
          "create",
          "--bundle",
          bundle,
          "yok",
        ], ["--log-level", "warn"]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(
          ok.stderr,
          /rootless on cgroup v1: the container runs without its own cgroups/,
        );
        const del = await youkiAs(user, youki, root, ["delete", "--force", "yok"]);
        assert.equal(del.code, 0, del.stderr);
        assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name).sort(), [".seccomp-cache"]);
        await rklOkAs(user, ["container", "rm", "-f", "lim"]);
        Deno.removeSync(root, { recursive: true });
      });

      await t.step("--runtime runc still runs runc", async () => {
        const out = await rklOkAs(user, [
          "--runtime",
          "runc",
          "container",
          "run",
          "--network",
          "none",
          "c.yaml",
        ]);
        assert.equal(out.trim(), "yc");
        assert.match(await rklOkAs(user, ["container", "state", "yc"]), /^Runtime: +runc$/m);
        const exec = await rklOkAs(user, [
          "container",
          "exec",
          "yc",
          "--",
          "grep",
          "^Seccomp:",
          "/proc/1/status",
        ]);
        assert.match(exec, /^Seccomp:\s+2$/m);
        assert.equal((await rklOkAs(user, ["container", "rm", "-f", "yc"])).trim(), "yc");
      });

      await t.step("census: nothing of the user is left", async () => {
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        const pause = pausePid(user);
        await waitFor("only the pause process", () => {
          const ps = processesOf(user.uid);
          return ps.length === 1 && ps[0].startsWith(`${pause} `);
        });
        assert.deepEqual(userMounts(user), []);
        assert.deepEqual([...Deno.readDirSync(`${runRoot}/netns`)], []);
        assert.deepEqual(leftFiles(runRoot), []);
        for (const id of ["yc", "lim", "ylim", "yok"]) {
          assert.deepEqual(hostCgroups(`:youki:${id}`), []);
        }
      });
    } finally {
      if (u) await removeUser(u);
    }
  },
});
