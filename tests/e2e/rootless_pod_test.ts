/**
 * Rootless pods (issue 34, second part), end to end as an unprivileged user
 * (see rootless_user.ts): the seed pod (tests/fixtures/rk8s-pod.yaml) runs
 * with one warning naming its limits; a pod of three (an init container
 * writing a page, httpd, a client) shares one network namespace made in the
 * user's namespace with slirp4netns on it: the client reaches httpd on
 * localhost, the host reaches it on the published 127.0.0.1 port, and both
 * share the pod's hostname; a pod with a shared PID namespace (the pause
 * container) runs; `--strict-limits` and a low host port are refused with
 * one line, exit 2, nothing made. Then every pod is removed and the census
 * finds nothing of the user left: no process but the pause process (then
 * none), no slirp4netns, no mount in its namespace, no pinned netns or
 * namespace file, no file of a pod or container under its run root or its
 * data root.
 */
import assert from "node:assert/strict";
import { REPO, requires } from "../_helpers/requires.ts";
import {
  assertUserEmpty,
  asUser,
  bodyWhenUp,
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
  slirpsOf,
  spawnUserDaemon,
  type User,
  waitFor,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "bundles", "rootless");

Deno.test({
  name: "rootless pods: the seed pod, a shared netns with a published port, removed; nothing left",
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
      writeAs(
        user,
        `${user.home}/seed.yaml`,
        Deno.readTextFileSync(`${REPO}/tests/fixtures/rk8s-pod.yaml`),
      );

      await t.step("the seed pod runs as the user; its limits are warned, by field", async () => {
        const r = await rklAs(user, ["pod", "run", "seed.yaml"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), "simple-container-task");
        const warnings = r.stderr.trim().split("\n").filter(Boolean);
        assert.equal(warnings.length, 1, r.stderr);
        assert.match(
          warnings[0],
          /seed\.yaml:\d+:\d+: resources\.limits\.cpu, resources\.limits\.memory not applied: a rootless rkl cannot write cgroups/,
        );
        assert.match(await rklOkAs(user, ["pod", "list"]), /simple-container-task +1\/1/);
        const id = await rklOkAs(user, [
          "pod",
          "exec",
          "simple-container-task",
          "main-container1",
          "--",
          "sh",
          "-c",
          "id -u; cat /proc/self/uid_map; hostname; ls /sys/class/net",
        ]);
        assert.match(id, /^0\n/);
        assert.match(id, new RegExp(`^\\s*0\\s+${user.uid}\\s+1$`, "m"));
        assert.match(id, /^simple-container-task$/m);
        assert.match(id, /^tap0$/m);
        // The dd runs as the user's subordinate root, which is the user on the host.
        const dd = processesOf(user.uid).filter((p) => / dd if.\/dev\/zero/.test(p));
        assert.equal(dd.length, 1, processesOf(user.uid).join("\n"));
        assert.equal(slirpsOf(user).length, 1);
      });

      const port = freePort();
      await t.step(
        "a pod's containers share one netns; its port answers on 127.0.0.1",
        async () => {
          writeAs(
            user,
            `${user.home}/web.yaml`,
            `apiVersion: v1
kind: Pod
metadata:
  name: web-pod
spec:
  volumes:
    - name: site
      emptyDir: {}
  initContainers:
    - name: render
      image: ./bundles/busybox
      command: [sh, -c, "echo \\"hello from $(hostname)\\" > /site/index.html"]
      volumeMounts: [{ name: site, mountPath: /site }]
  containers:
    - name: web
      image: ./bundles/busybox
      command: [httpd, -f, -p, "8080", -h, /site]
      ports: [{ containerPort: 8080, hostPort: ${port} }]
      volumeMounts: [{ name: site, mountPath: /site, readOnly: true }]
    - name: client
      image: ./bundles/busybox
      command: [sh, -c, "echo client-up; sleep 3600"]
`,
          );
          const r = await rklAs(user, ["pod", "run", "web.yaml"]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stderr.trim(), "");
          // The client reaches httpd on localhost: one network namespace.
          let page = "";
          await waitFor("httpd from the client", async () => {
            const e = await rklAs(user, [
              "pod",
              "exec",
              "web-pod",
              "client",
              "--",
              "wget",
              "-qO-",
              "http://127.0.0.1:8080/index.html",
            ]);
            page = e.stdout;
            return e.code === 0;
          });
          assert.equal(page, "hello from web-pod\n");
          const body = await bodyWhenUp(`http://127.0.0.1:${port}/index.html`);
          assert.equal(body, "hello from web-pod\n");
          assert.match(await rklOkAs(user, ["pod", "logs", "web-pod", "client"]), /client-up/);
          assert.match(await rklOkAs(user, ["pod", "list"]), /web-pod +2\/2/);
          assert.equal(slirpsOf(user).length, 2);
        },
      );

      await t.step("a shared PID namespace: the pause container is PID 1", async () => {
        writeAs(
          user,
          `${user.home}/pid.yaml`,
          `apiVersion: v1
kind: Pod
metadata:
  name: pid-pod
  labels: { bundle: ./bundles/pause }
spec:
  shareProcessNamespace: true
  containers:
    - name: a
      image: ./bundles/busybox
      command: [sleep, "3600"]
`,
        );
        const r = await rklAs(user, ["pod", "run", "--network", "none", "pid.yaml"]);
        assert.equal(r.code, 0, r.stderr);
        const ps = await rklOkAs(user, [
          "pod",
          "exec",
          "pid-pod",
          "a",
          "--",
          "ps",
          "-o",
          "pid,args",
        ]);
        assert.match(ps, /^\s*1 +\/bin\/catatonit/m);
        assert.match(ps, /sleep 3600/);
      });

      await t.step("--strict-limits and a low host port: refused, one line, exit 2", async () => {
        const strict = await rklAs(user, ["pod", "run", "--strict-limits", "seed.yaml"]);
        assert.equal(strict.code, 2, strict.stderr);
        assert.equal(strict.stderr.trim().split("\n").length, 1, strict.stderr);
        assert.match(
          strict.stderr,
          /seed\.yaml:\d+:\d+: .*resources\.limits\.cpu, resources\.limits\.memory cannot be applied rootless/,
        );
        writeAs(
          user,
          `${user.home}/low.yaml`,
          `apiVersion: v1\nkind: Pod\nmetadata: {name: low}\nspec:\n  containers:\n` +
            `    - name: a\n      image: ./bundles/busybox\n      command: ["true"]\n` +
            `      ports: [{containerPort: 80, hostPort: 80}]\n`,
        );
        const low = await rklAs(user, ["pod", "run", "low.yaml"]);
        assert.equal(low.code, 2, low.stderr);
        assert.match(
          low.stderr,
          /low\.yaml:9:\d+: .*host port 80 is below net\.ipv4\.ip_unprivileged_port_start/,
        );
        assert.doesNotMatch(await rklOkAs(user, ["pod", "list"]), /low/);
      });

      await t.step("daemon install --user writes a user unit systemd accepts", async () => {
        const r = await rklAs(user, ["daemon", "install", "--user"]);
        assert.equal(r.code, 0, r.stderr);
        const unit = `${user.home}/.config/systemd/user/rkl.service`;
        const text = Deno.readTextFileSync(unit);
        assert.match(
          text,
          /^ExecStart=\S+deno run .* daemon --manifests \S+\/\.config\/rkl\/manifests$/m,
        );
        assert.match(text, /^Environment=RKL_RUN_ROOT=%t\/rkl$/m);
        assert.equal(Deno.statSync(unit).uid, user.uid);
        // With no user manager running, --user verify cannot start one: the system mode checks the file.
        let v = await asUser(user, ["systemd-analyze", "--user", "verify", unit]);
        if (/Failed to (initialize manager|lookup RuntimeDirectory)/.test(v.stderr)) {
          v = await asUser(user, ["systemd-analyze", "verify", unit]);
        }
        assert.equal(v.code, 0, v.stdout + v.stderr);
        assert.equal(v.stderr.trim(), "");
        await rklOkAs(user, ["daemon", "uninstall", "--user"]);
        assert.throws(() => Deno.statSync(unit), Deno.errors.NotFound);
      });

      await t.step(
        "rkl daemon as the user: a static pod, its sockets in the runtime dir",
        async () => {
          const manifests = `${user.home}/.config/rkl/manifests`;
          writeAs(
            user,
            `${manifests}/static.yaml`,
            `apiVersion: v1\nkind: Pod\nmetadata: {name: st}\nspec:\n  containers:\n` +
              `    - name: a\n      image: ${user.home}/bundles/busybox\n      command: [sleep, "3600"]\n`,
          );
          const daemon = spawnUserDaemon(user, ["--manifests", manifests]);
          const stderr = new Response(daemon.stderr).text();
          try {
            await waitFor(
              "the static pod",
              async () => /st-\S+ +1\/1|^st +1\/1/m.test(await rklOkAs(user, ["pod", "list"])),
              60_000,
            );
            for (const sock of ["rkl.sock", "cli.sock"]) {
              assert.ok(Deno.statSync(`${user.xdg}/rkl/${sock}`).isSocket, sock);
            }
            Deno.removeSync(`${manifests}/static.yaml`);
            await waitFor(
              "the static pod to go",
              async () =>
                (await rklOkAs(user, ["pod", "list", "-q"])).trim() === "" ||
                !/\bst\b/.test(await rklOkAs(user, ["pod", "list", "-q"])),
              60_000,
            );
          } finally {
            await new Deno.Command("kill", { args: ["-TERM", "--", `-${daemon.pid}`] }).output();
            const st = await daemon.status;
            const said = await stderr;
            assert.ok(st.code === 0 || st.signal === null, said);
          }
          for (const sock of ["rkl.sock", "cli.sock"]) {
            assert.throws(() => Deno.statSync(`${user.xdg}/rkl/${sock}`), Deno.errors.NotFound);
          }
        },
      );

      await t.step("pod rm -f of each; the census finds nothing of the user left", async () => {
        for (const p of ["simple-container-task", "web-pod", "pid-pod"]) {
          await rklOkAs(user, ["pod", "rm", "-f", p]);
        }
        assert.equal((await rklOkAs(user, ["pod", "list", "-q"])).trim(), "");
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        const pause = await assertUserEmpty(user, port);
        // The daemon's last status stays for `rkl daemon status`, as root's does.
        assert.deepEqual(
          leftFiles(`${user.xdg}/rkl`).filter((f) => f !== "daemon/status.json"),
          [],
        );
        const data = `${user.home}/.local/share/rkl`;
        for (const d of ["containers", "pods", "logs", "exits"]) {
          assert.deepEqual(filesUnder(`${data}/${d}`), [], `${data}/${d}`);
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
