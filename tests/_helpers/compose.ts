/** Compose project dirs and `rkl compose` calls for the compose e2e files. */
import { rkl, type RklEnv, type RunResult } from "./env.ts";
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
