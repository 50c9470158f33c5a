/**
 * The rootless fast paths (issue 34's speed), as an unprivileged user (see
 * rootless_user.ts):
 *
 * - a command that needs the user's namespace enters it before the CLI
 *   loads: the outer rkl never reaches "modules loaded" (RKL_TRACE), only
 *   the inner one does;
 * - with the user's own `rkl daemon` running, `container run`/`list`/`rm -f`
 *   are served by it (its log says so), with no second rkl; RKL_NO_DAEMON=1
 *   still runs in-process;
 * - a socket at the user's cli.sock that is not the user's (root's, or a
 *   symlink to root's) is never connected to: the command runs in-process.
 */
import assert from "node:assert/strict";
import { waitForSocket } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import {
  bundlesFor,
  makeUser,
  processesOf,
  removeUser,
  rklAs,
  rklOkAs,
  spawnUserDaemon,
  type User,
  waitFor,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "bundles", "rootless");

/** A root-owned listener at `path` that counts the connections it gets. */
function hostileListener(path: string): { accepted: () => number; close: () => Promise<void> } {
  const l = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o666);
  let n = 0;
  const loop = (async () => {
    try {
      for await (const c of l) {
        n++;
        c.close();
      }
    } catch { /* closed */ }
  })();
  return {
    accepted: () => n,
    close: async () => {
      l.close();
      await loop;
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    },
  };
}

Deno.test({
  name:
    "rootless fast paths: early entry, served by the user's own daemon, hostile sockets ignored",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    let u: User | undefined;
    try {
      u = await makeUser();
      const user = u;
      await bundlesFor(user);
      const spec = `${user.home}/fast.yaml`;
      writeAs(
        user,
        spec,
        `name: fast\nimage: ${user.home}/bundles/busybox\ncommand: [sleep, "3600"]\n`,
      );

      await t.step("the outer rkl enters the namespace before loading the CLI", async () => {
        const r = await rklAs(user, ["container", "list"], { RKL_TRACE: "1" });
        assert.equal(r.code, 0, r.stderr);
        const traces = r.stderr.split("\n").filter((l) => l.startsWith("trace: "));
        // One "modules loaded": the inner rkl's. The outer one stops at "rootless: enter".
        assert.equal(traces.filter((l) => l.includes("modules loaded")).length, 1, r.stderr);
        assert.match(traces[0] ?? "", /rootless: enter/, r.stderr);
      });

      await t.step(
        "help and doctor stay outside the namespace; a usage error exits 2",
        async () => {
          const h = await rklAs(user, ["container", "run", "--help"]);
          assert.equal(h.code, 0, h.stderr);
          assert.match(h.stdout, /Usage: rkl container run/);
          const bad = await rklAs(user, ["container", "run"]);
          assert.equal(bad.code, 2, bad.stderr);
        },
      );

      const runRoot = `${user.xdg}/rkl`;
      const sock = `${runRoot}/cli.sock`;

      await t.step("a root-owned socket, or a symlink to one, is never connected to", async () => {
        // The run root exists (the step above made it); root puts a listener in it.
        const hostile = hostileListener(sock);
        try {
          assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
          assert.equal(hostile.accepted(), 0, "the user's rkl connected to root's socket");
        } finally {
          await hostile.close();
        }
        const rootSock = `${user.dir}/root.sock`;
        const target = hostileListener(rootSock);
        try {
          Deno.symlinkSync(rootSock, sock);
          await new Deno.Command("chown", { args: ["-h", `${user.uid}:${user.gid}`, sock] })
            .output();
          assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
          assert.equal(target.accepted(), 0, "the user's rkl followed a symlink to root's socket");
        } finally {
          Deno.removeSync(sock);
          await target.close();
        }
      });

      await t.step("with the user's daemon running, run/list/rm -f are served by it", async () => {
        const manifests = `${user.home}/manifests`;
        Deno.mkdirSync(manifests);
        Deno.chownSync(manifests, user.uid, user.gid);
        const daemon = spawnUserDaemon(user, ["--no-cri", "--manifests", manifests]);
        const said = new Response(daemon.stderr).text();
        try {
          await waitForSocket("the daemon's cli.sock", sock, 60_000);
          assert.equal(Deno.lstatSync(sock).uid, user.uid);
          assert.equal(
            (await rklOkAs(user, ["container", "run", "--network", "none", spec])).trim(),
            "fast",
          );
          assert.match(await rklOkAs(user, ["container", "list"]), /^fast +running/m);
          // The container runs inside the user's namespace, as in-process.
          const id = await rklOkAs(user, [
            "container",
            "exec",
            "fast",
            "--",
            "cat",
            "/proc/self/uid_map",
          ]);
          assert.match(id, new RegExp(`^\\s*0\\s+${user.uid}\\s+1\\s*$`, "m"));
          // RKL_NO_DAEMON=1: in-process, and it sees the daemon's container.
          const own = await rklAs(user, ["container", "list", "-q"], { RKL_NO_DAEMON: "1" });
          assert.equal(own.stdout.trim(), "fast", own.stderr);
          assert.equal((await rklOkAs(user, ["container", "rm", "-f", "fast"])).trim(), "fast");
          assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        } finally {
          await new Deno.Command("kill", { args: ["-TERM", "--", `-${daemon.pid}`] }).output();
          await daemon.status;
        }
        const log = await said;
        for (const verb of ["run", "list", "rm"]) {
          assert.match(log, new RegExp(`cli: served container ${verb} \\(exit 0\\)`), log);
        }
        // `list` with RKL_NO_DAEMON=1 was not served: three lists went to the daemon at most.
        assert.equal([...log.matchAll(/cli: served container list/g)].length, 2, log);
        assert.throws(() => Deno.lstatSync(sock), Deno.errors.NotFound);
      });

      await t.step("nothing of the user is left but its pause process", async () => {
        await waitFor("only the pause process", () => {
          const ps = processesOf(user.uid);
          return ps.length === 1 && / sleep infinity$/.test(ps[0]);
        });
      });
    } finally {
      if (u) await removeUser(u);
    }
  },
});
