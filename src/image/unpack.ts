/**
 * Unpacks one layer (a tar, gzip- or zstd-compressed or plain) into a fresh
 * directory in the form overlayfs reads as a lower layer, the way
 * containerd's archive.Apply does it for its overlayfs snapshotter:
 *
 * - names are rooted in the layer: a leading `/`, `.` and empty components
 *   are dropped, `..` is resolved by name and stops at the layer root, and a
 *   member that resolves to the root itself is skipped;
 * - `.wh.NAME` becomes a whiteout: a character device 0:0 named NAME, owned
 *   as the member says; `.wh..wh..opq` marks its directory opaque
 *   (`trusted.overlay.opaque=y`);
 * - owners, modes (set-id bits too), xattrs, mtimes (to the nanosecond),
 *   device nodes, fifos and hard links are kept; a hard link's own owner,
 *   mode, xattrs and mtime are applied to the file it links (the inode they
 *   share); `trusted.*` xattrs are dropped, as are `user.*` ones on what
 *   cannot carry them (neither a file nor a directory);
 * - a member replaces whatever is at its path, unless both are directories:
 *   then the directory takes the member's metadata and keeps its contents.
 *
 * The layer is hostile until proven otherwise: nothing is written outside
 * `dest`; a member whose parent is a symlink (so that writing it would
 * follow the link) or not a directory, or a hard link to what the layer does
 * not hold or to a directory, makes the whole layer fail. The uncompressed
 * stream is hashed on the way, so the caller checks the diff ID without
 * reading it twice.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { createZstdDecompress } from "node:zlib";
import { ImageError, SysError } from "../errors.ts";
import {
  lchown,
  lgetxattr,
  llistxattr,
  lmtime,
  lsetxattr,
  lutimes,
  mknod,
  S_IFBLK,
  S_IFCHR,
} from "../sys/fileattr.ts";
import { gunzipChunks, InflateError } from "../sys/zlib.ts";
import { ByteSource, readTar, TarError, type TarHeader } from "./tar.ts";

export interface UnpackResult {
  /** sha256 of the uncompressed tar: what the image config's rootfs.diff_ids lists. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  entries: number;
  /** Directories the layer's members needed but did not all list; see copyUpParents(). */
  implicit: ImplicitDir[];
}

/** A directory made because a member below it needed it (0755, root's). */
export interface ImplicitDir {
  path: string;
  /** A member named it after all: its owner, mode and mtime are that member's. */
  listed: boolean;
  /** Something was made or removed in it after it was made: its mtime is the unpack's. */
  touched: boolean;
}

export class LayerError extends ImageError {}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/**
 * The blob's bytes, decompressed according to its first bytes (not its
 * claimed media type). gzip is inflated on a worker thread by libdeflate or
 * libz where FFI is allowed (src/sys/zlib.ts), by DecompressionStream
 * otherwise.
 */
export async function decompressed(
  blob: AsyncIterable<Uint8Array>,
): Promise<AsyncIterable<Uint8Array>> {
  const it = blob[Symbol.asyncIterator]();
  let head = new Uint8Array(0);
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) break;
    const joined = new Uint8Array(head.length + r.value.length);
    joined.set(head);
    joined.set(r.value, head.length);
    head = joined;
  }
  const first = head;
  async function* all(): AsyncGenerator<Uint8Array> {
    try {
      if (first.length > 0) yield first;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    } finally {
      await it.return?.(); // a download stops when the unpack does
    }
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    return gunzipChunks(all()) ??
      ReadableStream.from(all()).pipeThrough(
        new DecompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>,
      );
  }
  if (
    head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f &&
    head[3] === 0xfd
  ) {
    const node = Readable.from(all()).pipe(createZstdDecompress());
    return Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>;
  }
  return all();
}

