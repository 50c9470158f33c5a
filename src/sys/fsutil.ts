/**
 * Paths rkl makes and removes. Every directory below the state roots is
 * root-only unless a container needs it otherwise, and every path rkl
 * deletes recursively is first checked to lie inside the root it belongs to
 * (a name from a YAML file or a record read back from disk is never trusted
 * to be harmless once joined into a path).
 */
import { RklError } from "../errors.ts";
import { type FsEntry, type FsInfo, type HostFs, realFs } from "./fs.ts";

/** mkdir -p, then the leaf gets exactly `mode` (mkdir's mode is cut by the umask). */
export function privateDir(path: string, mode = 0o700, fs: HostFs = realFs): void {
  fs.mkdir(path, { recursive: true, mode });
  fs.chmod(path, mode);
}

/** Normalises an absolute path lexically ('.', '..', repeated '/'). */
export function normalize(path: string): string {
  if (!path.startsWith("/")) throw new TypeError(`path ${JSON.stringify(path)} is not absolute`);
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return "/" + out.join("/");
}

/** True when `path` is `root` itself or lies below it, lexically. */
export function isWithin(root: string, path: string): boolean {
  const r = normalize(root);
  const p = normalize(path);
  return p === r || p.startsWith(r === "/" ? "/" : `${r}/`);
}

/**
 * Throws unless `path` lies strictly below `root`, with no symlink on the way
 * from `root` (lexical check plus realpath of the deepest existing parent).
 */
export function assertBelow(
  root: string,
  path: string,
  what: string,
  fs: HostFs = realFs,
): void {
  const r = normalize(root);
  const p = normalize(path);
  if (p === r || !isWithin(r, p)) {
    throw new RklError(
      "EPATH",
      `Refusing to touch ${JSON.stringify(path)} (${what}): it is not inside ${r}`,
    );
  }
  // The parent must resolve to where it says: a symlinked parent could lead out.
  const parent = p.slice(0, p.lastIndexOf("/")) || "/";
  let real: string;
  try {
    real = fs.realPath(parent);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // nothing there to remove or follow
    throw e;
  }
  let realRoot: string;
  try {
    realRoot = fs.realPath(r);
  } catch {
    realRoot = r;
  }
  if (!isWithin(realRoot, real) || real !== normalize(parent).replace(r, realRoot)) {
    throw new RklError(
      "EPATH",
      `Refusing to touch ${JSON.stringify(path)} (${what}): its parent resolves to ${real}`,
    );
  }
}

/** rm -rf of a path that must lie below `root`; a missing path is fine. */
export function removeBelow(
  root: string,
  path: string,
  what: string,
  fs: HostFs = realFs,
): void {
  assertBelow(root, path, what, fs);
  try {
    fs.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** True when something (anything, a dangling link too) is at `path`. */
export function pathExists(path: string, fs: HostFs = realFs): boolean {
  try {
    fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** What `path` itself is (no link followed), or undefined when it is absent. */
export function lstatOr(path: string, fs: HostFs = realFs): FsInfo | undefined {
  try {
    return fs.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The entries of `dir`, or none when it cannot be read (absent). */
export function readDirOr(dir: string, fs: HostFs = realFs): FsEntry[] {
  try {
    return fs.readDir(dir);
  } catch {
    return [];
  }
}
