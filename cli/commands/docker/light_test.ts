import assert from "node:assert/strict";
import { runLight } from "./light.ts";

/** A state root with exited containers as rkl writes them (no process to look up). */
function stateRoot(): {
  root: string;
  runRoot: string;
  out: string[];
  run(argv: string[]): Promise<number | undefined>;
  [Symbol.dispose](): void;
} {
  const dir = Deno.makeTempDirSync({ prefix: "rkl-light-" });
  const root = `${dir}/root`, runRoot = `${dir}/run`;
  Deno.mkdirSync(`${root}/records/containers`, { recursive: true });
  Deno.mkdirSync(`${root}/exits`, { recursive: true });
  Deno.mkdirSync(runRoot, { recursive: true });
  Deno.writeTextFileSync(`${runRoot}/epoch`, "boot-1\n");
  const add = (name: string, over: Record<string, unknown> = {}) => {
    const d = `${root}/containers/${name}`;
    Deno.mkdirSync(d, { recursive: true });
    Deno.writeTextFileSync(
      `${d}/config.json`,
      JSON.stringify({
        ociVersion: "1.0.2",
        process: { args: ["sleep", name.length > 2 ? "1" : "2"] },
      }),
    );
    const rec = {
      schemaVersion: 1,
      kind: "container",
      name,
      id: name,
      status: "exited",
      exitCode: 3,
      image: "busybox",
      labels: { team: name === "c1" ? "a" : "b" },
      createdAt: `2026-01-01T00:00:0${name.length}Z`,
      finishedAt: new Date(Date.now() - 5_000).toISOString(),
      cgroupPath: `rkl-${name}/x`,
      dirs: { config: `${d}/config.json`, exitDir: `${root}/exits` },
      ...over,
    };
    Deno.writeTextFileSync(`${root}/records/containers/${name}.json`, JSON.stringify(rec));
  };
  add("c1");
  add("c22", { createdAt: "2026-01-01T00:00:09Z" });
  const out: string[] = [];
  const env = { RKL_ROOT: root, RKL_RUN_ROOT: runRoot, RKL_CGROUP_PARENT: "rkl-c1" };
  return {
    root,
    runRoot,
    out,
    run: (argv) => runLight(argv, { env: () => env, cwd: () => "/", write: (t) => out.push(t) }),
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("runLight() prints ps from the records: -aq, filters, templates, newest first", async () => {
  using s = stateRoot();
  // c22's cgroup is not under RKL_CGROUP_PARENT: a record the short path does not take.
  assert.equal(await s.run(["ps", "-a"]), undefined);
  const rec = JSON.parse(Deno.readTextFileSync(`${s.root}/records/containers/c22.json`));
  rec.cgroupPath = "rkl-c1/c22";
  Deno.writeTextFileSync(`${s.root}/records/containers/c22.json`, JSON.stringify(rec));
  assert.equal(await s.run(["ps", "-aq"]), 0);
  assert.equal(s.out.pop(), "c22\nc1\n");
  assert.equal(await s.run(["ps"]), 0);
  assert.equal(s.out.pop(), "NAMES   IMAGE   COMMAND   CREATED   STATUS   PORTS\n");
  assert.equal(
    await s.run([
      "--debug",
      "ps",
      "-a",
      "--filter=label=team=a",
      "--format",
      "{{.Names}} {{.Status}} {{.Command}}",
    ]),
    0,
  );
  assert.equal(s.out.pop(), "c1 Exited (3) 5 seconds ago sleep 2\n");
});

Deno.test("runLight() steps aside (undefined, nothing printed) for what only the full command does", async () => {
  using s = stateRoot();
  const rec = JSON.parse(Deno.readTextFileSync(`${s.root}/records/containers/c22.json`));
  Deno.writeTextFileSync(
    `${s.root}/records/containers/c22.json`,
    JSON.stringify({ ...rec, cgroupPath: "rkl-c1/c22" }),
  );
  for (
    const argv of [
      ["ps", "--help"],
      ["ps", "-s"],
      ["ps", "--filter", "colour=red"], // the full command says why
      ["ps", "--format", "{{.Nope}}"],
      ["ps", "NAME"],
      ["ps", "-n"],
      ["stats"], // the live table
      ["stats", "--no-stream", "--format", "{{.Nope}}"],
      ["--root", "/a:b", "ps"],
      ["exec", "c1", "ps"],
    ]
  ) {
    assert.equal(await s.run(argv), undefined, argv.join(" "));
  }
  // A record from another schema, a foreign config path, a running container without its process.
  for (
    const over of [
      { schemaVersion: 2 },
      { dirs: { config: "/etc/passwd", exitDir: `${s.root}/exits` } },
      { status: "running", pid: 2 ** 22 + 7, pidStart: 1 },
      { name: "other" },
    ]
  ) {
    Deno.writeTextFileSync(
      `${s.root}/records/containers/c22.json`,
      JSON.stringify({ ...rec, cgroupPath: "rkl-c1/c22", ...over }),
    );
    assert.equal(await s.run(["ps", "-a"]), undefined, JSON.stringify(over));
  }
  assert.deepEqual(s.out, []);
  // A running record whose exit code conmon wrote: exited, as refresh() shows it.
  Deno.writeTextFileSync(
    `${s.root}/records/containers/c22.json`,
    JSON.stringify({ ...rec, cgroupPath: "rkl-c1/c22", status: "running", pid: 1, pidStart: 0 }),
  );
  Deno.writeTextFileSync(`${s.root}/exits/c22`, "137\n");
  assert.equal(await s.run(["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}"]), 0);
  assert.match(s.out.pop()!, /^c22 exited Exited \(137\) /);
});

Deno.test("runLight() leaves a user without root to the full command (its own roots, its namespace)", async () => {
  using s = stateRoot();
  const rec = JSON.parse(Deno.readTextFileSync(`${s.root}/records/containers/c22.json`));
  rec.cgroupPath = "rkl-c1/c22";
  Deno.writeTextFileSync(`${s.root}/records/containers/c22.json`, JSON.stringify(rec));
  const env = { RKL_ROOT: s.root, RKL_RUN_ROOT: s.runRoot, RKL_CGROUP_PARENT: "rkl-c1" };
  const io = (uid: number, extra: Record<string, string> = {}) => ({
    env: () => ({ ...env, ...extra }),
    cwd: () => "/",
    write: (t: string) => s.out.push(t),
    uid: () => uid,
  });
  assert.equal(await runLight(["ps", "-aq"], io(0)), 0);
  assert.equal(s.out.pop(), "c22\nc1\n");
  assert.equal(await runLight(["ps", "-aq"], io(1000)), undefined);
  assert.equal(await runLight(["stats", "--no-stream"], io(1000)), undefined);
  assert.equal(await runLight(["ps", "-aq"], io(0, { RKL_ROOTLESS: "1" })), undefined);
  assert.equal(s.out.length, 0);
});

Deno.test("ps --format with no containers prints nothing, and still refuses an unknown field", async () => {
  const { renderFormat } = await import("./ps_format.ts");
  assert.equal(renderFormat("{{.Names}} {{.ID}}", [], []), "");
  assert.equal(renderFormat("table {{.Names}}", [], []).trim(), "NAMES");
  assert.throws(() => renderFormat("{{.Nope}}", [], []), /is not supported/);
});
