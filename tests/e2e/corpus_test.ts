/**
 * The real-world corpus (tests/corpus): Pod manifests and compose files in
 * the shapes people publish, each run as a user would (`pod run` /
 * `compose up -d`), checked from inside and outside, removed, and followed
 * by a host census. A case with `fails` must be refused with one line that
 * names its file, line and field, and create nothing. The last test prints
 * the figures and holds the goal: at least 95% of the files come up fully.
 */
import assert from "node:assert/strict";
import {
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  rklOk,
  type RunResult,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

interface Check {
  in?: string;
  run?: string[];
  pod?: string;
  host?: string;
  health?: string;
  services?: string;
  file?: string;
  expect: string;
}

interface Case {
  modelledOn: string;
  licence: string;
  changes: string[];
  checks?: Check[];
  logs?: { container: string; expect: string };
  fails?: string;
}

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("corpus", 9) : undefined;
const { test } = censusTests(ready, () => env!);

const CORPUS = `${REPO}/tests/corpus`;
const results: { name: string; up: boolean; warnings: number; why?: string }[] = [];

function cases(kind: "pods" | "compose"): string[] {
  return [...Deno.readDirSync(`${CORPUS}/${kind}`)].filter((e) => e.isDirectory).map((e) => e.name)
    .sort();
}

/** Copies a case next to a `bundles` link, with DATA pointing at its own scratch dir. */
async function stage(kind: string, name: string): Promise<string> {
  const dir = `${env!.dir}/${kind}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  const copy = async (from: string, to: string) => {
    for (const e of Deno.readDirSync(from)) {
      if (e.isDirectory) {
        await Deno.mkdir(`${to}/${e.name}`, { recursive: true });
        await copy(`${from}/${e.name}`, `${to}/${e.name}`);
      } else {
        const text = await Deno.readTextFile(`${from}/${e.name}`);
        await Deno.writeTextFile(`${to}/${e.name}`, text.replaceAll("DATA/", `${dir}/data/`));
      }
    }
  };
  await copy(`${CORPUS}/${kind}/${name}`, dir);
  await Deno.symlink(`${REPO}/bundles`, `${dir}/bundles`);
  return dir;
}

/** Retries `probe` until its output matches `want` (services start in the background). */
async function eventually(
  what: string,
  want: RegExp,
  probe: () => Promise<string>,
  timeoutMs = 8_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    try {
      last = await probe();
      if (want.test(last)) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail(`${what}: ${JSON.stringify(last)} does not match ${want}`);
}

async function out(r: Promise<RunResult>): Promise<string> {
  const res = await r;
  if (res.code !== 0) throw new Error(`exit ${res.code}: ${res.stderr.trim()}`);
  return res.stdout;
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return await res.text();
}

/** A refused case: exit 2, one line, the file:line:col: field it names, and nothing made. */
function assertRefused(name: string, r: RunResult, file: string, want: string): void {
  assert.equal(r.code, 2, `${name}: exit ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${name}: one line of error: ${r.stderr}`);
  assert.match(lines[0], new RegExp(`^rkl: ${file}:\\d+:\\d+: `), `${name}: names file and line`);
  assert.match(lines[0], new RegExp(want), name);
}

const warningsOf = (stderr: string) =>
  stderr.split("\n").filter((l) => /^warning: /.test(l)).length;

for (const name of ready ? cases("pods") : []) {
  test(`corpus pod: ${name}`, async () => {
    const c: Case = JSON.parse(await Deno.readTextFile(`${CORPUS}/pods/${name}/case.json`));
    const dir = await stage("pods", name);
    const file = `${dir}/pod.yaml`;
    const r = await rkl(env!, ["pod", "run", "--network", env!.network, file], { cwd: dir });
    if (c.fails) {
      assertRefused(name, r, file, c.fails);
      results.push({ name: `pods/${name}`, up: false, warnings: 0, why: r.stderr.trim() });
      return;
    }
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const pod = r.stdout.trim().split("\n")[0];
    try {
      const state = JSON.parse(await rklOk(env!, ["pod", "state", pod, "-o", "json"]));
      const ip = String(state.ip ?? "").replaceAll(".", "\\.");
      for (const k of c.checks ?? []) {
        const want = new RegExp(k.expect.replaceAll("POD_IP", ip));
        if (k.in) {
          await eventually(
            `${name}: ${k.run!.join(" ")}`,
            want,
            () => out(rkl(env!, ["pod", "exec", pod, k.in!, "--", ...k.run!])),
          );
        } else if (k.pod) {
          const s = JSON.parse(await rklOk(env!, ["pod", "state", pod, "-o", "json"]));
          assert.match(String(s.limits[k.pod]), want, `${name}: pod ${k.pod}`);
        } else if (k.host) {
          await eventually(`${name}: GET ${k.host}`, want, () => fetchText(k.host!));
        }
      }
      if (c.logs) {
        await eventually(
          `${name}: logs`,
          new RegExp(c.logs.expect),
          () => out(rkl(env!, ["pod", "logs", pod, c.logs!.container])),
        );
      }
    } finally {
      await rklOk(env!, ["pod", "rm", "-f", pod]);
    }
    results.push({ name: `pods/${name}`, up: true, warnings: warningsOf(r.stderr) });
  });
}

for (const name of ready ? cases("compose") : []) {
  test(`corpus compose: ${name}`, async () => {
    const c: Case = JSON.parse(await Deno.readTextFile(`${CORPUS}/compose/${name}/case.json`));
    const dir = await stage("compose", name);
    const compose = (...args: string[]) =>
      rkl({ ...env!, env: { ...env!.env, HOME: dir } }, ["compose", ...args], { cwd: dir });
    const r = await compose("up", "-d");
    if (c.fails) {
      assertRefused(name, r, "compose.yaml", c.fails);
      results.push({ name: `compose/${name}`, up: false, warnings: 0, why: r.stderr.trim() });
      return;
    }
    try {
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      for (const k of c.checks ?? []) {
        const want = new RegExp(k.expect);
        if (k.in) {
          await eventually(
            `${name}: ${k.in}: ${k.run!.join(" ")}`,
            want,
            () => out(compose("exec", k.in!, ...k.run!)),
          );
        } else if (k.health !== undefined) {
          await eventually(`${name}: health of ${k.health}`, want, async () => {
            const ps = JSON.parse(await out(compose("ps", "-o", "json"))) as {
              service: string;
              health: string | null;
            }[];
            return String(ps.find((p) => p.service === k.health)?.health);
          });
        } else if (k.services !== undefined) {
          const ps = JSON.parse(await out(compose("ps", "-o", "json"))) as { service: string }[];
          assert.match(ps.map((p) => p.service).sort().join(" "), want, `${name}: services`);
        } else if (k.file) {
          await eventually(`${name}: ${k.file}`, want, () => Deno.readTextFile(`${dir}/${k.file}`));
        } else if (k.host) {
          await eventually(`${name}: GET ${k.host}`, want, () => fetchText(k.host!));
        }
      }
    } finally {
      // A 1 s grace: the stand-ins run as PID 1 without a TERM handler.
      await compose("down", "-v", "-t", "1");
    }
    results.push({ name: `compose/${name}`, up: true, warnings: warningsOf(r.stderr) });
  });
}

Deno.test({
  name: "corpus: figures, and at least 95% of the files come up fully",
  ignore: !ready,
  fn: () => {
    const total = cases("pods").length + cases("compose").length;
    assert.equal(results.length, total, "every case ran to its end");
    const up = results.filter((r) => r.up).length;
    const warned = results.filter((r) => r.warnings > 0).length;
    console.log(
      `corpus: ${total} files (${cases("pods").length} pod manifests, ${
        cases("compose").length
      } compose files); ${up} up fully (${(100 * up / total).toFixed(1)}%), ${
        total - up
      } refused with one located line; ${warned} ran with warnings`,
    );
    for (const r of results.filter((x) => !x.up)) console.log(`  refused ${r.name}: ${r.why}`);
    for (const r of results.filter((x) => x.warnings > 0)) {
      console.log(`  warned  ${r.name}: ${r.warnings} warning(s)`);
    }
    assert.ok(up / total >= 0.95, `${up}/${total} is below 95%`);
  },
});

cleanupAfterAll(env);
