/**
 * The top-level `include:` (compose-spec 14-include): other compose files
 * loaded as projects of their own, each with its project directory and
 * environment, and their services, networks, volumes, configs and secrets
 * pulled into the including file. A name both define is an error unless the
 * two definitions are the same (compose-go's rule).
 */
import { SpecError } from "../../errors.ts";
import { parseDotEnv } from "../interpolate.ts";
import { dirnameOf, joinPath } from "../paths.ts";
import { locate, type PathSegment, type SourceDoc, type Warning } from "../source.ts";
import { absolutePaths } from "./extends.ts";
import { parseOne, prepareFile } from "./files.ts";
import type { RawProject, RawService } from "./schema.ts";
import type { LoadComposeOptions, Prepared } from "./types.ts";
import { isObj } from "./values.ts";

const KINDS = ["services", "networks", "volumes", "configs", "secrets"] as const;

/** How a set of prepared files becomes one model (load.ts's mergeFiles). */
export type MergeFiles = (
  prepared: Prepared[],
) => { merged: RawProject; services: Record<string, RawService> };

export interface IncludeContext {
  env: Record<string, string | undefined>;
  readFile: LoadComposeOptions["readFile"];
  warnings: Warning[];
  merge: MergeFiles;
  /** Every included file parsed, for locating errors in them later. */
  srcs: SourceDoc[];
}

/**
 * Pulls `p`'s includes into `p.raw`, in place; `workDir` is what relative
 * include paths resolve against (the project directory; an included
 * project's own for its nested includes). `chain`: files being included,
 * outermost first, to refuse a cycle.
 */
export function applyIncludes(
  p: Prepared,
  workDir: string,
  ctx: IncludeContext,
  chain: string[] = [],
): void {
  const list = p.raw.include;
  if (list === undefined) return;
  list.forEach((entry, i) => {
    const where: PathSegment[] = ["include", i];
    const fail = (detail: string, sub: PathSegment[] = []) =>
      new SpecError(
        { file: p.src.file, ...locate(p.src, [...where, ...sub]), path: `include[${i}]` },
        `include: ${detail}`,
      );
    const e = typeof entry === "string" ? { path: entry } : entry;
    const raw = Array.isArray(e.path) ? e.path : [e.path];
    const remote = raw.find((x) => /^[a-z][a-z0-9+.-]*:\/\/|^git@/i.test(x));
    if (remote !== undefined) {
      throw fail(
        `${
          JSON.stringify(remote)
        } is a remote resource (git, oci, http): rkl includes local files only; fetch it and include its path`,
        typeof entry === "string" ? [] : ["path"],
      );
    }
    const paths = raw.map((x) => joinPath(workDir, x));
    if (paths.length === 0) throw fail("path lists no file", ["path"]);
    // The first file sets the project directory; the others override it.
    const projDir = e.project_directory !== undefined
      ? joinPath(workDir, e.project_directory)
      : dirnameOf(paths[0]);
    const read = (path: string, sub: PathSegment[]): string | undefined => {
      try {
        return ctx.readFile?.(path);
      } catch (err) {
        throw fail(`${path}: ${(err as Error).message.split("\n")[0]}`, sub);
      }
    };
    // Its own environment: its env_file (default PROJECT_DIRECTORY/.env)
    // under the including project's, which wins (compose-go's Merge).
    const envFiles = e.env_file === undefined
      ? []
      : (Array.isArray(e.env_file) ? e.env_file : [e.env_file]).map((f) => joinPath(workDir, f));
    const fileEnv: Record<string, string> = {};
    if (envFiles.length === 0) {
      const text = read(joinPath(projDir, ".env"), []);
      if (text !== undefined) Object.assign(fileEnv, parseDotEnv(text));
    }
    for (const f of envFiles) {
      const text = read(f, ["env_file"]);
      if (text === undefined) {
        throw fail(`env_file ${JSON.stringify(f)} does not exist`, ["env_file"]);
      }
      Object.assign(fileEnv, parseDotEnv(text));
    }
    const env: Record<string, string | undefined> = { ...fileEnv };
    for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined) env[k] = v;

    const prepared = paths.map((path, j) => {
      if (chain.includes(path) || path === p.src.file) {
        throw fail(`include cycle: ${[...chain, path].join(" -> ")}`);
      }
      const text = read(path, typeof entry === "string" ? [] : ["path"]);
      if (text === undefined) {
        throw fail(
          `file ${JSON.stringify(path)} does not exist`,
          typeof entry === "string" ? [] : [
            "path",
            ...(Array.isArray(e.path) ? [j] : []),
          ],
        );
      }
      const src = parseOne(text, path);
      ctx.srcs.push(src);
      const inc = prepareFile(src, dirnameOf(path), env, ctx.warnings);
      applyIncludes(inc, projDir, { ...ctx, env }, [...chain, p.src.file, path]);
      return inc;
    });
    const { merged, services } = ctx.merge(prepared);
    // Relative paths of an included project are relative to its directory.
    for (const s of Object.values(services)) absolutePaths(s, projDir);
    for (const kind of ["configs", "secrets"] as const) {
      for (const o of Object.values(merged[kind] ?? {})) {
        if (o.file !== undefined) o.file = joinPath(projDir, o.file);
      }
    }
    const from: Record<string, unknown> = { ...merged, services };
    for (const kind of KINDS) {
      const src = from[kind] as Record<string, unknown> | undefined;
      if (!src) continue;
      const to = (p.raw[kind] ?? {}) as Record<string, unknown>;
      for (const [name, v] of Object.entries(src)) {
        if (name in to && !sameValue(to[name], v)) {
          throw fail(
            `${kind}.${name} conflicts with the one ${
              JSON.stringify(paths[0])
            } defines: rename one of them (an included file's resources may not be redefined)`,
          );
        }
        to[name] = v;
      }
      (p.raw as Record<string, unknown>)[kind] = to;
    }
  });
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => sameValue(a[k], b[k]));
  }
  return (a === null || a === undefined) && (b === null || b === undefined);
}
