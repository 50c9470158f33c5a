/**
 * pasta as a rootless network (`--network pasta`, src/net/pasta.ts), as an
 * unprivileged user (see rootless_user.ts): a container publishes a port
 * that the host reaches on 127.0.0.1; the container cannot reach a listener
 * on the host's loopback (neither at 127.0.0.1 nor through the gateway);
 * `rm -f` stops its pasta, closes the port and leaves no pasta file, mount
 * or netns behind.
 */
import assert from "node:assert/strict";
import { requires } from "../_helpers/requires.ts";
import {
  assertUserEmpty,
  bodyWhenUp,
  bundlesFor,
  filesUnder,
  freePort,
  makeUser,
  openTun,
  processesOf,
  removeUser,
  rklAs,
  rklOkAs,
  type User,
  waitFor,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "bundles", "rootless");

function havePasta(): boolean {
  for (const d of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${d}/pasta`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

Deno.test({
  name: "rootless pasta: a published port from the host, no way to the host's loopback, rm -f",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    // Never a silent skip: pasta is part of the setup (scripts/setup.sh installs passt).
    if (!havePasta()) throw new Error("pasta is not installed (scripts/setup.sh installs passt)");
    let u: User | undefined;
    let tunMode: number | undefined;
    const hostOnly = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const hostPort = (hostOnly.addr as Deno.NetAddr).port;
    let reached = 0;
    const accepting = (async () => {
      try {
        for await (const c of hostOnly) {
          reached++;
          c.close();
        }
      } catch { /* closed */ }
    })();
    try {
      u = await makeUser();
      const user = u;
      tunMode = openTun();
      await bundlesFor(user);
      const port = freePort();
      writeAs(
        user,
        `${user.home}/web.yaml`,
        `name: pweb\nimage: ${user.home}/bundles/busybox\n` +
          `ports:\n  - containerPort: 8080\n    hostPort: ${port}\n` +
          `args: ["sh", "-c", "echo hello-pasta > /tmp/index.html; ` +
          `gw=$(ip route | awk '/^default/ {print $3}'); ` +
          `nc -w 2 127.0.0.1 ${hostPort} </dev/null; nc -w 2 $gw ${hostPort} </dev/null; ` +
          `exec httpd -f -p 8080 -h /tmp"]\n`,
      );

      await t.step("--network pasta: the host reaches the published port", async () => {
        const r = await rklAs(user, ["container", "run", "--network", "pasta", "web.yaml"]);
        assert.equal(r.code, 0, r.stderr);
        const body = await bodyWhenUp(`http://127.0.0.1:${port}/index.html`);
        assert.equal(body, "hello-pasta\n");
        assert.ok(
          processesOf(user.uid).some((p) => /pasta --config-net/.test(p)),
          "no pasta process of the user",
        );
        assert.match(await rklOkAs(user, ["container", "list"]), /^pweb +running/m);
      });

      await t.step("the container does not reach the host's loopback", () => {
        // httpd serves: the two nc tries before it are over.
        assert.equal(reached, 0, "a connection from the container reached the host's 127.0.0.1");
      });

      await t.step("rm -f stops pasta; nothing of it is left", async () => {
        await rklOkAs(user, ["container", "rm", "-f", "pweb"]);
        await waitFor(
          "pasta to go",
          () => !processesOf(user.uid).some((p) => /pasta --config-net/.test(p)),
        );
        await assertUserEmpty(user, port);
        assert.deepEqual(filesUnder(`${user.xdg}/rkl/pasta`), []);
      });
    } finally {
      hostOnly.close();
      await accepting;
      if (u) await removeUser(u);
      if (tunMode !== undefined) Deno.chmodSync("/dev/net/tun", tunMode);
    }
  },
});
