/**
 * The docker-style commands, typed as a docker user types them: `rkl run -d
 * --name web -p 127.0.0.1:PORT:80 busybox httpd -f -p 80`, `ps`, `logs`,
 * `exec`, `stop`/`start`/`restart`, `kill -s`, `wait`, `port`, `cp` both
 * ways, `rm -f`, `run --rm`. `busybox` comes from a local docker-registry
 * behind a docker.io mirror entry (never the internet). Each test ends with
 * the host census as it began: `run --rm` leaves nothing.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import type { Registry } from "../_helpers/oci.ts";
import { busyboxMirror } from "../_helpers/busybox_mirror.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry");
const env = ready ? await makeEnv("dcli", 47) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;

async function setUp(): Promise<void> {
  if (registry) return;
  // Pulled before the first census: the image stays for the file's tests.
  registry = await busyboxMirror(env!);
}

/** `rkl ARGS` with the test's network in place of docker's default bridge. */
const net = () => ["--network", env!.network];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function wget(port: number, path = "/"): Promise<{ code: number; body: string }> {
  const r = await new Deno.Command("timeout", {
    args: ["5", "wget", "-qO-", `127.0.0.1:${port}${path}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return { code: r.code, body: new TextDecoder().decode(r.stdout) };
}

test("run -d -p serves httpd on the host port; ps, port, exec, logs, top, stop/start/restart, rm -f", async () => {
  await setUp();
  const port = freePort();
  const out = await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "web",
    "-p",
    `127.0.0.1:${port}:80`,
    "--label",
    "tier=front",
    ...net(),
    "busybox",
    "httpd",
    "-f",
    "-p",
    "80",
  ]);
  assert.equal(out, "web\n", "-d prints the name");
  // A page copied in through rkl cp, served by the container.
  Deno.writeTextFileSync(`${env!.dir}/index.html`, "hello from rkl\n");
  await rklOk(env!, ["cp", `${env!.dir}/index.html`, "web:/index.html"]);
  await waitFor("httpd to answer", async () => (await wget(port)).code === 0);
  assert.equal((await wget(port)).body, "hello from rkl\n");

  // ps, -q, filters, format
  const ps = await rklOk(env!, ["ps"]);
  assert.match(ps, /^NAMES\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS/);
  assert.match(
    ps,
    new RegExp(`web\\s+busybox\\s+"httpd -f -p 80"\\s+.*Up .*127\\.0\\.0\\.1:${port}->80/tcp`),
  );
  assert.equal(await rklOk(env!, ["ps", "-q"]), "web\n");
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "name=we"]), "web\n");
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "name=nope"]), "");
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "label=tier=front"]), "web\n");
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "label=tier=back"]), "");
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "status=exited"]), "");
  assert.equal(
    await rklOk(env!, ["ps", "--format", '{{.Names}}|{{.State}}|{{.Label "tier"}}']),
    "web|running|front\n",
  );
  const json = JSON.parse(await rklOk(env!, ["ps", "--format", "json"]));
  assert.equal(json.Names, "web");
  assert.equal(json.Image, "busybox");
  const bad = await rkl(env!, ["ps", "--format", "{{.Nope}}"]);
  assert.equal(bad.code, 2, bad.stderr);

  // port
  assert.equal(await rklOk(env!, ["port", "web"]), `80/tcp -> 127.0.0.1:${port}\n`);
  assert.equal(await rklOk(env!, ["port", "web", "80"]), `127.0.0.1:${port}\n`);
  const noPort = await rkl(env!, ["port", "web", "81"]);
  assert.notEqual(noPort.code, 0);
  assert.match(noPort.stderr, /No public port "81\/tcp"/);

  // exec: output, -e, -w, the exit code passed through
  assert.equal(await rklOk(env!, ["exec", "web", "cat", "/etc/hostname"]), "web\n");
  assert.equal(
    await rklOk(env!, [
      "exec",
      "-e",
      "FOO=bar",
      "-w",
      "/etc",
      "web",
      "sh",
      "-c",
      "echo $FOO $(pwd)",
    ]),
    "bar /etc\n",
  );
  assert.equal((await rkl(env!, ["exec", "web", "sh", "-c", "exit 3"])).code, 3);

  // top: the container's processes only
  const top = await rklOk(env!, ["top", "web"]);
  assert.match(top, /^UID\s+PID/);
  assert.match(top, /httpd -f -p 80/);
  assert.equal(top.trim().split("\n").length, 2, top);

  // stop, start, restart: the port answers again each time
  await rklOk(env!, ["stop", "-t", "1", "web"]);
  assert.equal(await rklOk(env!, ["ps", "-q"]), "");
  assert.match(await rklOk(env!, ["ps", "-a"]), /web .*Exited \(/);
  assert.equal(await rklOk(env!, ["ps", "-q", "--filter", "status=exited"]), "web\n");
  await rklOk(env!, ["start", "web"]);
  await waitFor("httpd after start", async () => (await wget(port)).code === 0);
  await rklOk(env!, ["restart", "-t", "1", "web"]);
  await waitFor("httpd after restart", async () => (await wget(port)).code === 0);
  assert.equal(
    (await wget(port)).body,
    "hello from rkl\n",
    "the container's files outlive restarts",
  );

  // inspect
  const insp = JSON.parse(await rklOk(env!, ["inspect", "web"]));
  assert.equal(insp[0].name, "web");
  assert.equal(insp[0].status, "running");

  // rm without -f is refused (rename: tests/e2e/docker_rename_test.ts)
  const rm = await rkl(env!, ["rm", "web"]);
  assert.notEqual(rm.code, 0);
  assert.match(rm.stderr, /it is running/);
  await rklOk(env!, ["rm", "-f", "web"]);
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");
  assert.notEqual((await wget(port)).code, 0, "the port is closed again");
});

test("logs, --tail, kill -s and wait pass exit codes through", async () => {
  await setUp();
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "talk",
    ...net(),
    "busybox",
    "sh",
    "-c",
    'echo one; echo two; echo three >&2; trap "exit 7" TERM; while true; do sleep 0.1; done',
  ]);
  await waitFor("its output", async () => (await rklOk(env!, ["logs", "talk"])).includes("two"));
  const logs = await rkl(env!, ["logs", "talk"]);
  assert.equal(logs.stdout, "one\ntwo\n");
  assert.equal(logs.stderr, "three\n");
  assert.equal((await rkl(env!, ["logs", "--tail", "1", "talk"])).stderr, "three\n");
  await rklOk(env!, ["kill", "-s", "TERM", "talk"]);
  assert.equal(await rklOk(env!, ["wait", "talk"]), "7\n");
  const dead = await rkl(env!, ["kill", "talk"]);
  assert.notEqual(dead.code, 0);
  assert.match(dead.stderr, /not running/);
  await rklOk(env!, ["rm", "talk"]);

  await rklOk(env!, ["run", "-d", "--name", "sleeper", ...net(), "busybox", "sleep", "300"]);
  await rklOk(env!, ["kill", "sleeper"]);
  assert.equal(await rklOk(env!, ["wait", "sleeper"]), "137\n", "SIGKILL: 128+9");
  await rklOk(env!, [
    "run",
    "-d",
    "--name",
    "nine",
    "--network",
    "none",
    "busybox",
    "sh",
    "-c",
    "sleep 0.3; exit 9",
  ]);
  assert.equal(await rklOk(env!, ["wait", "nine"]), "9\n");
  await rklOk(env!, ["rm", "sleeper", "nine"]);
});

test("run in the foreground: output, exit code, --rm leaves nothing; -d --rm goes at exit", async () => {
  await setUp();
  const r = await rkl(env!, [
    "run",
    "--rm",
    "--name",
    "once",
    "-e",
    "WHO=rkl",
    ...net(),
    "busybox",
    "sh",
    "-c",
    'echo "hi $WHO"; echo oops >&2; exit 3',
  ]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, "hi rkl\n");
  assert.equal(r.stderr, "oops\n");
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "", "--rm removed it");
  // No name given: a generated one; stdin piped in with -i.
  const cat = await rkl(env!, ["run", "--rm", "-i", "--network", "none", "busybox", "cat"], {
    stdin: "through stdin\n",
  });
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, "through stdin\n");
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "");

  const name = (await rklOk(env!, ["run", "-d", "--rm", ...net(), "busybox", "sleep", "1"])).trim();
  assert.match(name, /^[a-z]+-[a-z]+(-\d+)?$/, "a generated adjective-surname name");
  assert.equal(await rklOk(env!, ["ps", "-q"]), `${name}\n`);
  await waitFor(
    "-d --rm to remove it",
    async () => (await rklOk(env!, ["ps", "-a", "-q"])) === "",
    15_000,
  );
});

test("cp both ways: symlinks resolve inside the container's root, magic links are refused", async () => {
  await setUp();
  await rklOk(env!, ["run", "-d", "--name", "box", "--network", "none", "busybox", "sleep", "300"]);
  // Links in the container that point "out": absolute, and by '..' past its root.
  await rklOk(env!, [
    "exec",
    "box",
    "sh",
    "-c",
    "ln -s /../../../../../../etc /tmp/escdir && ln -s ../../../../../../../etc/hostname /tmp/esc && mkdir -p /data/sub && echo deep > /data/sub/f && ln -s f /data/sub/l",
  ]);
  const hostHostname = Deno.readTextFileSync("/etc/hostname");
  assert.notEqual(hostHostname, "box\n");
  const d = env!.dir;
  // Through a directory link: the container's /etc, not the host's.
  await rklOk(env!, ["cp", "box:/tmp/escdir/hostname", `${d}/got1`]);
  assert.equal(Deno.readTextFileSync(`${d}/got1`), "box\n");
  // The link itself by default (docker's rule); -L follows it, inside the root.
  await rklOk(env!, ["cp", "box:/tmp/esc", `${d}/got2`]);
  assert.ok(Deno.lstatSync(`${d}/got2`).isSymlink);
  await rklOk(env!, ["cp", "-L", "box:/tmp/esc", `${d}/got3`]);
  assert.equal(Deno.readTextFileSync(`${d}/got3`), "box\n");
  // A directory, with its link kept as a link.
  await rklOk(env!, ["cp", "box:/data", `${d}/data`]);
  assert.equal(Deno.readTextFileSync(`${d}/data/sub/f`), "deep\n");
  assert.equal(Deno.readLinkSync(`${d}/data/sub/l`), "f");
  // Into the container through the escaping link: it lands in the container's /etc.
  const marker = `rkl-cp-${crypto.randomUUID().slice(0, 8)}`;
  Deno.writeTextFileSync(`${d}/${marker}`, "planted\n");
  await rklOk(env!, ["cp", `${d}/${marker}`, `box:/tmp/escdir/${marker}`]);
  assert.throws(() => Deno.statSync(`/etc/${marker}`), Deno.errors.NotFound);
  assert.equal(await rklOk(env!, ["exec", "box", "cat", `/etc/${marker}`]), "planted\n");
  // A host directory into an existing container directory: copied into it.
  Deno.mkdirSync(`${d}/tree/a`, { recursive: true });
  Deno.writeTextFileSync(`${d}/tree/a/x`, "x\n");
  await rklOk(env!, ["cp", `${d}/tree`, "box:/data"]);
  assert.equal(await rklOk(env!, ["exec", "box", "cat", "/data/tree/a/x"]), "x\n");
  // /proc/1/root inside is a magic link: refused, nothing copied.
  const magic = await rkl(env!, ["cp", "box:/proc/1/root/etc/hostname", `${d}/got4`]);
  assert.equal(magic.code, 1, magic.stderr);
  assert.match(magic.stderr, /magic link/);
  assert.throws(() => Deno.statSync(`${d}/got4`), Deno.errors.NotFound);
  const missing = await rkl(env!, ["cp", "box:/nope", `${d}/got5`]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /does not exist in container "box"/);
  await rklOk(env!, ["rm", "-f", "box"]);
});

test("bad input: one line, exit 2; a YAML file points at container run", async () => {
  await setUp();
  const cases: [string[], RegExp][] = [
    [["run", "pod.yaml"], /rkl container run pod\.yaml/],
    [["run", "--name", "Bad_Name", "busybox"], /DNS labels/],
    [["run", "-p", "80:99999", "busybox"], /port number/],
    [["run", "-v", "a/b:/data", "busybox"], /"a\/b" is not a volume name/],
    [["run", "--restart", "sometimes", "busybox"], /--restart "sometimes"/],
    [["run", "--security-opt", "apparmor=foo", "busybox"], /--security-opt "apparmor=foo"/],
    [["run", "--pull", "often", "busybox"], /often/],
    [["kill", "-s", "NOPE", "x"], /not a signal/],
  ];
  for (const [args, want] of cases) {
    const r = await rkl(env!, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(" "));
  }
  assert.equal(await rklOk(env!, ["ps", "-a", "-q"]), "", "nothing half-created");
});

// Before any test takes its census (the pulled image is part of the baseline).
if (ready) {
  try {
    await setUp();
  } catch (e) {
    await registry?.stop();
    throw e;
  }
}

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
