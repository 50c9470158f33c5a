/**
 * Rootless rkl (issue 34), end to end: as root, the test makes an
 * unprivileged user with subordinate id ranges (useradd's own, or appended
 * to /etc/subuid and /etc/subgid), a home and an XDG_RUNTIME_DIR it owns,
 * and runs the CLI from source as that user (setpriv, a clean environment).
 * The user pulls busybox from a local registry (a mirror in
 * ~/.config/rkl/registries.yaml), runs containers with `--network none` and
 * with slirp4netns and a published port, uses list/logs/exec/stop/rm, and
 * the security checks run: uid 0 inside is the user, a file made in a bind
 * mount belongs to the user or to a subordinate id and never to root, the
 * container's root cannot write what the user cannot, and it cannot see or
 * signal the user's other processes. Then everything is removed and a
 * census shows nothing of the user left: no process (the pause process is
 * stopped last), no mount or pinned netns in its namespace, no file under
 * its run root beyond rkl's fixed ones. The user, its ranges, its dirs and
 * the registry go in the clean-up, also when a step failed.
 *
 * /dev/net/tun: slirp4netns opens it as the user. udev makes it 0666; a
 * host that has it 0600 (this VM) gets 0666 for the test, and its mode back
 * after.
 */
import assert from "node:assert/strict";
import { REPO, requires } from "../_helpers/requires.ts";
import { dirTar, pushImage, type Registry, startRegistry } from "../_helpers/oci.ts";
import {
  bodyWhenUp,
  dec,
  freePort,
  hostAddress,
  leftFiles,
  makeUser,
  pausePid,
  processesOf,
  rklAs,
  rklOkAs,
  type User,
  userMounts,
  waitFor,
  withoutUser,
  writeAs,
} from "./rootless_user.ts";

const ready = requires("root", "runc", "conmon", "registry", "bundles", "rootless");

