/** A service's `extends`: the base service (in the same file or another) merged under it. */
import { SpecError } from "../../errors.ts";
import { isBundlePath } from "../paths.ts";
import { dirnameOf, joinPath } from "../paths.ts";
import { locate, type PathSegment, type Warning } from "../source.ts";
import { parseOne, prepareFile } from "./files.ts";
import { mergeService, tagsUnder } from "./merge.ts";
import type { RawService } from "./schema.ts";
import type { LoadComposeOptions, Prepared } from "./types.ts";

/**
 * The services of a file with their `extends` resolved: the base service (in
 * this file, or in `extends.file`, read with `readFile`) merged under the
 * extending one with compose's merge rules, `!reset`/`!override` included.
 */
export function resolveExtends(
  file: Prepared,
  env: Record<string, string | undefined>,
  readFile: LoadComposeOptions["readFile"],
  warnings: Warning[],
  loaded: Map<string, Prepared>,
): Record<string, RawService | null> {
  const done = new Map<string, RawService>();
  const resolve = (pf: Prepared, name: string, chain: string[]): RawService => {
    const key = `${pf.src.file}\0${name}`;
    const cached = done.get(key);
    if (cached) return cached;
    const s = pf.raw.services?.[name] ?? {};
    if (s.extends === undefined) return s;
    const where: PathSegment[] = ["services", name, "extends"];
    const fail = (detail: string) =>
      new SpecError(
        { file: pf.src.file, ...locate(pf.src, where) },
        `extends cannot be resolved: ${detail}`,
      );
    if (chain.includes(key)) {
      const names = [...chain.slice(chain.indexOf(key)), key].map((k) => k.split("\0")[1]);
      throw fail(`extends cycle: ${names.join(" -> ")}`);
    }
    const ext = typeof s.extends === "string" ? { service: s.extends, file: undefined } : s.extends;
    let base = pf;
    if (ext.file !== undefined) {
      const path = joinPath(pf.dir, ext.file);
      let other = loaded.get(path);
      if (!other) {
        let text: string | undefined;
        try {
          text = readFile?.(path);
        } catch (e) {
          throw fail((e as Error).message.split("\n")[0]);
        }
        if (text === undefined) throw fail(`file ${JSON.stringify(path)} does not exist`);
        other = prepareFile(parseOne(text, path), dirnameOf(path), env, warnings);
        for (const svc of Object.values(other.raw.services ?? {})) {
          if (svc) absolutePaths(svc, other.dir);
        }
        loaded.set(path, other);
      }
      base = other;
    }
    if (!base.raw.services || !(ext.service in base.raw.services)) {
      throw fail(
        `service ${JSON.stringify(ext.service)} is not defined in ${
          base === pf ? "this file" : base.src.file
        }`,
      );
    }
    const parent = resolve(base, ext.service, [...chain, key]);
    const { extends: _, ...own } = s;
    const out = mergeService(parent, own, tagsUnder(pf.tags, ["services", name]));
    done.set(key, out);
    return out;
  };
  return Object.fromEntries(
    Object.entries(file.raw.services ?? {}).map(([n, v]) => [n, v ? resolve(file, n, []) : v]),
  );
}

/**
 * Relative paths of a service from a file that `extends.file` names are
 * relative to that file (compose's rule), and those of an included project
 * to its project directory: bind sources, `env_file`, a `seccomp=FILE`
 * profile, and a bundle directory as `image`. Made absolute here, in place.
 */
export function absolutePaths(s: RawService, dir: string): void {
  const rel = (p: string) => p.startsWith(".") ? joinPath(dir, p) : p;
  const file = (p: string) => joinPath(dir, p);
  if (s.image !== undefined && isBundlePath(s.image) && s.image.startsWith(".")) {
    s.image = joinPath(dir, s.image);
  }
  s.volumes = s.volumes?.map((v) => {
    if (typeof v !== "string") {
      return v.type === "bind" && v.source !== undefined ? { ...v, source: file(v.source) } : v;
    }
    const parts = v.split(":");
    if (parts.length > 1 && parts[0].startsWith(".")) parts[0] = rel(parts[0]);
    return parts.join(":");
  });
  if (typeof s.env_file === "string") s.env_file = file(s.env_file);
  else if (Array.isArray(s.env_file)) {
    s.env_file = s.env_file.map((f) =>
      typeof f === "string" ? file(f) : { ...f, path: file(f.path) }
    );
  }
  s.security_opt = s.security_opt?.map((o) => {
    const m = /^seccomp[=:](.+)$/.exec(o);
    return m && !["unconfined", "builtin"].includes(m[1]) ? `seccomp=${file(m[1])}` : o;
  });
}
