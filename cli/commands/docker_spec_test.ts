import assert from "node:assert/strict";
import { RESTART_LABEL } from "../../src/spec/names.ts";
import {
  envEntries,
  generateName,
  parseMountFlag,
  parsePublish,
  parseVolume,
  RUN_DEFAULTS,
  type RunFlags,
  runSpec,
} from "./docker_spec.ts";
import { filterPs, psFilter, renderFormat, signalArg } from "./docker.ts";
import { argsFromHead } from "./docker/ps_format.ts";
import type { ContainerRecord } from "../../src/workloads/container.ts";

const inputs = {
  name: "web",
  envFiles: { "a.env": "# comment\nFROM_FILE=1\nBOTH=file\n\n" },
  environ: { HOME_VAR: "/root" },
  cwd: "/work",
  initBinary: "/usr/bin/catatonit",
  freePort: () => 40000,
  volumeDir: (n: string) => `/var/lib/rkl/volumes/${n}/_data`,
};
const flags = (f: Partial<RunFlags> = {}): RunFlags => ({ ...RUN_DEFAULTS, ...f });

Deno.test("runSpec() maps docker's flags onto the container spec the YAML front end builds", () => {
  const { spec } = runSpec(
    flags({
      publish: ["127.0.0.1:8080:80", "53:53/udp"],
      env: ["BOTH=flag", "HOME_VAR", "UNSET_VAR"],
      envFile: ["a.env"],
      volume: ["/srv/data:/data:ro", "./rel:/rel"],
      tmpfs: ["/run:size=1m,exec"],
      workdir: "/data",
      user: "1000",
      entrypoint: "/bin/sh",
      cpus: "0.5",
      memory: "64m",
      pidsLimit: "100",
      hostname: "h1",
      restart: "unless-stopped",
      readOnly: true,
      capAdd: ["cap_net_admin"],
      capDrop: ["ALL"],
      securityOpt: ["no-new-privileges", "seccomp=unconfined"],
      label: ["tier=front"],
      init: true,
      interactive: true,
      tty: true,
      pull: "never",
    }),
    "busybox",
    ["-c", "echo hi"],
    inputs,
  );
  assert.equal(spec.image, "busybox");
  assert.equal(spec.imagePullPolicy, "Never");
  assert.deepEqual(spec.command, ["/bin/sh"]);
  assert.deepEqual(spec.args, ["-c", "echo hi"]);
  assert.deepEqual(spec.env, [
    { name: "FROM_FILE", value: "1" },
    { name: "BOTH", value: "flag" },
    { name: "HOME_VAR", value: "/root" },
  ]);
  assert.deepEqual(spec.ports, [
    { containerPort: 80, hostPort: 8080, protocol: "TCP", hostIP: "127.0.0.1" },
    { containerPort: 53, hostPort: 53, protocol: "UDP" },
  ]);
  assert.equal(spec.mounts[0].source, "/srv/data");
  assert.equal(spec.mounts[0].readOnly, true);
  assert.equal(spec.mounts[1].source, "/work/./rel");
  assert.deepEqual(spec.mounts[2].tmpfsOptions, ["nosuid", "nodev", "size=1048576"]);
  assert.equal(spec.workingDir, "/data");
  assert.deepEqual(spec.resources, { limits: { cpu: "0.5", memory: String(64 * 1024 * 1024) } });
  assert.equal(spec.pidsLimit, 100);
  assert.equal(spec.securityContext.runAsUser, 1000);
  assert.equal(spec.securityContext.runAsGroup, 0);
  assert.equal(spec.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(spec.securityContext.capabilities, { add: ["NET_ADMIN"], drop: ["ALL"] });
  assert.equal(spec.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(spec.securityContext.seccompProfile, { type: "Unconfined" });
  assert.equal(spec.labels.tier, "front");
  assert.equal(spec.labels[RESTART_LABEL], "unless-stopped");
  assert.equal(spec.init, "/usr/bin/catatonit");
  assert.equal(spec.hostname, "h1");
  assert.equal(spec.tty, true);
  assert.equal(spec.stdin, true);
  assert.equal(spec.kubernetes, undefined, "docker semantics: no $(VAR) expansion");
});

Deno.test("runSpec() without flags keeps the image's entrypoint and cmd and pulls when missing", () => {
  const { spec } = runSpec(flags(), "busybox", [], inputs);
  assert.equal(spec.command, undefined);
  assert.equal(spec.args, undefined);
  assert.equal(spec.imagePullPolicy, "IfNotPresent");
  assert.deepEqual(spec.securityContext, {});
});

Deno.test("runSpec() refuses a YAML file, naming the command to use", () => {
  assert.throws(() => runSpec(flags(), "web.yaml", [], inputs), /rkl container run web\.yaml/);
});

Deno.test("parsePublish() takes docker's forms and refuses ranges", () => {
  assert.deepEqual(parsePublish("80", () => 41000), {
    containerPort: 80,
    hostPort: 41000,
    protocol: "TCP",
  });
  assert.equal(parsePublish("127.0.0.1::80", () => 41001).hostPort, 41001);
  assert.throws(() => parsePublish("8000-8010:80", () => 1), /ranges are not supported/);
  assert.throws(() => parsePublish("80:80/sctp", () => 1), /tcp or udp/);
});

Deno.test("parseVolume(): a name is a named volume's data dir; anonymous volumes, bad names and relative targets are refused", () => {
  const vd = inputs.volumeDir;
  assert.deepEqual(parseVolume("data:/data:ro", "/w", vd), {
    source: "/var/lib/rkl/volumes/data/_data",
    destination: "/data",
    readOnly: true,
    kind: "hostPath",
    hostPathType: "",
    namedVolume: "data",
    populate: true,
    path: ["-v", "data:/data:ro"],
  });
  // A path, as docker tells them apart: '/' or '.' first.
  assert.equal(parseVolume("./data:/data", "/w", vd).namedVolume, undefined);
  assert.equal(parseVolume("./data:/data", "/w", vd).source, "/w/./data");
  // `-v /dir`: an anonymous volume of its own, a new 64-hex name each time.
  const anon = parseVolume("/data", "/w", vd, () => "a".repeat(64));
  assert.deepEqual(
    [anon.namedVolume, anon.anonymous, anon.populate, anon.source, anon.destination],
    ["a".repeat(64), true, true, `/var/lib/rkl/volumes/${"a".repeat(64)}/_data`, "/data"],
  );
  assert.notEqual(
    parseVolume("/data", "/w", vd).namedVolume,
    parseVolume("/data", "/w", vd).namedVolume,
  );
  assert.throws(() => parseVolume("rel", "/w", vd), /absolute/);
  assert.throws(() => parseVolume("d:/data", "/w", vd), /two characters/);
  assert.throws(() => parseVolume("a..b/c:/data", "/w", vd), /not a volume name/);
  assert.throws(() => parseVolume("-x:/data", "/w", vd), /not a volume name/);
  assert.throws(() => parseVolume("pvc-db:/data", "/w", vd), /PersistentVolumeClaims/);
  assert.throws(() => parseVolume("/a:rel", "/w", vd), /absolute/);
  assert.throws(() => parseVolume("/a:/b:shared", "/w", vd), /ro or rw/);
});

Deno.test("envEntries() checks names and skips unset -e NAME", () => {
  assert.throws(() => envEntries(flags({ env: ["BAD\nNAME=x"] }), inputs), /variable name/);
  assert.deepEqual(envEntries(flags({ env: ["NOPE"] }), inputs), []);
});

Deno.test("generateName() gives adjective-surname and avoids names in use", () => {
  const seq = [0, 0, 0, 0];
  const taken = new Set(["brave-babbage"]);
  assert.equal(generateName((n) => taken.has(n), () => seq.shift() ?? 0), "brave-babbage-2");
});

const rec = (
  name: string,
  status: ContainerRecord["status"],
  labels: Record<string, string> = {},
) =>
  ({
    name,
    id: name,
    status,
    labels,
    image: "busybox",
    createdAt: "2026-01-01T00:00:00Z",
  }) as ContainerRecord;

Deno.test("psFilter() ORs one key's values and ANDs keys, as docker", () => {
  const recs = [rec("web", "running", { tier: "front" }), rec("db", "exited", { tier: "back" })];
  const names = (f: string[]) => recs.filter(psFilter(f)).map((r) => r.name);
  assert.deepEqual(names(["name=we"]), ["web"]);
  assert.deepEqual(names(["status=running", "status=exited"]), ["web", "db"]);
  assert.deepEqual(names(["label=tier=back", "status=running"]), []);
  assert.deepEqual(names(["label=tier"]), ["web", "db"]);
  assert.throws(() => psFilter(["volume=x"]), /filters by/);
});

Deno.test("renderFormat() fills fields and labels, aligns a table, refuses unknown fields", () => {
  const rows = [{ Names: "web", Status: "Up 1 second" }, { Names: "database", Status: "Created" }];
  const labels: Record<string, string>[] = [{ tier: "front" }, {}];
  assert.equal(
    renderFormat('{{.Names}}:{{ .Status }}:{{.Label "tier"}}', rows, labels),
    "web:Up 1 second:front\ndatabase:Created:\n",
  );
  assert.equal(
    renderFormat("table {{.Names}}\\t{{.Status}}", rows, labels),
    "NAMES      STATUS\nweb        Up 1 second\ndatabase   Created\n",
  );
  assert.throws(() => renderFormat("{{.Nope}}", rows, labels), /not supported/);
  assert.throws(() => renderFormat("{{json .}}", rows, labels), /not supported/);
  assert.equal(renderFormat("{{.Names}}", [{ Names: "a\x1b[2J" }], [{}]), "a\\x1b[2J\n");
});

Deno.test("signalArg() takes names with or without SIG, numbers, and refuses the rest", () => {
  assert.equal(signalArg("term"), "SIGTERM");
  assert.equal(signalArg("SIGKILL"), "SIGKILL");
  assert.equal(signalArg("9"), "9");
  assert.equal(signalArg("RTMIN+3"), "SIGRTMIN+3");
  assert.throws(() => signalArg("NOPE"), /not a signal/);
  assert.throws(() => signalArg("99"), /not a signal/);
});

Deno.test("filterPs() keeps the header and the rows whose PID is the container's", () => {
  const ps = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 httpd\nroot 43 1 other\n";
  assert.equal(filterPs(ps, new Set([42])), "UID PID PPID CMD\nroot 42 1 httpd\n");
  assert.throws(() => filterPs("USER CMD\nx y\n", new Set([1])), /PID column/);
});

Deno.test("runSpec() keeps --restart on-failure:N as the label the daemon reads; a count elsewhere is refused", () => {
  const labels = (restart: string) =>
    runSpec(flags({ restart }), "busybox", [], inputs).spec.labels;
  assert.equal(labels("on-failure:3")?.[RESTART_LABEL], "on-failure:3");
  assert.equal(labels("on-failure:0")?.[RESTART_LABEL], "on-failure");
  assert.equal(labels("unless-stopped")?.[RESTART_LABEL], "unless-stopped");
  assert.throws(() => labels("always:2"), /only with on-failure/);
  assert.throws(() => labels("on-failure:-1"), /whole number/);
});

Deno.test("argsFromHead() finds process.args in config.json's first bytes, or says it cannot", () => {
  const cfg = JSON.stringify(
    {
      ociVersion: "1.0.2",
      process: { terminal: false, user: { uid: 0 }, args: ["sh", "-c", 'echo "]"'] },
    },
    null,
    2,
  );
  assert.deepEqual(argsFromHead(cfg), ["sh", "-c", 'echo "]"']);
  assert.equal(
    argsFromHead(cfg.slice(0, cfg.indexOf("echo"))),
    undefined,
    "cut: the whole file is read",
  );
  assert.equal(argsFromHead('{"hooks":{"args":["x"]}}'), undefined);
});

Deno.test("parseMountFlag(): docker's --mount for a bind, a named volume and a tmpfs; what rkl does not apply is refused", () => {
  const vd = inputs.volumeDir;
  assert.deepEqual(parseMountFlag("type=bind,src=/srv/www/,dst=/www,readonly", vd), {
    source: "/srv/www",
    destination: "/www",
    readOnly: true,
    kind: "hostPath",
    hostPathType: "",
    path: ["--mount", "type=bind,src=/srv/www/,dst=/www,readonly"],
  });
  // The default type is volume, as docker's.
  const vol = parseMountFlag("source=data,target=/data,volume-nocopy", vd);
  assert.equal(vol.namedVolume, "data");
  assert.equal(vol.source, "/var/lib/rkl/volumes/data/_data");
  assert.equal(vol.readOnly, false);
  // volume-nocopy: the image's files are not copied into it.
  assert.equal(vol.populate, false);
  assert.equal(parseMountFlag("src=data,dst=/data", vd).populate, true);
  assert.equal(parseMountFlag("type=volume,src=data,dst=/d,readonly=false", vd).readOnly, false);
  assert.deepEqual(parseMountFlag("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777", vd), {
    source: "tmpfs",
    destination: "/t",
    readOnly: false,
    kind: "tmpfs",
    tmpfsOptions: ["noexec", "nosuid", "nodev", "size=1048576", "mode=1777"],
  });
  // No source: an anonymous volume; volume-nocopy still applies.
  const anon = parseMountFlag("type=volume,dst=/x,volume-nocopy", vd, () => "b".repeat(64));
  assert.deepEqual([anon.namedVolume, anon.anonymous, anon.populate], [
    "b".repeat(64),
    true,
    false,
  ]);
  const refused: [string, RegExp][] = [
    ["type=bind,src=./rel,dst=/x", /absolute path/],
    ["type=bind,dst=/x", /give source=/],
    ["type=volume,src=../x,dst=/x", /not a volume name/],
    ["type=bind,src=/a,dst=rel", /target=\/absolute/],
    ["type=bind,src=/a,dst=/x,bind-propagation=shared", /"bind-propagation" is not supported/],
    ["type=npipe,src=/a,dst=/x", /type must be bind, volume or tmpfs/],
    ["type=bind,src=/a,dst=/x,readonly=maybe", /readonly must be true or false/],
    ["type=bind,src=/a,src=/b,dst=/x", /"source" is given twice/],
    ["type=tmpfs,dst=/t,tmpfs-mode=rwx", /octal/],
  ];
  for (const [v, why] of refused) assert.throws(() => parseMountFlag(v, vd), why, v);
});
