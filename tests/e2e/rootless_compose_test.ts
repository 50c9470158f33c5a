/**
 * Rootless compose (issue 34, second part), end to end as an unprivileged
 * user (see rootless_user.ts), with the seed compose file
 * (tests/fixtures/rk8s-compose.yaml): as written it publishes host port 80,
 * which a user cannot bind, and `up` refuses it with one line, exit 2,
 * nothing made. With its two host ports moved to free ones above 1024 it
 * comes up: both services run in the project's one network namespace with
 * slirp4netns on it, the frontend reaches the backend by name (`back`, at
 * 127.0.0.1 in the shared namespace), the bind volume is visible, the
 * backend's published port answers on the host's 127.0.0.1, and ps, logs
 * and exec work. `down` then removes everything and the census finds
 * nothing of the user left.
 */
import assert from "node:assert/strict";
import { REPO, requires } from "../_helpers/requires.ts";
import {
  assertUserEmpty,
  bundlesFor,
  filesUnder,
  freePort,
  leftFiles,
  makeUser,
  openTun,
  processesOf,
  removeUser,
  rklAs,
  rklOkAs,
  sh,
  slirpsOf,
  type User,
  waitFor,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "bundles", "rootless");

Deno.test({
  name:
    "rootless compose: the seed file up as a user, names resolve, port published; down leaves nothing",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    let u: User | undefined;
    let tunMode: number | undefined;
    try {
      u = await makeUser();
      const user = u;
      tunMode = openTun();
      await bundlesFor(user);
      const dir = `${user.home}/seed`;
      Deno.mkdirSync(`${dir}/tmp/mount/dir`, { recursive: true });
      const seed = Deno.readTextFileSync(`${REPO}/tests/fixtures/rk8s-compose.yaml`)
        .replaceAll("./bundles/", "../bundles/");
      Deno.writeTextFileSync(`${dir}/compose.yaml`, seed);
      Deno.writeTextFileSync(`${dir}/config.yaml`, "a: 1\n");
      Deno.writeTextFileSync(`${dir}/tmp/mount/dir/hello.txt`, "from the host\n");
      await sh("chown", ["-R", `${user.uid}:${user.gid}`, dir]);
      const compose = (args: string[]) =>
        rklAs(user, ["compose", "-f", `${dir}/compose.yaml`, ...args]);
      const composeOk = (args: string[]) =>
        rklOkAs(user, ["compose", "-f", `${dir}/compose.yaml`, ...args]);

      await t.step("the seed file as written: host port 80 refused, one line, exit 2", async () => {
        const r = await compose(["up", "-d"]);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.match(
          r.stderr,
          /compose\.yaml: services\.frontend\.ports: host port 80 is below net\.ipv4\.ip_unprivileged_port_start/,
        );
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        assert.deepEqual(filesUnder(`${user.xdg}/rkl/netns`), []);
      });

      const back = freePort();
      const front = freePort();
      writeAs(
        user,
        `${dir}/compose.yaml`,
        seed.replace(`"8080:8080"`, `"${back}:8080"`).replace(`"80:80"`, `"${front}:80"`),
      );

      await t.step("up: both run in one netns; front reaches back by name", async () => {
        const up = await compose(["up", "-d"]);
        assert.equal(up.code, 0, up.stderr);
        const ps = await composeOk(["ps"]);
        assert.match(ps, /back\b.*running/);
        assert.match(ps, /front\b.*running/);
        assert.equal(slirpsOf(user).length, 1, processesOf(user.uid).join("\n"));
        // One network namespace: the same inode in both.
        const ns = async (svc: string) =>
          (await composeOk(["exec", svc, "--", "readlink", "/proc/self/ns/net"])).trim();
        assert.equal(await ns("backend"), await ns("frontend"));
        assert.equal(
          await composeOk(["exec", "backend", "--", "cat", "/app/data/hello.txt"]),
          "from the host\n",
        );
        assert.equal((await composeOk(["exec", "frontend", "--", "hostname"])).trim(), "front");
        await composeOk([
          "exec",
          "backend",
          "--",
          "sh",
          "-c",
          "echo from-back > /tmp/i; echo started-httpd; httpd -p 8080 -h /tmp",
        ]);
        let page = "";
        await waitFor("back from front, by name", async () => {
          const r = await compose([
            "exec",
            "frontend",
            "--",
            "wget",
            "-qO-",
            "http://back:8080/i",
          ]);
          page = r.stdout;
          return r.code === 0;
        });
        assert.equal(page, "from-back\n");
        let body = "";
        await waitFor("the published port", async () => {
          try {
            const res = await fetch(`http://127.0.0.1:${back}/i`);
            body = await res.text();
            return res.ok;
          } catch {
            return false;
          }
        });
        assert.equal(body, "from-back\n");
        const logs = await compose(["logs", "backend"]);
        assert.equal(logs.code, 0, logs.stderr);
      });

      await t.step("down: nothing of the user left", async () => {
        await composeOk(["down"]);
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        const pause = await assertUserEmpty(user, back);
        assert.deepEqual(leftFiles(`${user.xdg}/rkl`), []);
        const data = `${user.home}/.local/share/rkl`;
        for (const d of ["containers", "compose", "logs", "exits", "net.d"]) {
          // The two networks' fixed conflists (slirp4netns's rkl0, pasta's) stay, as root's rkl0 does.
          const left = filesUnder(`${data}/${d}`).filter((f) =>
            f !== "rkl0.conflist" && f !== "pasta.conflist"
          );
          assert.deepEqual(left, [], `${data}/${d}`);
        }
        Deno.kill(pause, "SIGKILL");
        await waitFor("no process of the user", () => processesOf(user.uid).length === 0);
      });
    } finally {
      if (u) await removeUser(u);
      if (tunMode !== undefined) Deno.chmodSync("/dev/net/tun", tunMode);
    }
  },
});