function lstatOrUndefined(p: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * The member's path as clean components, rooted in the layer: empty and `.`
 * components are dropped (so is a leading `/`), and `..` takes the previous
 * one away, never going above the root (containerd and docker clean names
 * the same way). An empty list is the layer root.
 */
export function memberPath(name: string): string[] {
  const out: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return out;
}

/** Files this process makes are owned by 0:0 (false where that cannot be asked). */
const asRoot = (() => {
  try {
    return Deno.uid() === 0 && Deno.gid() === 0;
  } catch {
    return false;
  }
})();

class Extractor {
  /** Directories known to be real directories (not symlinks) made or checked here. */
  #dirs = new Set<string>([""]);
  /** Directories whose mode (as the layer sets it) is set-group-ID. */
  #setgid = new Set<string>();
  /**
   * Every path this extractor has made and not removed. The destination
   * starts empty and nothing else writes to it, so a path not in here does
   * not exist: no lstat (and no NotFound error built) per member.
   */
  #made = new Set<string>([""]);
  #dirTimes: [string, number, number][] = [];
  #implicit = new Map<string, ImplicitDir>();
  entries = 0;
  constructor(private root: string) {}

  #abs(rel: string): string {
    return rel === "" ? this.root : `${this.root}/${rel}`;
  }

  /** Makes (or checks) every parent of `parts`, refusing a symlink or non-directory on the way. */
  #parents(parts: string[], create: boolean): string {
    let rel = "";
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel === "" ? parts[i] : `${rel}/${parts[i]}`;
      if (this.#dirs.has(rel)) continue;
      const st = this.#made.has(rel) ? lstatOrUndefined(this.#abs(rel)) : undefined;
      if (!st) {
        if (!create) throw new TarError(`${JSON.stringify(rel)} does not exist in the layer`);
        Deno.mkdirSync(this.#abs(rel), { mode: 0o755 });
        Deno.chmodSync(this.#abs(rel), 0o755);
        this.#created(rel);
        this.#implicit.set(rel, { path: rel, listed: false, touched: false });
      } else if (st.isSymlink) {
        throw new TarError(
          `${JSON.stringify(parts.join("/"))} would be written through the symlink ${
            JSON.stringify(rel)
          }`,
        );
      } else if (!st.isDirectory) {
        throw new TarError(
          `${JSON.stringify(parts.join("/"))} has a parent that is not a directory`,
        );
      }
      this.#dirs.add(rel);
    }
    return parts.join("/");
  }

  /** Removes whatever is at `rel` (a directory with its contents). */
  #clear(rel: string, keepDir: boolean): void {
    if (!this.#made.has(rel)) return;
    const st = lstatOrUndefined(this.#abs(rel));
    if (!st) return;
    if (st.isDirectory && keepDir) return;
    Deno.removeSync(this.#abs(rel), { recursive: st.isDirectory });
    for (const set of [this.#dirs, this.#made, this.#setgid]) {
      for (const d of [...set]) {
        if (d === rel || d.startsWith(`${rel}/`)) set.delete(d);
      }
    }
    for (const d of [...this.#implicit.keys()]) {
      if (d === rel || d.startsWith(`${rel}/`)) this.#implicit.delete(d);
    }
    this.#touch(rel);
  }

  /** `rel` was just made. */
  #created(rel: string): void {
    this.#made.add(rel);
    this.#touch(rel);
  }

  /** Something at `rel` was made or removed: its directory's mtime changed. */
  #touch(rel: string): void {
    const i = rel.lastIndexOf("/");
    const d = i < 0 ? undefined : this.#implicit.get(rel.slice(0, i));
    if (d) d.touched = true;
  }

  get implicit(): ImplicitDir[] {
    return [...this.#implicit.values()];
  }

  /**
   * The member's owner, xattrs, mode and times, in containerd's order (a
   * chown clears set-id bits and file capabilities; the xattrs and mode come
   * after it). `fresh`: this member just made the path, so it is root's
   * when made by root outside a set-group-ID directory.
   */
  #meta(rel: string, h: TarHeader, kind: "dir" | "symlink" | "other", fresh: boolean): void {
    const p = this.#abs(rel);
    const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    if (!(fresh && asRoot && h.uid === 0 && h.gid === 0 && !this.#setgid.has(parent))) {
      lchown(p, h.uid, h.gid);
    }
    for (const [k, v] of h.xattrs) {
      // containerd sets no trusted.* xattr (overlayfs keeps its own data there)
      if (k.startsWith("trusted.")) continue;
      try {
        lsetxattr(p, k, v);
      } catch (e) {
        if (!(e instanceof SysError)) throw e;
        if (e.errno === ENOTSUP) continue; // what the file system cannot hold
        // user.* xattrs can be set only on files and directories
        if (e.errno === EPERM && k.startsWith("user.") && !this.#fileOrDir(rel)) continue;
        throw e;
      }
    }
    if (kind !== "symlink") Deno.chmodSync(p, h.mode);
    if (kind === "dir") {
      if (h.mode & 0o2000) this.#setgid.add(rel);
      else this.#setgid.delete(rel);
    }
    lutimes(p, h.mtime, h.mtimeNsec);
  }

  #fileOrDir(rel: string): boolean {
    const st = lstatOrUndefined(this.#abs(rel));
    return !!st && (st.isFile || st.isDirectory);
  }

  async add(
    h: TarHeader,
    body: (
      sink: (c: Uint8Array) => void,
      hole?: (n: number) => void,
    ) => Promise<void>,
  ): Promise<void> {
    this.entries++;
    const parts = memberPath(h.name);
    if (parts.length === 0) return; // the layer root: containerd skips it too
    const base = parts[parts.length - 1];
    if (base === OPAQUE) {
      const dir = this.#parents(parts, true).split("/").slice(0, -1).join("/");
      lsetxattr(this.#abs(dir), "trusted.overlay.opaque", new TextEncoder().encode("y"));
      return;
    }
    if (base.startsWith(WHITEOUT)) {
      const hidden = base.slice(WHITEOUT.length);
      if (hidden === "" || hidden === "." || hidden === "..") {
        throw new TarError(`whiteout ${JSON.stringify(h.name)} names nothing`);
      }
      const rel = this.#parents([...parts.slice(0, -1), hidden], true);
      this.#clear(rel, false);
      mknod(this.#abs(rel), S_IFCHR, 0, 0);
      this.#created(rel);
      lchown(this.#abs(rel), h.uid, h.gid); // as containerd does
      return;
    }
    const rel = this.#parents(parts, true);
    const p = this.#abs(rel);
    switch (h.type) {
      case "dir": {
        this.#clear(rel, true);
        const fresh = !this.#made.has(rel);
        if (fresh) {
          Deno.mkdirSync(p, { mode: 0o700 });
          this.#created(rel);
        }
        const made = this.#implicit.get(rel);
        if (made) made.listed = true;
        this.#dirs.add(rel);
        this.#meta(rel, h, "dir", fresh);
        this.#dirTimes.push([rel, h.mtime, h.mtimeNsec]);
        return;
      }
      case "file": {
        this.#clear(rel, false);
        const f = Deno.openSync(p, { write: true, createNew: true, mode: 0o600 });
        this.#created(rel);
        try {
          let holes = false;
          await body((chunk) => {
            let off = 0;
            while (off < chunk.length) off += f.writeSync(chunk.subarray(off));
          }, (n) => {
            holes = true;
            f.seekSync(n, Deno.SeekMode.Current);
          });
          if (holes) f.truncateSync(h.size); // a hole at the end
        } finally {
          f.close();
        }
        break;
      }
      case "symlink": {
        this.#clear(rel, false);
        Deno.symlinkSync(h.linkname, p);
        this.#created(rel);
        this.#meta(rel, h, "symlink", true);
        return;
      }
      case "link": {
        const target = memberPath(h.linkname);
        if (target.length === 0) {
          throw new TarError(`hard link ${JSON.stringify(h.name)} to the layer root`);
        }
        const t = target.join("/");
        const st = this.#made.has(t) ? lstatOrUndefined(this.#abs(t)) : undefined;
        if (st) this.#parents(target, false); // not through a symlink
        else {
          throw new TarError(
            `hard link ${JSON.stringify(h.name)} to ${
              JSON.stringify(h.linkname)
            }, which the layer does not hold`,
          );
        }
        if (st.isDirectory) {
          throw new TarError(`hard link ${JSON.stringify(h.name)} to a directory`);
        }
        if (t !== rel) {
          this.#clear(rel, false);
          Deno.linkSync(this.#abs(t), p);
          this.#created(rel);
        }
        // the link member's metadata goes to the inode both names share
        this.#meta(rel, h, st.isSymlink ? "symlink" : "other", false);
        return;
      }
      case "fifo":
      case "char":
      case "block": {
        this.#clear(rel, false);
        const kind = h.type === "fifo" ? S_IFIFO : h.type === "char" ? S_IFCHR : S_IFBLK;
        mknod(p, kind | (h.mode & 0o7777), h.devmajor, h.devminor);
        this.#created(rel);
        break;
      }
    }
    this.#meta(rel, h, "other", true);
  }

  /** Directory times again, in member order: adding to a directory changed its mtime. */
  finish(): void {
    for (const [rel, s, ns] of this.#dirTimes) {
      if (this.#dirs.has(rel)) lutimes(this.#abs(rel), s, ns);
    }
  }
}

const S_IFIFO = 0o010000;
const EPERM = 1;
const ENOTSUP = 95;

/**
 * Unpacks a layer blob (a stored file's path, or its bytes as they arrive)
 * into `dest` (an empty directory). Throws LayerError naming the member for
 * anything hostile or damaged; the caller removes `dest`.
 */
export async function unpackLayer(
  blob: string | AsyncIterable<Uint8Array>,
  dest: string,
  name = typeof blob === "string" ? blob : "(download)",
): Promise<UnpackResult> {
  const hash = createHash("sha256");
  let size = 0;
  for (const _ of Deno.readDirSync(dest)) {
    throw new LayerError(`layer ${name}: ${dest} is not empty`); // the Extractor relies on it
  }
  const src = new ByteSource(
    await decompressed(typeof blob === "string" ? (await Deno.open(blob)).readable : blob),
    (c) => {
      hash.update(c);
      size += c.length;
    },
  );
  const x = new Extractor(dest);
  try {
    for await (const entry of readTar(src)) await x.add(entry.header, entry.body);
    x.finish();
  } catch (e) {
    await src.cancel();
    if (e instanceof TarError || e instanceof InflateError) {
      throw new LayerError(`layer ${name}: ${e.message}`);
    }
    if (e instanceof TypeError && /NUL/.test(e.message)) {
      throw new LayerError(`layer ${name}: a member's name contains NUL`);
    }
    if (e instanceof Error && /corrupt|invalid|incorrect header|unexpected end/i.test(e.message)) {
      throw new LayerError(`layer ${name}: the compressed data is damaged (${e.message})`);
    }
    throw e;
  }
  return {
    diffId: `sha256:${hash.digest("hex")}`,
    size,
    entries: x.entries,
    implicit: x.implicit,
  };
}

/** `rel` in the topmost of `lowers` that has it: a directory there, or undefined. */
function lowerDir(lowers: string[], rel: string): string | undefined {
  const parts = rel.split("/");
  next: for (const lower of lowers) {
    let p = lower;
    for (let i = 0; i < parts.length; i++) {
      p = `${p}/${parts[i]}`;
      const st = lstatOrUndefined(p);
      if (!st) continue next; // not in this layer: look below it
      if (!st.isDirectory) return undefined; // replaced there: 0755 it stays
    }
    return p;
  }
  return undefined;
}

/**
 * What containerd's overlayfs unpack gives a directory a layer needed but
 * did not list: the metadata of that directory in the topmost lower layer
 * that has it (owner, mode, mtime unless something was made in it later,
 * and its xattrs but trusted.* ones, not replacing the member's own). A
 * lower that has something else there, or none that has it: 0755, root's.
 * A directory made in one that took a set-group-ID mode from below takes
 * its group, as it would have when made there. `lowers` are the layers'
 * `fs` dirs, topmost first. Layers unpack in
 * parallel, so this runs once all of an image's layers are there.
 */
export function copyUpParents(fs: string, lowers: string[], dirs: ImplicitDir[]): void {
  /** gid of each directory here that took a set-group-ID mode from below. */
  const setgid = new Map<string, number>();
  for (const d of dirs) { // in the order they were made: parents first
    // read back from the store: only a clean path inside the layer is taken
    if (typeof d.path !== "string" || d.path === "" || memberPath(d.path).join("/") !== d.path) {
      throw new LayerError(
        `${fs}: a recorded parent directory ${JSON.stringify(d.path)} is not a clean path`,
      );
    }
    const from = lowerDir(lowers, d.path);
    const p = `${fs}/${d.path}`;
    if (!lstatOrUndefined(p)?.isDirectory) continue;
    if (!from) {
      // made in a directory that was set-group-ID by then: its group
      const gid = setgid.get(d.path.slice(0, Math.max(0, d.path.lastIndexOf("/"))));
      if (!d.listed && gid !== undefined) lchown(p, -1, gid);
      continue;
    }
    if (!d.listed) {
      const st = Deno.lstatSync(from);
      if (st.mode! & 0o2000) setgid.set(d.path, st.gid!);
      lchown(p, st.uid!, st.gid!);
      Deno.chmodSync(p, st.mode! & 0o7777);
      if (!d.touched) {
        const [s, ns] = lmtime(from);
        lutimes(p, s, ns);
      }
    }
    for (const k of llistxattr(from)) {
      if (k.startsWith("trusted.") || lgetxattr(p, k) !== undefined) continue;
      const v = lgetxattr(from, k);
      if (v !== undefined) lsetxattr(p, k, v);
    }
  }
}
