/**
 * The fault-injection suite: rkl killed with SIGKILL at every trace point of
 * a create, a runtime and a CNI plugin that fail or hang at a chosen step,
 * damaged records of each kind, lost records, parallel runs and removals,
 * and SIGINT during a create. After each case the host census must equal
 * the one taken before: nothing left, whatever broke.
 */
import assert from "node:assert/strict";
import { census } from "../_helpers/census.ts";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk, waitFor } from "../_helpers/env.ts";
import { makeFaults } from "../_helpers/faults.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "runc");
const env = ready ? await makeEnv("fault", 6) : undefined;
const { test, baseline } = censusTests(ready, () => env!);

const BUSYBOX = `${REPO}/bundles/busybox`;
/** Figures for docs/security.md: [tried, passed] per case. */
const tally = new Map<string, [number, number]>();
function count(what: string, ok: boolean): void {
  const [t, p] = tally.get(what) ?? [0, 0];
  tally.set(what, [t + 1, p + (ok ? 1 : 0)]);
}

async function write(name: string, text: string): Promise<string> {
  const path = `${env!.dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

const containerFile = (name: string, port: number) =>
  `name: ${name}\nimage: ${BUSYBOX}\ncommand: [sleep, "60"]\nports: [{containerPort: 80, hostPort: ${port}}]\n`;

const podFile = (name: string, port: number, init = '["true"]') =>
  `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  volumes: [{name: scratch, emptyDir: {}}]
  initContainers:
    - {name: init, image: ${BUSYBOX}, command: ${init}}
  containers:
    - name: app
      image: ${BUSYBOX}
      command: [sleep, "60"]
      ports: [{containerPort: 80, hostPort: ${port}}]
      volumeMounts: [{name: scratch, mountPath: /s, subPath: part}]
`;

/** Trace points a command reaches (RKL_TRACE=1 prints one line per point). */
async function tracePoints(args: string[]): Promise<number> {
  const r = await rkl({ ...env!, env: { ...env!.env, RKL_TRACE: "1" } }, args);
  assert.equal(r.code, 0, r.stderr);
  return r.stderr.split("\n").filter((l) => l.startsWith("trace: ")).length;
}

test("kill -9 at every point of a container and a pod create, then rm -f or gc, leaves nothing", async () => {
  const cfile = await write("k.yaml", containerFile("k", 18191));
  const pfile = await write("kp.yaml", podFile("kp", 18192));
  const runC = ["container", "run", "--network", env!.network, cfile];
  const runP = ["pod", "run", "--network", env!.network, pfile];
  const nC = await tracePoints(runC);
  await rklOk(env!, ["container", "rm", "-f", "k"]);
  const nP = await tracePoints(runP);
  await rklOk(env!, ["pod", "rm", "-f", "kp"]);
  assert.ok(nC + nP >= 20, `only ${nC + nP} kill points`);
  const cases: [string[], number, "container" | "pod", string][] = [
    ...Array.from({ length: nC }, (_, i) => [runC, i + 1, "container", "k"] as const),
    ...Array.from({ length: nP }, (_, i) => [runP, i + 1, "pod", "kp"] as const),
  ].map((c) => [...c] as [string[], number, "container" | "pod", string]);
  for (const [args, point, kind, name] of cases) {
    const killed = await rkl(
      { ...env!, env: { ...env!.env, RKL_TEST_KILL_AT: String(point) } },
      args,
    );
    assert.equal(killed.code, 137, `point ${point}: ${killed.stderr}`);
    // Listing works whatever state the kill left.
    await rklOk(env!, [kind, "list"]);
    const hasRecord = (await rklOk(env!, [kind, "list", "-q"])).split("\n").includes(name);
    const useGc = point % 2 === 0 || !hasRecord;
    const clean = useGc ? await rkl(env!, ["gc"]) : await rkl(env!, [kind, "rm", "-f", name]);
    assert.equal(clean.code, 0, `point ${point}, ${useGc ? "gc" : "rm -f"}: ${clean.stderr}`);
    if (useGc && (await rklOk(env!, [kind, "list", "-q"])).split("\n").includes(name)) {
      // gc keeps what a record describes whole (the kill came after the last step that made
      // something): that is the user's object, and rm -f removes it.
      // Only a whole one: a half-made one is gc's to remove, and the census below would say so.
      const line = (await rklOk(env!, [kind, "list"])).split("\n").find((l) =>
        l.split(/\s+/)[0] === name
      );
      assert.match(line ?? "", /\brunning\b/i, `point ${point}: gc kept ${kind} ${name}`);
      assert.equal((await rkl(env!, [kind, "rm", "-f", name])).code, 0);
    }
    const now = await census(env!);
    const ok = JSON.stringify(now) === JSON.stringify(baseline());
    count(`kill -9 during ${kind} create (${useGc ? "gc" : "rm -f"})`, ok);
    assert.deepEqual(now, baseline(), `left after kill at ${kind} point ${point}`);
  }
});

test("a runtime that fails or hangs at create, start or delete: rollback or rm -f leaves nothing", async () => {
  const faults = await makeFaults(env!.dir);
  const run = (file: string, kind: "container" | "pod") =>
    rkl({ ...env!, env: { ...env!.env, RKL_CALL_TIMEOUT_MS: "6000" } }, [
      "--runtime",
      faults.runtime,
      kind,
      "run",
      "--network",
      env!.network,
      file,
    ]);
  const cfile = await write("f.yaml", containerFile("f", 18193));
  const pfile = await write("fp.yaml", podFile("fp", 18194));
  for (const [kind, file, name] of [["container", cfile, "f"], ["pod", pfile, "fp"]] as const) {
    for (
      const [step, mode] of [["create", "fail"], ["start", "fail"], ["create", "hang"], [
        "start",
        "hang",
      ]] as const
    ) {
      await faults.set(step, mode);
      const r = await run(file, kind);
      await faults.set();
      assert.notEqual(r.code, 0, `${kind} ${step} ${mode} succeeded`);
      if (mode === "fail") assert.match(r.stderr, /injected failure/, r.stderr);
      assert.equal((await rklOk(env!, [kind, "list", "-q"])).trim(), "", `${kind} ${step} ${mode}`);
      const ok = JSON.stringify(await census(env!)) === JSON.stringify(baseline());
      count(`runtime ${step} ${mode} (${kind})`, ok);
      assert.deepEqual(await census(env!), baseline(), `${kind}: runtime ${step} ${mode}`);
    }
    // delete fails or hangs: rm -f reports it and keeps the record; once delete works, rm -f finishes.
    for (const mode of ["fail", "hang"] as const) {
      await faults.set();
      assert.equal((await run(file, kind)).code, 0);
      await faults.set("delete", mode);
      const rm1 = await rkl(
        { ...env!, env: { ...env!.env, RKL_CALL_TIMEOUT_MS: "1500" } },
        [kind, "rm", "-f", name],
      );
      await faults.set();
      assert.notEqual(rm1.code, 0, `${kind}: rm -f with delete ${mode} succeeded`);
      assert.match(rm1.stderr, /injected failure at delete|Cannot remove everything|exited with/);
      assert.ok((await rklOk(env!, [kind, "list", "-q"])).includes(name), "record kept for retry");
      await rklOk(env!, [kind, "rm", "-f", name]);
      const ok = JSON.stringify(await census(env!)) === JSON.stringify(baseline());
      count(`runtime delete ${mode}, then rm -f (${kind})`, ok);
      assert.deepEqual(await census(env!), baseline(), `${kind}: delete ${mode}, then rm -f`);
    }
  }
});

test("a CNI plugin that fails or hangs at ADD or DEL: rollback or a second rm -f leaves nothing", async () => {
  const faults = await makeFaults(env!.dir);
  const e = { ...env!, env: { ...env!.env, RKL_CNI_PATH: faults.cniPath } };
  const cfile = await write("n.yaml", containerFile("n", 18195));
  const pfile = await write("np.yaml", podFile("np", 18196));
  const slow = { ...e, env: { ...e.env, RKL_CALL_TIMEOUT_MS: "2000" } };
  for (const [kind, file, name] of [["container", cfile, "n"], ["pod", pfile, "np"]] as const) {
    for (const mode of ["fail", "hang"] as const) {
      await faults.set("ADD", mode);
      const r = await rkl(slow, [kind, "run", "--network", env!.network, file]);
      await faults.set();
      assert.notEqual(r.code, 0);
      if (mode === "fail") assert.match(r.stderr, /injected failure at ADD/, r.stderr);
      assert.deepEqual(await census(env!), baseline(), `${kind}: CNI ADD ${mode}`);
      count(`CNI ADD ${mode} (${kind})`, true);

      await rklOk(e, [kind, "run", "--network", env!.network, file]);
      await faults.set("DEL", mode);
      const rm1 = await rkl(slow, [kind, "rm", "-f", name]);
      await faults.set();
      assert.notEqual(rm1.code, 0, `a CNI DEL that ${mode}s is reported`);
      await rklOk(e, [kind, "rm", "-f", name]);
      assert.deepEqual(await census(env!), baseline(), `${kind}: CNI DEL ${mode}, then rm -f`);
      count(`CNI DEL ${mode}, then rm -f (${kind})`, true);
    }
  }
});

test("damaged records of each kind are listed, never fatal, and rm -f cleans them by what is on the host", async () => {
  const healthy = await write("h.yaml", containerFile("healthy", 18197));
  const damages: [string, (text: string) => string][] = [
    ["empty", () => ""],
    ["truncated", (t) => t.slice(0, Math.floor(t.length / 2))],
    ["not JSON", () => "{{{"],
    ["wrong shape", (t) => JSON.stringify({ ...JSON.parse(t), resources: "all" })],
    ["foreign path", (t) => {
      const r = JSON.parse(t);
      return JSON.stringify({ ...r, dirs: { ...r.dirs, dir: "/etc" } });
    }],
    ["old schema", (t) => JSON.stringify({ ...JSON.parse(t), schemaVersion: 0 })],
  ];
  for (const [what, damage] of damages) {
    await rklOk(env!, ["container", "run", "--network", env!.network, healthy]);
    const vfile = await write("v.yaml", containerFile("victim", 18198));
    await rklOk(env!, ["container", "run", "--network", env!.network, vfile]);
    const rec = `${env!.root}/records/containers/victim.json`;
    await Deno.writeTextFile(rec, damage(await Deno.readTextFile(rec)));
    const list = await rklOk(env!, ["container", "list"]);
    assert.match(list, /victim\s+unknown \(damaged: /, `${what}: ${list}`);
    assert.match(list, /healthy\s+running/);
    assert.notEqual((await rkl(env!, ["container", "rm", "victim"])).code, 0, "plain rm refuses");
    await rklOk(env!, ["container", "rm", "-f", "healthy"]);
    await rklOk(env!, ["container", "rm", "-f", "victim"]);
    const ok = JSON.stringify(await census(env!)) === JSON.stringify(baseline());
    count(`damaged container record: ${what}`, ok);
    assert.deepEqual(await census(env!), baseline(), `damaged record: ${what}`);
    // /etc was never touched.
    assert.ok((await Deno.stat("/etc/passwd")).isFile);
  }
  // A damaged pod record (and one of its members).
  const pfile = await write("dp.yaml", podFile("dp", 18199));
  await rklOk(env!, ["pod", "run", "--network", env!.network, pfile]);
  await Deno.writeTextFile(`${env!.root}/records/pods/dp.json`, "{");
  await Deno.writeTextFile(`${env!.root}/records/containers/dp_app.json`, "");
  assert.match(await rklOk(env!, ["pod", "list"]), /dp\s+-\s+Unknown \(damaged: /);
  await rklOk(env!, ["pod", "rm", "-f", "dp"]);
  assert.deepEqual(await census(env!), baseline(), "damaged pod record");
  count("damaged pod record", true);
});

test("a run whose record was lost never touches the running container; gc then cleans it", async () => {
  const file = await write("lost.yaml", containerFile("lost", 18200));
  await rklOk(env!, ["container", "run", "--network", env!.network, file]);
  const pid = JSON.parse(await rklOk(env!, ["container", "state", "lost", "-o", "json"])).pid;
  await Deno.remove(`${env!.root}/records/containers/lost.json`);
  const again = await rkl(env!, ["container", "run", "--network", env!.network, file]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /is left from an earlier container of that name/);
  // The first container is untouched: running, its files and netns in place.
  assert.ok((await Deno.stat(`/proc/${pid}`)).isDirectory);
  assert.ok((await Deno.stat(`${env!.runRoot}/netns/c_lost`)).isFile);
  const dry = await rklOk(env!, ["gc", "--dry-run"]);
  assert.match(dry, /would clean container lost/);
  assert.ok((await Deno.stat(`/proc/${pid}`)).isDirectory, "dry run changes nothing");
  await rklOk(env!, ["gc"]);
  assert.equal(await rklOk(env!, ["gc"]), "nothing to clean\n");
  count("lost record, second run refused, gc", true);
});

test("20 parallel runs and 20 parallel rm -f, five times, with no failure", async () => {
  for (let round = 0; round < 5; round++) {
    const files = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => write(`p${i}.yaml`, containerFile(`par${i}`, 18300 + i)),
      ),
    );
    const runs = await Promise.all(
      files.map((f) => rkl(env!, ["container", "run", "--network", env!.network, f])),
    );
    for (const r of runs) count("parallel run", r.code === 0);
    runs.forEach((r, i) => assert.equal(r.code, 0, `run ${i}: ${r.stderr}`));
    const rms = await Promise.all(
      files.map((_, i) => rkl(env!, ["container", "rm", "-f", `par${i}`])),
    );
    for (const r of rms) count("parallel rm -f", r.code === 0);
    rms.forEach((r, i) => assert.equal(r.code, 0, `rm ${i}: ${r.stderr}`));
    assert.deepEqual(await census(env!), baseline(), `round ${round}`);
  }
});

test("SIGINT during a pod create (init container still running) rolls everything back", async () => {
  const file = await write("int.yaml", podFile("int", 18201, '[sleep, "30"]'));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}/cli/main.ts`, "pod", "run", "--network", env!.network, file],
    env: env!.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await waitFor("the init container to run", async () => {
    const s = JSON.parse((await rkl(env!, ["container", "list", "-o", "json"])).stdout || "[]");
    return s.some((c: { name: string; status: string }) =>
      c.name === "int_init" && c.status === "running"
    );
  });
  const t0 = Date.now();
  child.kill("SIGINT");
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.notEqual(out.code, 0);
  assert.match(stderr, /Cancelled by SIGINT/, stderr);
  assert.ok(Date.now() - t0 < 10_000, "the rollback did not wait for the init container");
  assert.deepEqual(await census(env!), baseline(), "SIGINT rollback");
  count("SIGINT during pod create", true);
});

cleanupAfterAll(env, () => {
  const rows = [...tally].map(([k, [t, p]]) => `${k}: ${t} tried, ${p} passed`);
  if (rows.length > 0) console.log(`fault-injection tally:\n  ${rows.join("\n  ")}`);
});