Deno.test({
  name: "rootless: an unprivileged user pulls, runs, publishes, execs and removes; nothing left",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    // One root e2e at a time on this host is the caller's flock; the user is ours alone.
    let u: User | undefined;
    let registry: Registry | undefined;
    let tunMode: number | undefined;
    let outsider: Deno.ChildProcess | undefined;
    try {
      u = await makeUser();
      const user = u;
      const tun = Deno.statSync("/dev/net/tun").mode! & 0o777;
      if ((tun & 0o006) !== 0o006) {
        tunMode = tun;
        Deno.chmodSync("/dev/net/tun", 0o666);
      }
      registry = await startRegistry(`${u.dir}/registry`);
      await pushImage(registry.url, "library/busybox", "1.36", {
        layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
        config: { Cmd: ["sh"], Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
      });
      writeAs(
        u,
        `${u.home}/.config/rkl/registries.yaml`,
        `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
      );

      await t.step("doctor says the user has what rootless rkl needs", async () => {
        const r = await rklAs(user, ["doctor"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /^rootless \(uid \d+\):/);
        assert.match(r.stdout, /ok +subuid range: \d+-\d+ \(65536 ids\)/);
        assert.match(r.stdout, /this user can run rootless rkl/);
      });

      await t.step("image pull: layers in the user's store, owners shifted", async () => {
        await rklOkAs(user, ["image", "pull", "busybox:1.36"]);
        const ls = await rklOkAs(user, ["image", "ls"]);
        assert.match(ls, /docker\.io\/library\/busybox +1\.36/);
        const layers = `${user.home}/.local/share/rkl/images/layers`;
        const [layer] = [...Deno.readDirSync(layers)].filter((e) => e.isDirectory);
        // root:root in the image is the user on the host (uid 0 of its namespace).
        const st = Deno.statSync(`${layers}/${layer.name}/fs/bin/busybox`);
        assert.equal(st.uid, user.uid);
        assert.equal(st.gid, user.gid);
      });

      await t.step("image import of a docker-archive (skopeo) as the user", async () => {
        const tar = `${user.home}/imported.tar`;
        const r = await new Deno.Command("skopeo", {
          args: [
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "amd64",
            `docker://${registry!.host}/library/busybox:1.36`,
            `docker-archive:${tar}:docker.io/library/imported:v1`,
          ],
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.ok(r.success, dec.decode(r.stderr));
        Deno.chownSync(tar, user.uid, user.gid);
        assert.match(await rklOkAs(user, ["image", "import", tar]), /^sha256:/);
        assert.match(await rklOkAs(user, ["image", "ls"]), /docker\.io\/library\/imported +v1/);
        await rklOkAs(user, ["image", "rm", "imported:v1"]);
        Deno.removeSync(tar);
      });

      await t.step("docker-style run -d, ps, exec, rm -f as the user", async () => {
        await rklOkAs(user, [
          "run",
          "-d",
          "--name",
          "dk",
          "--network",
          "none",
          "busybox:1.36",
          "sleep",
          "300",
        ]); // deno-fmt-ignore
        assert.match(await rklOkAs(user, ["ps"]), /dk/);
        assert.equal((await rklOkAs(user, ["exec", "dk", "id", "-u"])).trim(), "0");
        await rklOkAs(user, ["rm", "-f", "dk"]);
        assert.doesNotMatch(await rklOkAs(user, ["ps", "-a"]), /dk/);
      });

      await t.step("--network none: uid 0 inside is the user, only lo", async () => {
        writeAs(
          user,
          `${user.home}/id.yaml`,
          `name: idc\nimage: busybox:1.36\nimagePullPolicy: IfNotPresent\n` +
            `args: ["sh", "-c", "id; cat /proc/self/uid_map; ls /sys/class/net; sleep 300"]\n`,
        );
        await rklOkAs(user, ["container", "run", "--network", "none", "id.yaml"]);
        await waitFor(
          "the output",
          async () => /lo/.test(await rklOkAs(user, ["container", "logs", "idc"])),
        );
        const logs = await rklOkAs(user, ["container", "logs", "idc"]);
        assert.match(logs, /uid=0\(root\) gid=0\(root\)/);
        assert.match(logs, new RegExp(`^\\s*0\\s+${user.uid}\\s+1$`, "m"));
        assert.match(logs, new RegExp(`^\\s*1\\s+${user.subUid}\\s+65536$`, "m"));
        assert.deepEqual(logs.split("\n").filter((l) => /^[a-z]/.test(l) && !/^uid/.test(l)), [
          "lo",
        ]);
        const list = await rklOkAs(user, ["container", "list"]);
        assert.match(list, /idc +running/);
        const exec = await rklOkAs(user, ["container", "exec", "idc", "--", "id", "-u"]);
        assert.equal(exec.trim(), "0");
        await rklOkAs(user, ["container", "stop", "-t", "1", "idc"]);
        assert.match(await rklOkAs(user, ["container", "list"]), /idc +exited/);
        await rklOkAs(user, ["container", "rm", "idc"]);
      });

      await t.step(
        "bind mount: files belong to the user or a subordinate id, never root",
        async () => {
          const share = `${user.home}/share`;
          Deno.writeTextFileSync(`${share}/roots`, "root's\n", { mode: 0o644 });
          Deno.chownSync(`${share}/roots`, 0, 0);
          writeAs(
            user,
            `${user.home}/bind.yaml`,
            `name: bindc\nimage: busybox:1.36\nimagePullPolicy: IfNotPresent\n` +
              `volumeMounts:\n  - mountPath: /data\n    hostPath: ${share}\n` +
              `args: ["sh", "-c", "touch /data/by-root; touch /data/by-1000; chown 1000:1000 /data/by-1000; ` +
              `echo x >> /data/roots && echo wrote-roots || echo cannot-write-roots; echo done"]\n`,
          );
          await rklOkAs(user, ["container", "run", "--network", "none", "bind.yaml"]);
          await waitFor(
            "the container to finish",
            async () => /done/.test(await rklOkAs(user, ["container", "logs", "bindc"])),
          );
          const logs = await rklOkAs(user, ["container", "logs", "bindc"]);
          assert.match(logs, /cannot-write-roots/);
          assert.equal(Deno.readTextFileSync(`${share}/roots`), "root's\n");
          const byRoot = Deno.statSync(`${share}/by-root`);
          assert.equal(byRoot.uid, user.uid);
          const by1000 = Deno.statSync(`${share}/by-1000`);
          assert.equal(by1000.uid, user.subUid + 999);
          assert.notEqual(by1000.uid, 0);
          await rklOkAs(user, ["container", "rm", "-f", "bindc"]);
        },
      );

      await t.step("the container cannot see or signal the user's other processes", async () => {
        outsider = new Deno.Command("setpriv", {
          args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "sleep", "600"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        const pid = outsider.pid;
        await waitFor(
          "the outsider",
          () => processesOf(user.uid).some((p) => p.includes("sleep 600")),
        );
        writeAs(
          user,
          `${user.home}/kill.yaml`,
          `name: killc\nimage: busybox:1.36\nimagePullPolicy: IfNotPresent\n` +
            `args: ["sh", "-c", "ls /proc/${pid} >/dev/null 2>&1 && echo sees || echo blind; ` +
            `kill -9 ${pid} && echo killed || echo cannot-kill; kill -9 -1; echo done"]\n`,
        );
        await rklOkAs(user, ["container", "run", "--network", "none", "kill.yaml"]);
        await waitFor(
          "the container to finish",
          async () => /done/.test(await rklOkAs(user, ["container", "logs", "killc"])),
        );
        const logs = await rklOkAs(user, ["container", "logs", "killc"]);
        assert.match(logs, /blind/);
        assert.match(logs, /cannot-kill/);
        assert.ok(processesOf(user.uid).some((p) => p.startsWith(`${pid} `)), "outsider alive");
        await rklOkAs(user, ["container", "rm", "-f", "killc"]);
        outsider.kill("SIGKILL");
        await outsider.status;
        outsider = undefined;
      });

      await t.step(
        "slirp4netns: a published port answers on 127.0.0.1, outbound works",
        async () => {
          const port = freePort();
          const addr = hostAddress();
          assert.ok(addr, "a non-loopback IPv4 address on this host");
          const listener = Deno.listen({ hostname: addr, port: 0 });
          const outPort = (listener.addr as Deno.NetAddr).port;
          const got = (async () => {
            const c = await listener.accept();
            const buf = new Uint8Array(64);
            const n = await c.read(buf);
            c.close();
            return dec.decode(buf.subarray(0, n ?? 0));
          })();
          writeAs(
            user,
            `${user.home}/web.yaml`,
            `name: web\nimage: busybox:1.36\nimagePullPolicy: IfNotPresent\n` +
              `ports:\n  - containerPort: 8080\n    hostPort: ${port}\n` +
              `resources:\n  limits:\n    memory: 64Mi\n` +
              `args: ["sh", "-c", "echo hello-rootless > /tmp/index.html; ` +
              `echo ping | nc -w 5 ${addr} ${outPort}; exec httpd -f -p 8080 -h /tmp"]\n`,
          );
          const r = await rklAs(user, ["container", "run", "web.yaml"]);
          assert.equal(r.code, 0, r.stderr);
          // The memory limit cannot apply here: one warning names it.
          const warnings = r.stderr.trim().split("\n").filter(Boolean);
          assert.equal(warnings.length, 1, r.stderr);
          assert.match(warnings[0], /web\.yaml:\d+:\d+: resources\.limits\.memory not applied/);
          assert.equal(await got, "ping\n");
          listener.close();
          const body = await bodyWhenUp(`http://127.0.0.1:${port}/index.html`);
          assert.equal(body, "hello-rootless\n");
          const list = await rklOkAs(user, ["container", "list"]);
          assert.match(
            list,
            new RegExp(`web +running +\\d+ +10\\.0\\.2\\.100 +0\\.0\\.0\\.0:${port}->8080/tcp`),
          );
          await rklOkAs(user, ["container", "stop", "-t", "1", "web"]);
          await rklOkAs(user, ["container", "rm", "web"]);
          // The port is free again: slirp4netns is gone.
          await waitFor("the port to close", async () => {
            try {
              (await Deno.connect({ hostname: "127.0.0.1", port })).close();
              return false;
            } catch {
              return true;
            }
          });
        },
      );

      await t.step("--strict-limits and a low port: refused, one line, exit 2", async () => {
        const strict = await rklAs(user, ["container", "run", "--strict-limits", "web.yaml"]);
        assert.equal(strict.code, 2, strict.stderr);
        assert.equal(strict.stderr.trim().split("\n").length, 1, strict.stderr);
        assert.match(
          strict.stderr,
          /web\.yaml:\d+:\d+: .*resources\.limits\.memory cannot be applied rootless/,
        );
        writeAs(
          user,
          `${user.home}/low.yaml`,
          `name: low\nimage: busybox:1.36\nimagePullPolicy: IfNotPresent\n` +
            `ports:\n  - containerPort: 80\n    hostPort: 80\nargs: ["true"]\n`,
        );
        const low = await rklAs(user, ["container", "run", "low.yaml"]);
        assert.equal(low.code, 2, low.stderr);
        assert.match(
          low.stderr,
          /low\.yaml:6:15: .*host port 80 is below net\.ipv4\.ip_unprivileged_port_start/,
        );
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
      });

      await t.step("census: nothing of the user is left", async () => {
        assert.equal((await rklOkAs(user, ["container", "list", "-q"])).trim(), "");
        await rklOkAs(user, ["image", "rm", "busybox:1.36"]);
        const pause = pausePid(user);
        await waitFor("only the pause process", () => {
          const ps = processesOf(user.uid);
          return ps.length === 1 && ps[0].startsWith(`${pause} `);
        });
        assert.deepEqual(userMounts(user), []);
        assert.deepEqual([...Deno.readDirSync(`${user.xdg}/rkl/netns`)], []);
        assert.deepEqual(leftFiles(`${user.xdg}/rkl`), []);
        // The pause process is stopped as podman's is: by hand, when no container runs.
        Deno.kill(pause, "SIGKILL");
        await waitFor("no process of the user", () => processesOf(user.uid).length === 0);
      });
    } finally {
      outsider?.kill("SIGKILL");
      if (u) {
        for (const p of processesOf(u.uid)) {
          try {
            Deno.kill(Number(p.split(" ")[0]), "SIGKILL");
          } catch { /* gone */ }
        }
        await waitFor("the user's processes to end", () => processesOf(u!.uid).length === 0)
          .catch(() => {});
        await new Deno.Command("userdel", { args: [u.name] }).output();
        withoutUser("/etc/subuid", u.name);
        withoutUser("/etc/subgid", u.name);
      }
      await registry?.stop();
      if (tunMode !== undefined) Deno.chmodSync("/dev/net/tun", tunMode);
      if (u) await Deno.remove(u.dir, { recursive: true });
    }
  },
});
