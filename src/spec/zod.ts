/**
 * Where rkl's schemas get zod from: the v3 API that zod 4 keeps in the same
 * package (its `zod/v3` entry), not zod 4's own.
 *
 * Why: every entry of zod 4's own API (`zod`, `zod/mini`, `zod/v4/core`)
 * re-exports all of its locales, so any import loads 95 modules, 50 of them
 * locales rkl never uses; the v3 API is 6. A command that checks one file
 * pays that load once per process: on this host `import "zod"` costs 36 ms
 * over an empty program and `import "zod/v3"` 8 ms (medians of 20, `deno
 * run`), which took 30-40 ms off an in-process `rkl pod run`
 * (docs/benchmarks.md, issue 35).
 *
 * `number()` refuses ±Infinity (YAML's `.inf`), as zod 4's does: a value
 * such as `cpus: .inf` is refused at its own line instead of reaching a
 * cgroup file.
 */
import { z as base } from "zod/v3";

export * from "zod/v3";

/** zod's number, finite: ±Infinity is refused as NaN is. */
export function number(params?: Parameters<typeof base.number>[0]): ReturnType<typeof base.number> {
  return base.number(params).finite();
}
