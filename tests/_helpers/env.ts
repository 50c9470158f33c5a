/** A private rkl environment per test file: root, run root, network, subnet, cgroup parent. */
import { bridgeConflist, conflistPath } from "../../src/net/network.ts";
import assert from "node:assert/strict";
import { type Census, census, type CensusScope, idleBridge, rootBridges } from "./census.ts";
import { REPO } from "./requires.ts";

export interface RklEnv extends CensusScope {
  network: string;
  subnet: string;
  env: Record<string, string>;
  dir: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let counter = 0;

/** `third` picks the subnet 10.<200+third>.<n>.0/24 so test files never overlap. */
export async function makeEnv(label: string, third: number): Promise<RklEnv> {
  const dir = await Deno.makeTempDir({ prefix: `rkl-${label}-` });
  const n = (Deno.pid + counter++) % 250;
  const network = `rkt${third}x${n}`.slice(0, 15);
  const subnet = `10.${200 + third}.${n}.0/24`;
  const root = `${dir}/root`;
  const runRoot = `${dir}/run`;
  const cgroupParent = `rkltest-${label}-${n}`;
  const confDir = `${root}/net.d`;
  await Deno.mkdir(confDir, { recursive: true });
  await Deno.writeTextFile(
    conflistPath(confDir, network),
    JSON.stringify(
      bridgeConflist(network, { subnet, ipamDataDir: `${root}/cni/networks` }),
      null,
      2,
    ),
  );
  return {
    dir,
    root,
    runRoot,
    cgroupParent,
    network,
    subnet,
    env: { RKL_ROOT: root, RKL_RUN_ROOT: runRoot, RKL_CGROUP_PARENT: cgroupParent },
  };
}

/** The argv of `rkl ARGS…` from this checkout (deno run). */
export const rklArgv = (args: string[]): string[] => [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  `${REPO}/cli/main.ts`,
  ...args,
];

/** Runs the CLI as a user would, from source, with this env. */
export async function rkl(
  e: RklEnv,
  args: string[],
  options: { cwd?: string; stdin?: string } = {},
): Promise<RunResult> {
  const [cmd, ...argv] = rklArgv(args);
  const child = new Deno.Command(cmd, {
    args: argv,
    env: e.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** Runs rkl and fails with its stderr when it exits non-zero. */
export async function rklOk(
  e: RklEnv,
  args: string[],
  options: { cwd?: string } = {},
): Promise<string> {
  const r = await rkl(e, args, options);
  if (r.code !== 0) throw new Error(`rkl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Removes whatever a failed test left (best effort), then the temp dir. */
export async function cleanupEnv(e: RklEnv): Promise<void> {
  // Pods first (a CRI sandbox a failed spec left is one), then what containers are left.
  const pods = await rkl(e, ["pod", "list", "-q"]);
  for (const name of pods.stdout.split("\n").filter(Boolean)) {
    await rkl(e, ["pod", "rm", "-f", name]);
  }
  const list = await rkl(e, ["container", "list", "-q"]);
  for (const name of list.stdout.split("\n").filter(Boolean)) {
    await rkl(e, ["container", "rm", "-f", name]);
  }
  // The env's bridges: rm leaves a network's idle bridge (the census excuses
  // it), and the env's networks go with it here, so the host's links end as
  // they began. Only idle ones beside the env's own (another root may share one).
  for (const br of rootBridges(e.root)) {
    if (br !== e.network && idleBridge(br)) await deleteLink(br);
  }
  await deleteLink(e.network);
  await Deno.remove(e.dir, { recursive: true }).catch(() => {});
}

/** `ip link delete NAME`, quietly: gone already is fine. */
async function deleteLink(name: string): Promise<void> {
  await new Deno.Command("ip", { args: ["link", "delete", name], stderr: "null" }).output();
}

/**
 * Registers the file's clean-up as a `Deno.test.afterAll` hook instead of a
 * last "test": it runs once the file's tests are done, whatever their order,
 * also when some failed or all were filtered out. `checks` (that nothing was
 * left behind) run first; the env is removed whether or not they pass, and a
 * failed check, or a temp dir that could not be removed (something still
 * mounted below it), then fails the file. Nothing to do when the file's
 * prerequisites were missing (no env was made).
 */
export function cleanupAfterAll(
  env: RklEnv | undefined,
  checks?: () => Promise<void> | void,
): void {
  Deno.test.afterAll(async () => {
    if (env === undefined) return;
    try {
      await checks?.();
    } finally {
      await cleanupEnv(env);
    }
    let left = true;
    try {
      Deno.lstatSync(env.dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      left = false;
    }
    if (left) throw new Error(`clean-up could not remove ${env.dir}`);
  });
}

export async function waitFor(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until `path` is a unix socket (not followed if a link), as a daemon makes it when it serves. */
export function waitForSocket(what: string, path: string, timeoutMs = 10_000): Promise<void> {
  return waitFor(what, () => {
    try {
      return Deno.lstatSync(path).isSocket === true;
    } catch {
      return false;
    }
  }, timeoutMs);
}

/**
 * Removes every pod and container of the env (after a failed test). Nothing
 * to do once cleanupEnv removed the env's dir: an rkl call would make its
 * run root (its epoch file) again and leave that behind.
 */
export async function removeAll(e: RklEnv): Promise<void> {
  try {
    Deno.statSync(e.dir);
  } catch {
    return;
  }
  const pods = JSON.parse((await rkl(e, ["pod", "list", "-o", "json"])).stdout || "[]") as {
    name: string;
  }[];
  for (const p of pods) await rkl(e, ["pod", "rm", "-f", p.name]);
  const left = (await rkl(e, ["container", "list", "-q"])).stdout.split("\n").filter(Boolean);
  for (const n of left) await rkl(e, ["container", "rm", "-f", n]);
}

/**
 * A Deno.test that is skipped without its prerequisites (failing under
 * CI=true, see requires()) and that removes whatever its body left behind,
 * so that one failure does not fail the next test's census.
 */
export function envTest(
  ready: boolean,
  env: () => RklEnv,
  name: string,
  fn: () => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: !ready,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      try {
        await fn();
      } finally {
        await removeAll(env());
      }
    },
  });
}

/** Bad input: exit code 2 and exactly one line of error, matching `want`. */
export function assertRejected(label: string, r: RunResult, want: RegExp): void {
  if (r.code !== 2) throw new Error(`${label}: exit code ${r.code}, want 2: ${r.stderr}`);
  if (!want.test(r.stderr)) {
    throw new Error(`${label}: ${JSON.stringify(r.stderr)} does not match ${want}`);
  }
  const lines = r.stderr.trim().split("\n").length;
  if (lines !== 1) throw new Error(`${label}: one line of error, got ${lines}: ${r.stderr}`);
}

/**
 * `test(name, fn)` for a file whose every test must leave the host census as
 * it was when the file's first test started (deno loads every test file
 * before running any, so a census taken at load time would miss what earlier
 * files changed); `baseline()` is that census, for checks inside a test.
 */
export function censusTests(
  ready: boolean,
  env: () => RklEnv,
): { test(name: string, fn: () => Promise<void>): void; baseline(): Census } {
  let baseline: Census | undefined;
  return {
    test: (name, fn) =>
      envTest(ready, env, name, async () => {
        baseline ??= await census(env());
        await fn();
        assert.deepEqual(await census(env()), baseline, "the host census changed");
      }),
    baseline: () => baseline!,
  };
}
