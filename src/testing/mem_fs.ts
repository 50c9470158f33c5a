/**
 * An in-memory {@linkcode HostFs} for unit tests: directories, files with
 * mode/uid/gid, hard links, FIFOs and symlinks, resolved as the kernel does
 * (intermediate links always followed, at most 40 of them, `..` taken after
 * the link it follows; `lstat`, `remove`, `rename`, `readLink` and `symlink`
 * leave the last link alone). Every failure throws what Deno throws for the
 * same call on Linux, with the same class, `code` and message shape
 * (`No such file or directory (os error 2): mkdir '/x'`), so code that checks
 * `instanceof Deno.errors.NotFound` or `.code === "ENOTEMPTY"` behaves alike
 * on both; mem_fs_test.ts runs each case against the real file system too.
 *
 * Mounts are not modelled inside the tree (an overlay shows no lower files):
 * a `busy` check marks mount points, which `remove` and `rename` refuse with
 * EBUSY as the kernel does.
 */
import type { FsEntry, FsInfo, HostFs, WriteOptions } from "../sys/fs.ts";
import { FileReadError } from "../sys/readfile.ts";

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const MAX_LINKS = 40;

interface Inode {
  ino: number;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}
export interface DirNode extends Inode {
  kind: "dir";
  entries: Map<string, Node>;
}
export interface FileNode extends Inode {
  kind: "file";
  data: Uint8Array;
}
export interface LinkNode extends Inode {
  kind: "symlink";
  target: string;
}
export interface FifoNode extends Inode {
  kind: "fifo";
}
export type Node = DirNode | FileNode | LinkNode | FifoNode;

const ERRNO: Record<number, [string, string, new (m: string) => Error]> = {
  1: ["EPERM", "Operation not permitted", Deno.errors.PermissionDenied],
  2: ["ENOENT", "No such file or directory", Deno.errors.NotFound],
  5: ["EIO", "Input/output error", Error],
  16: ["EBUSY", "Device or resource busy", Deno.errors.Busy],
  17: ["EEXIST", "File exists", Deno.errors.AlreadyExists],
  18: ["EXDEV", "Invalid cross-device link", Error],
  20: ["ENOTDIR", "Not a directory", Deno.errors.NotADirectory],
  21: ["EISDIR", "Is a directory", Deno.errors.IsADirectory],
  22: ["EINVAL", "Invalid argument", TypeError],
  39: ["ENOTEMPTY", "Directory not empty", Error],
  40: ["ELOOP", "Too many levels of symbolic links", Deno.errors.FilesystemLoop],
};

/** The error Deno throws for `errno` from `op` on `paths`, e.g. `mkdir '/x'`. */
export function fsError(errno: number, op: string, ...paths: string[]): Error {
  const [code, text, Cls] = ERRNO[errno] ?? [`E${errno}`, `errno ${errno}`, Error];
  const e = new Cls(
    `${text} (os error ${errno}): ${op} ${paths.map((p) => `'${p}'`).join(" -> ")}`,
  );
  Object.defineProperty(e, "code", { value: code, enumerable: false });
  return e;
}

/** Where a path leads: the directory that holds its last name, and what is there. */
interface Resolved {
  parent: DirNode;
  /** The last name ("" for "/"). */
  name: string;
  node: Node | undefined;
  /** The real path of `parent` (after links). */
  parentPath: string;
}

export interface MemFsOptions {
  /** Applied to the modes of new files and directories (default 0o022). */
  umask?: number;
  /** uid/gid of new nodes (default 0, as rkl runs as root). */
  uid?: number;
  gid?: number;
  now?: () => Date;
}

/** One line of a {@linkcode MemFs.census}: what a path is, without timestamps. */
export type CensusLine = string;

export class MemFs implements HostFs {
  readonly root: DirNode;
  umask: number;
  #ino = 1;
  #uid: number;
  #gid: number;
  #now: () => Date;
  /** Called before every HostFs operation: a test's fault plan throws from here. */
  before: (op: string, path: string) => void = () => {};
  #quiet = 0;
  /** True for a mount point (remove and rename then fail with EBUSY). */
  busy: (realPath: string) => boolean = () => false;
  /**
   * For a pseudo file system's directories (cgroupfs): what a plain rmdir of
   * `realPath` does there: undefined for the ordinary rule, "empty" when it
   * goes with the files in it (control files), or the error it fails with.
   */
  rmdirRule: (realPath: string) => "empty" | Error | undefined = () => undefined;

