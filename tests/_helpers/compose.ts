/** Compose project dirs and `rkl compose` calls for the compose e2e files. */
import assert from "node:assert/strict";
import { type Census, census } from "./census.ts";
import { removeAll, rkl, type RklEnv, type RunResult } from "./env.ts";
import { REPO } from "./requires.ts";

export function composeTools(env: () => RklEnv): {
  /** A project directory with a bundles/ link (files say `image: ./bundles/busybox`). */
  projectDir(name: string, files: Record<string, string>): Promise<string>;
  compose(dir: string, args: string[]): Promise<RunResult>;
  /** `rkl compose ARGS` in `dir`; throws with its stderr unless it exits 0. */
  composeResult(dir: string, args: string[]): Promise<RunResult>;
  /** The same, its stdout. */
  composeOk(dir: string, args: string[]): Promise<string>;
} {
  const compose = (dir: string, args: string[]) => rkl(env(), ["compose", ...args], { cwd: dir });
  const composeResult = async (dir: string, args: string[]) => {
    const r = await compose(dir, args);
    if (r.code !== 0) {
      throw new Error(`rkl compose ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    }
    return r;
  };
  return {
    async projectDir(name, files) {
      const dir = `${env().dir}/${name}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.symlink(`${REPO}/bundles`, `${dir}/bundles`).catch(() => {});
      for (const [f, text] of Object.entries(files)) {
        await Deno.mkdir(`${dir}/${f}`.replace(/\/[^/]*$/, ""), { recursive: true });
        await Deno.writeTextFile(`${dir}/${f}`, text);
      }
      return dir;
    },
    compose,
    composeResult,
    composeOk: async (dir, args) => (await composeResult(dir, args)).stdout,
  };
}

/**
 * The `test` of the compose e2e files: each test gets a list of project dirs
 * to take down (`down -v --remove-orphans -t 0`) and then everything of the
 * env removed, even when it failed. The host census is taken when the file's
 * first test starts (deno loads every test file before it runs any); with
 * `censusEachTest` every test ends by comparing against it, otherwise a test
 * calls `assertCensusUnchanged` where it means to.
 */
export function composeTests(
  ready: boolean,
  env: () => RklEnv,
  opts: { censusEachTest?: boolean } = {},
): {
  test(name: string, fn: (dirs: string[]) => Promise<void>): void;
  assertCensusUnchanged(): Promise<void>;
} {
  const { compose } = composeTools(env);
  let baseline: Census | undefined;
  const assertCensusUnchanged = async () => {
    assert.deepEqual(await census(env()), baseline, "the host census changed");
  };
  return {
    test(name, fn) {
      Deno.test({
        name,
        ignore: !ready,
        sanitizeResources: false,
        sanitizeOps: false,
        fn: async () => {
          const dirs: string[] = [];
          baseline ??= await census(env());
          try {
            await fn(dirs);
          } finally {
            for (const d of dirs) await compose(d, ["down", "-v", "--remove-orphans", "-t", "0"]);
            await removeAll(env());
          }
          if (opts.censusEachTest) await assertCensusUnchanged();
        },
      });
    },
    assertCensusUnchanged,
  };
}
