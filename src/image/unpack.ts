/**
 * Unpacks one layer (a tar, gzip- or zstd-compressed or plain) into a fresh
 * directory in the form overlayfs reads as a lower layer:
 *
 * - `.wh.NAME` becomes a whiteout: a character device 0:0 named NAME;
 * - `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque=y`);
 * - owners, modes (set-id bits too), xattrs, mtimes and hard links are kept.
 *
 * The layer is hostile until proven otherwise: a member whose name is absolute
 * or climbs with `..`, one whose parent is a symlink (so that writing it would
 * land outside the directory), a hard link to outside, a device node other
 * than the whiteout form, or `trusted.overlay.*` xattrs (overlayfs's own
 * control data) make the whole layer fail. The uncompressed stream is hashed
 * on the way, so the caller checks the diff ID without reading it twice.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { createZstdDecompress } from "node:zlib";
import { ImageError, SysError } from "../errors.ts";
import { lchown, lsetxattr, lutimes, mknod, S_IFCHR } from "../sys/fileattr.ts";
import { gunzipChunks, InflateError } from "../sys/zlib.ts";
import { ByteSource, readTar, TarError, type TarHeader } from "./tar.ts";

export interface UnpackResult {
  /** sha256 of the uncompressed tar: what the image config's rootfs.diff_ids lists. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  entries: number;
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

/** The member's path split into clean components; throws for absolute or climbing names. */
export function memberPath(name: string): string[] {
  if (name.startsWith("/")) {
    throw new TarError(`member ${JSON.stringify(name)} has an absolute path`);
  }
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new TarError(`member ${JSON.stringify(name)} climbs out of the layer with '..'`);
  }
  return parts;
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
  #dirTimes: [string, number][] = [];
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
        this.#made.add(rel);
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
  }

  #meta(rel: string, h: TarHeader, symlink: boolean): void {
    const p = this.#abs(rel);
    // What root makes is root's (0:0) unless its directory is set-group-ID:
    // then no lchown is needed for a 0:0 member (one FFI call fewer per member).
    const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    if (!(asRoot && h.uid === 0 && h.gid === 0 && !this.#setgid.has(parent))) {
      lchown(p, h.uid, h.gid);
    }
    if (!symlink) Deno.chmodSync(p, h.mode); // after chown, which clears set-id bits
    if (h.type === "dir") {
      if (h.mode & 0o2000) this.#setgid.add(rel);
      else this.#setgid.delete(rel);
    }
    for (const [k, v] of h.xattrs) {
      if (k.startsWith("trusted.overlay.")) {
        throw new TarError(`member ${JSON.stringify(h.name)} carries overlayfs's own xattr ${k}`);
      }
      try {
        lsetxattr(p, k, v);
      } catch (e) {
        // user.* xattrs cannot be set on symlinks; nothing else is skipped
        if (!(symlink && e instanceof SysError && e.errno === 1)) throw e;
      }
    }
  }

  async add(h: TarHeader, body: (sink: (c: Uint8Array) => void) => Promise<void>): Promise<void> {
    this.entries++;
    const parts = memberPath(h.name);
    const base = parts[parts.length - 1] ?? "";
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
      this.#made.add(rel);
      return;
    }
    if (parts.length === 0) {
      if (h.type !== "dir") {
        throw new TarError(`member ${JSON.stringify(h.name)} replaces the layer root`);
      }
      this.#meta("", h, false);
      this.#dirTimes.push(["", h.mtime]);
      return;
    }
    const rel = this.#parents(parts, true);
    const p = this.#abs(rel);
    switch (h.type) {
      case "dir": {
        this.#clear(rel, true);
        if (!this.#made.has(rel)) Deno.mkdirSync(p, { mode: 0o700 });
        this.#made.add(rel);
        this.#dirs.add(rel);
        this.#meta(rel, h, false);
        this.#dirTimes.push([rel, h.mtime]);
        return;
      }
      case "file": {
        this.#clear(rel, false);
        const f = Deno.openSync(p, { write: true, createNew: true, mode: 0o600 });
        this.#made.add(rel);
        try {
          await body((chunk) => {
            let off = 0;
            while (off < chunk.length) off += f.writeSync(chunk.subarray(off));
          });
        } finally {
          f.close();
        }
        break;
      }
      case "symlink": {
        this.#clear(rel, false);
        Deno.symlinkSync(h.linkname, p);
        this.#made.add(rel);
        this.#meta(rel, h, true);
        lutimes(p, h.mtime);
        return;
      }
      case "link": {
        const target = memberPath(h.linkname);
        if (target.length === 0) {
          throw new TarError(`hard link ${JSON.stringify(h.name)} to the layer root`);
        }
        const t = this.#parents(target, false);
        const st = this.#made.has(t) ? lstatOrUndefined(this.#abs(t)) : undefined;
        if (!st) {
          throw new TarError(
            `hard link ${JSON.stringify(h.name)} to ${
              JSON.stringify(h.linkname)
            }, which the layer does not hold`,
          );
        }
        if (st.isDirectory) {
          throw new TarError(`hard link ${JSON.stringify(h.name)} to a directory`);
        }
        if (t === rel) return;
        this.#clear(rel, false);
        Deno.linkSync(this.#abs(t), p);
        this.#made.add(rel);
        return; // a link shares its target's metadata
      }
      case "fifo": {
        this.#clear(rel, false);
        mknodFifo(p);
        this.#made.add(rel);
        break;
      }
      case "char":
      case "block": {
        if (h.type === "char" && h.devmajor === 0 && h.devminor === 0) {
          this.#clear(rel, false);
          mknod(p, S_IFCHR, 0, 0); // already in overlayfs's whiteout form
          this.#made.add(rel);
          return;
        }
        throw new TarError(
          `member ${
            JSON.stringify(h.name)
          } is a device node (${h.type} ${h.devmajor}:${h.devminor}); layers may not create devices`,
        );
      }
    }
    this.#meta(rel, h, false);
    lutimes(p, h.mtime);
  }

  finish(): void {
    for (const [rel, t] of this.#dirTimes.reverse()) {
      if (this.#dirs.has(rel)) lutimes(this.#abs(rel), t);
    }
  }
}

function mknodFifo(p: string): void {
  mknod(p, 0o010000 | 0o600, 0, 0); // S_IFIFO
}

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
  return { diffId: `sha256:${hash.digest("hex")}`, size, entries: x.entries };
}