  constructor(options: MemFsOptions = {}) {
    this.umask = options.umask ?? 0o022;
    this.#uid = options.uid ?? 0;
    this.#gid = options.gid ?? 0;
    this.#now = options.now ?? (() => new Date(0));
    this.root = this.#dir(0o755);
  }

  /**
   * Runs `fn` without calling `before`: for the fakes that change the tree
   * as the kernel or another program would (their own fault points count).
   */
  quietly<T>(fn: () => T): T {
    this.#quiet++;
    try {
      return fn();
    } finally {
      this.#quiet--;
    }
  }

  #hook(op: string, path: string): void {
    if (this.#quiet === 0) this.before(op, path);
  }

  #base(mode: number): Inode {
    return { ino: this.#ino++, mode, uid: this.#uid, gid: this.#gid, mtime: this.#now() };
  }
  #dir(mode: number): DirNode {
    return { ...this.#base(mode), kind: "dir", entries: new Map() };
  }
  #touch(d: DirNode): void {
    d.mtime = this.#now();
  }

  /**
   * Walks `path` as path resolution(7) does. Throws ENOENT/ENOTDIR/ELOOP for
   * a missing or non-directory intermediate; the last name may be absent.
   */
  #resolve(path: string, followLast: boolean, op: string, shown = path): Resolved {
    if (!path.startsWith("/")) {
      throw new TypeError(`MemFs takes absolute paths, not ${JSON.stringify(path)}`);
    }
    const stack: DirNode[] = [this.root];
    const names: string[] = [];
    const queue = path.split("/").filter((c) => c !== "" && c !== ".");
    let links = 0;
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (c === ".") continue;
      const cur = stack[stack.length - 1];
      if (c === "..") {
        if (stack.length > 1) {
          stack.pop();
          names.pop();
        }
        continue;
      }
      const child = cur.entries.get(c);
      const last = queue.length === 0;
      if (child?.kind === "symlink" && (!last || followLast)) {
        if (++links > MAX_LINKS) throw fsError(40, op, shown);
        const target = child.target.split("/").filter((x) => x !== "" && x !== ".");
        if (child.target.startsWith("/")) {
          stack.length = 1;
          names.length = 0;
        }
        queue.unshift(...target);
        continue;
      }
      if (last) {
        return { parent: cur, name: c, node: child, parentPath: "/" + names.join("/") };
      }
      if (!child) throw fsError(2, op, shown);
      if (child.kind !== "dir") throw fsError(20, op, shown);
      stack.push(child);
      names.push(c);
    }
    // "/" itself, or a path ending in ".." or a link to a directory: the
    // directory reached is the node.
    const node = stack[stack.length - 1];
    const parent = stack.length > 1 ? stack[stack.length - 2] : this.root;
    const name = names.length > 0 ? names[names.length - 1] : "";
    return { parent, name, node, parentPath: "/" + names.slice(0, -1).join("/") };
  }

  #real(r: Resolved): string {
    if (r.name === "") return "/";
    return r.parentPath === "/" ? `/${r.name}` : `${r.parentPath}/${r.name}`;
  }

  #existing(path: string, follow: boolean, op: string): Node {
    const r = this.#resolve(path, follow, op);
    if (!r.node) throw fsError(2, op, path);
    return r.node;
  }

  #info(n: Node): FsInfo {
    const type = n.kind === "dir"
      ? S_IFDIR
      : n.kind === "file"
      ? S_IFREG
      : n.kind === "symlink"
      ? S_IFLNK
      : S_IFIFO;
    return {
      isFile: n.kind === "file",
      isDirectory: n.kind === "dir",
      isSymlink: n.kind === "symlink",
      size: n.kind === "dir"
        ? 4096
        : n.kind === "file"
        ? n.data.length
        : n.kind === "symlink"
        ? new TextEncoder().encode(n.target).length
        : 0,
      mode: type | (n.kind === "symlink" ? 0o777 : n.mode),
      uid: n.uid,
      gid: n.gid,
      ino: n.ino,
      dev: 1,
      mtime: n.mtime,
    };
  }

  readFile(path: string): Uint8Array {
    this.#hook("readFile", path);
    const n = this.#existing(path, true, "readfile");
    if (n.kind === "dir") throw fsError(21, "readfile", path);
    if (n.kind !== "file") return new Uint8Array(); // a FIFO with no writer: EOF
    return n.data.slice();
  }

  readTextFile(path: string): string {
    this.#hook("readTextFile", path);
    return new TextDecoder().decode(this.#readNoHook(path));
  }

  readRegularText(path: string, max: number): string {
    this.#hook("readRegularText", path);
    const n = this.#existing(path, true, "open");
    if (n.kind !== "file") throw new FileReadError(path, `not a regular file (a ${n.kind})`);
    if (n.data.length > max) throw new FileReadError(path, `larger than ${max} bytes`);
    return new TextDecoder().decode(n.data);
  }

  #readNoHook(path: string): Uint8Array {
    const n = this.#existing(path, true, "readfile");
    if (n.kind === "dir") throw fsError(21, "readfile", path);
    return n.kind === "file" ? n.data.slice() : new Uint8Array();
  }

  writeFile(path: string, data: Uint8Array, options: WriteOptions = {}): void {
    this.#hook("writeFile", path);
    this.#write(path, data, options);
  }

  writeTextFile(path: string, data: string, options: WriteOptions = {}): void {
    this.#hook("writeTextFile", path);
    this.#write(path, new TextEncoder().encode(data), options);
  }

  #write(path: string, data: Uint8Array, o: WriteOptions): void {
    const op = "writefile";
    // O_EXCL never follows the last name: even a dangling link is "there".
    const r = this.#resolve(path, !o.createNew, op);
    if (r.node) {
      if (o.createNew) throw fsError(17, op, path);
      if (r.node.kind === "dir") throw fsError(21, op, path);
      if (r.node.kind !== "file") return; // a FIFO: the bytes go to its reader
      r.node.data = o.append ? concat(r.node.data, data) : data.slice();
      r.node.mtime = this.#now();
      if (o.mode !== undefined) r.node.mode = o.mode & 0o7777;
      return;
    }
    if (o.create === false) throw fsError(2, op, path);
    const mode = o.mode !== undefined ? o.mode & 0o7777 : 0o666 & ~this.umask;
    r.parent.entries.set(r.name, { ...this.#base(mode), kind: "file", data: data.slice() });
    this.#touch(r.parent);
  }

  mkdir(path: string, options: { recursive?: boolean; mode?: number } = {}): void {
    this.#hook("mkdir", path);
    const mode = (options.mode ?? 0o777) & ~this.umask & 0o7777;
    if (!options.recursive) {
      const r = this.#resolve(path, false, "mkdir");
      if (r.node || r.name === "") throw fsError(17, "mkdir", path);
      r.parent.entries.set(r.name, this.#dir(mode));
      this.#touch(r.parent);
      return;
    }
    // Like `mkdir -p`: each missing directory is made; a non-directory in the
    // way is EEXIST at the end, ENOTDIR before it.
    const parts = path.split("/").filter((c) => c !== "");
    for (let i = 1; i <= parts.length; i++) {
      const prefix = "/" + parts.slice(0, i).join("/");
      const r = this.#resolve(prefix, true, "mkdir", path);
      if (r.node) {
        if (r.node.kind !== "dir") throw fsError(i === parts.length ? 17 : 20, "mkdir", path);
        continue;
      }
      const lr = this.#resolve(prefix, false, "mkdir", path);
      if (lr.node) throw fsError(17, "mkdir", path); // a dangling link
      r.parent.entries.set(r.name, this.#dir(mode));
      this.#touch(r.parent);
    }
  }

  remove(path: string, options: { recursive?: boolean } = {}): void {
    this.#hook("remove", path);
    const r = this.#resolve(path, false, "remove");
    if (!r.node) throw fsError(2, "remove", path);
    if (r.name === "") throw fsError(16, "remove", path);
    const real = this.#real(r);
    if (r.node.kind === "dir") {
      if (this.busy(real)) throw fsError(16, "remove", path);
      const rule = options.recursive ? undefined : this.rmdirRule(real);
      if (rule instanceof Error) throw rule;
      if (r.node.entries.size > 0 && rule !== "empty") {
        if (!options.recursive) throw fsError(39, "remove", path);
        this.#empty(r.node, real, path);
      }
    }
    r.parent.entries.delete(r.name);
    this.#touch(r.parent);
  }

  /** Removes what is below `dir`, depth first; a mount point on the way stops it with EBUSY. */
  #empty(dir: DirNode, real: string, shown: string): void {
    for (const [name, child] of [...dir.entries]) {
      const p = real === "/" ? `/${name}` : `${real}/${name}`;
      if (child.kind === "dir") {
        if (this.busy(p)) throw fsError(16, "remove", shown);
        this.#empty(child, p, shown);
      }
      dir.entries.delete(name);
    }
  }

  stat(path: string): FsInfo {
    this.#hook("stat", path);
    return this.#info(this.#existing(path, true, "stat"));
  }

  lstat(path: string): FsInfo {
    this.#hook("lstat", path);
    return this.#info(this.#existing(path, false, "lstat"));
  }

  readDir(path: string): FsEntry[] {
    this.#hook("readDir", path);
    const n = this.#existing(path, true, "readdir");
    if (n.kind !== "dir") throw fsError(20, "readdir", path);
    return [...n.entries].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([name, c]) => ({
      name,
      isFile: c.kind === "file",
      isDirectory: c.kind === "dir",
      isSymlink: c.kind === "symlink",
    }));
  }

  readLink(path: string): string {
    this.#hook("readLink", path);
    const n = this.#existing(path, false, "readlink");
    if (n.kind !== "symlink") throw fsError(22, "readlink", path);
    return n.target;
  }

  symlink(target: string, path: string): void {
    this.#hook("symlink", path);
    const r = this.#resolve(path, false, "symlink");
    if (r.node || r.name === "") throw fsError(17, "symlink", target, path);
    r.parent.entries.set(r.name, { ...this.#base(0o777), kind: "symlink", target });
    this.#touch(r.parent);
  }

  link(existing: string, path: string): void {
    this.#hook("link", path);
    const src = this.#resolve(existing, false, "link", existing);
    if (!src.node) throw fsError(2, "link", existing, path);
    if (src.node.kind === "dir") throw fsError(1, "link", existing, path);
    const r = this.#resolve(path, false, "link", path);
    if (r.node) throw fsError(17, "link", existing, path);
    r.parent.entries.set(r.name, src.node);
    this.#touch(r.parent);
  }

  rename(from: string, to: string): void {
    this.#hook("rename", from);
    const op = "rename";
    let a: Resolved, b: Resolved;
    try {
      a = this.#resolve(from, false, op);
      b = this.#resolve(to, false, op);
    } catch (e) {
      throw reshow(e, op, from, to);
    }
    if (!a.node) throw fsError(2, op, from, to);
    if (a.name === "" || b.name === "") throw fsError(16, op, from, to);
    if (a.node === b.node) return;
    const realA = this.#real(a);
    const realB = this.#real(b);
    if (a.node.kind === "dir") {
      if (this.busy(realA)) throw fsError(16, op, from, to);
      if (realB.startsWith(`${realA}/`)) throw fsError(22, op, from, to);
    }
    if (b.node) {
      if (a.node.kind === "dir" && b.node.kind !== "dir") throw fsError(20, op, from, to);
      if (a.node.kind !== "dir" && b.node.kind === "dir") throw fsError(21, op, from, to);
      if (b.node.kind === "dir") {
        if (this.busy(realB)) throw fsError(16, op, from, to);
        if (b.node.entries.size > 0) throw fsError(39, op, from, to);
      }
    }
    a.parent.entries.delete(a.name);
    b.parent.entries.set(b.name, a.node);
    this.#touch(a.parent);
    this.#touch(b.parent);
  }

  copyFile(from: string, to: string): void {
    this.#hook("copyFile", to);
    const op = "copy";
    let src: Node | undefined;
    try {
      src = this.#resolve(from, true, op).node;
    } catch (e) {
      throw reshow(e, op, from, to);
    }
    if (!src) throw fsError(2, op, from, to);
    if (src.kind !== "file") {
      const e = new TypeError(
        `the source path is neither a regular file nor a symlink to a regular file: ${op} '${from}' -> '${to}'`,
      );
      Object.defineProperty(e, "code", { value: "EINVAL", enumerable: false });
      throw e;
    }
    let r: Resolved;
    try {
      r = this.#resolve(to, true, op);
    } catch (e) {
      throw reshow(e, op, from, to);
    }
    if (r.node?.kind === "dir") throw fsError(21, op, from, to);
    if (r.node?.kind === "file") {
      r.node.data = src.data.slice();
      r.node.mode = src.mode;
      r.node.mtime = this.#now();
      return;
    }
    r.parent.entries.set(r.name, { ...this.#base(src.mode), kind: "file", data: src.data.slice() });
    this.#touch(r.parent);
  }

  chmod(path: string, mode: number): void {
    this.#hook("chmod", path);
    this.#existing(path, true, "chmod").mode = mode & 0o7777;
  }

  chown(path: string, uid: number | null, gid: number | null): void {
    this.#hook("chown", path);
    const n = this.#existing(path, true, "chown");
    if (uid !== null) n.uid = uid;
    if (gid !== null) n.gid = gid;
  }

  realPath(path: string): string {
    this.#hook("realPath", path);
    const r = this.#resolve(path, true, "realpath");
    if (!r.node) throw fsError(2, "realpath", path);
    return this.#real(r);
  }

  /** Makes a FIFO (mkfifo(3)): EEXIST when anything is at `path`. */
  mkfifo(path: string, mode: number): void {
    const r = this.#resolve(path, false, "mkfifo");
    if (r.node) throw fsError(17, "mkfifo", path);
    r.parent.entries.set(r.name, { ...this.#base(mode & ~this.umask & 0o7777), kind: "fifo" });
    this.#touch(r.parent);
  }

  /** True when something (even a dangling link) is at `path`. */
  exists(path: string): boolean {
    try {
      return this.#resolve(path, false, "lstat").node !== undefined;
    } catch {
      return false;
    }
  }

  /**
   * Every path below `under` (itself included) with what it is: type,
   * permission bits, owner, and a file's size and content hash or a link's
   * target. Timestamps are left out, so a create undone compares equal.
   */
  census(under = "/"): Map<string, CensusLine> {
    const out = new Map<string, CensusLine>();
    let start: Node | undefined;
    try {
      start = this.#resolve(under, false, "lstat").node;
    } catch {
      return out;
    }
    const walk = (p: string, n: Node) => {
      out.set(p, describe(n));
      if (n.kind !== "dir") return;
      for (const [name, c] of [...n.entries].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
        walk(p === "/" ? `/${name}` : `${p}/${name}`, c);
      }
    };
    if (start) walk(under, start);
    return out;
  }
}

function describe(n: Node): CensusLine {
  const own = `${n.mode.toString(8).padStart(4, "0")} ${n.uid}:${n.gid}`;
  switch (n.kind) {
    case "dir":
      return `dir ${own}`;
    case "file":
      return `file ${own} ${n.data.length}B #${fnv(n.data)}`;
    case "symlink":
      return `symlink -> ${n.target}`;
    case "fifo":
      return `fifo ${own}`;
  }
}

function fnv(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const x of b) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The same error with both paths of a two-path call in its message, as Deno shows them. */
function reshow(e: unknown, op: string, from: string, to: string): unknown {
  const code = (e as { code?: string }).code;
  const errno = Object.entries(ERRNO).find(([, [c]]) => c === code)?.[0];
  return errno === undefined ? e : fsError(Number(errno), op, from, to);
}
