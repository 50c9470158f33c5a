/**
 * The image store under `ROOT/images`, containerd's content store plus an
 * overlayfs snapshotter in plain files:
 *
 *   blobs/sha256/HEX       manifests, configs and layer blobs, by digest (verified)
 *   layers/HEX/fs          one unpacked directory per layer, by diff ID, shared
 *   layers/HEX/layer.json  written before the directory is renamed into place
 *   images/HEX.json        one record per image (HEX: its config digest)
 *   tags/NAME.json         `registry/repo:tag` → image id (NAME URI-encoded)
 *   locks/                 one lock per blob or layer: a pull of it happens once
 *   gc.lock                shared by pulls and imports, exclusive for rm and prune
 *
 * Everything is written to a temporary name and renamed, so a crash leaves
 * either the old state or the new one plus temporaries that the next pull of
 * the same blob resumes (a `.partial` download) or discards.
 */
import { ConflictError, ImageError, NotFoundError } from "../errors.ts";
import { writeAtomic } from "../store/store.ts";
import { FileReadError, readBounded, readTextBounded } from "../sys/readfile.ts";
import { markTopDir } from "../sys/fileattr.ts";
import { tryLockExclusive } from "../sys/trylock.ts";
import { type ImageRef, parseReference, repoName, tagName } from "./reference.ts";
import { sha256Hex } from "../base/hex.ts";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** The parts of an OCI image config rkl uses. */
export interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  ExposedPorts?: Record<string, unknown>;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
}

export interface LayerRef {
  /** Digest of the blob as stored (compressed or not). */
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
}

export interface ImageRecord {
  schemaVersion: 1;
  /** `sha256:…` of the config blob: the image id. */
  id: string;
  manifestDigest: string;
  repoDigests: string[];
  layers: LayerRef[];
  /** Bytes of the unpacked layers (uncompressed tar sizes). */
  size: number;
  created?: string;
  os: string;
  architecture: string;
  config: ImageConfig;
  pulledAt: string;
}

export interface TagRecord {
  name: string;
  id: string;
  manifestDigest: string;
}

export interface LayerInfo {
  diffId: string;
  digest: string;
  size: number;
  unpackedAt: string;
}

const HEX = /^sha256:([a-f0-9]{64})$/;

export function digestHex(digest: string): string {
  const m = HEX.exec(digest);
  if (!m) throw new ImageError(`unsupported or malformed digest ${JSON.stringify(digest)}`);
  return m[1];
}

/**
 * The largest record read back. An image record holds its config's `config`
 * object, and configs are capped at 4 MiB at pull and import; pretty-printed
 * that stays well below this. A larger record comes from a pull before the
 * cap (a 200 MB config once made `image inspect` take 1.07 GB): refused.
 */
export const MAX_RECORD = 16 << 20;

/** An image record larger than {@linkcode MAX_RECORD}: never read. */
export class OversizedRecord extends ImageError {
  constructor(readonly id: string, options: { cause?: unknown } = {}) {
    super(
      `Cannot read image ${id}: its record is larger than ${MAX_RECORD} bytes (16 MiB; ` +
        `\`rkl image rm ${id.slice(7, 19)}\` removes it)`,
      options,
    );
  }
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readTextBounded(path, { max: MAX_RECORD })) as T;
  } catch (e) {
    if (e instanceof FileReadError) {
      if (e.notFound || e.errno === "EACCES" || e.errno === "EPERM") return undefined;
      throw new ImageError(e.message, { cause: e });
    }
    if (e instanceof SyntaxError) return undefined; // damaged: treated as absent, rewritten by a pull
    throw e;
  }
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export class ImageStore {
  readonly blobs: string;
  readonly layers: string;
  readonly images: string;
  readonly tags: string;
  readonly locks: string;
  constructor(readonly root: string) {
    this.blobs = `${root}/blobs/sha256`;
    this.layers = `${root}/layers`;
    this.images = `${root}/images`;
    this.tags = `${root}/tags`;
    this.locks = `${root}/locks`;
  }

  #marked = false;

  init(): void {
    for (const d of [this.root, this.blobs, this.layers, this.images, this.tags, this.locks]) {
      Deno.mkdirSync(d, { recursive: true, mode: 0o700 });
    }
    if (!this.#marked) {
      // Layers are unrelated trees: each starts in a block group of its own
      // (chattr +T; see markTopDir for what that saves).
      markTopDir(this.layers);
      this.#marked = true;
    }
  }

  /** Runs `fn` holding `name`'s lock (exclusive), in this process and across processes. */
  async withLock<T>(name: string, fn: () => Promise<T>, shared = false): Promise<T> {
    this.init();
    const f = Deno.openSync(`${this.locks}/${name}`, { read: true, write: true, create: true });
    try {
      await f.lock(!shared);
      return await fn();
    } finally {
      f.close();
    }
  }

  /** Pulls and imports share this; rm and prune take it alone. */
  withGcLock<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    return this.withLock("gc", fn, !exclusive);
  }

  /**
   * What interrupted pulls and imports left: `layers/.tmp-*` unpack dirs,
   * `blobs/.partial-*` downloads, temp files of atomic writes, `.import-*`
   * dirs. Listed (and with `remove`, removed) only while no pull or import
   * runs, i.e. when the gc lock can be had alone at once; undefined when it
   * cannot (what is there may be a running pull's).
   */
  sweepTemporaries(options: { remove: boolean }): string[] | undefined {
    try {
      Deno.statSync(this.locks);
    } catch {
      return []; // no store yet
    }
    const release = tryLockExclusive(`${this.locks}/gc`);
    if (!release) return undefined;
    try {
      const found: string[] = [];
      const temp: [string, RegExp][] = [
        [this.layers, /^\.tmp-/],
        [this.blobs, /^\.partial-|\.tmp-/],
        [this.images, /\.tmp-/],
        [this.tags, /\.tmp-/],
        [this.root, /^\.import-/],
      ];
      for (const [dir, re] of temp) {
        let entries: Deno.DirEntry[] = [];
        try {
          entries = [...Deno.readDirSync(dir)];
        } catch { /* not made yet */ }
        for (const e of entries) {
          if (!re.test(e.name)) continue;
          const path = `${dir}/${e.name}`;
          found.push(path);
          if (options.remove) Deno.removeSync(path, { recursive: true });
        }
      }
      return found;
    } finally {
      release();
    }
  }

  blobPath(digest: string): string {
    return `${this.blobs}/${digestHex(digest)}`;
  }

  hasBlob(digest: string): boolean {
    return exists(this.blobPath(digest));
  }

  /** Stores small bytes (a manifest, a config) after checking them against `digest`. */
  async putBlob(digest: string, data: Uint8Array): Promise<void> {
    const hex = digestHex(digest);
    if (await sha256Hex(data) !== hex) {
      throw new ImageError(`blob ${digest}: digest mismatch`);
    }
    if (!this.hasBlob(digest)) writeAtomic(this.blobPath(digest), data);
  }

  /** A stored blob read into memory (a manifest, a config): refused when larger than `max`. */
  readBlob(digest: string, max: number): Uint8Array {
    try {
      return readBounded(this.blobPath(digest), { max });
    } catch (e) {
      if (e instanceof FileReadError && !e.notFound) {
        throw new ImageError(`Cannot read blob ${digest}: ${e.reason}`, { cause: e });
      }
      throw e;
    }
  }

  layerDir(diffId: string): string {
    return `${this.layers}/${digestHex(diffId)}`;
  }

  /** The unpacked layer's `fs` directory, or undefined while it is not (fully) there. */
  layer(diffId: string): LayerInfo | undefined {
    return readJson<LayerInfo>(`${this.layerDir(diffId)}/layer.json`);
  }

  /** The record of image `id`; OversizedRecord when it is too large to read. */
  image(id: string): ImageRecord | undefined {
    const path = `${this.images}/${digestHex(id)}.json`;
    let rec: ImageRecord | undefined;
    try {
      rec = readJson<ImageRecord>(path);
    } catch (e) {
      const reason = (e as { cause?: unknown }).cause;
      if (reason instanceof FileReadError && reason.reason.startsWith("larger than")) {
        throw new OversizedRecord(id, { cause: e });
      }
      throw e;
    }
    return rec && rec.id === id && Array.isArray(rec.layers) ? rec : undefined;
  }

  /** Ids of the image records on disk, read or not. */
  #ids(): string[] {
    const out: string[] = [];
    try {
      for (const e of Deno.readDirSync(this.images)) {
        const m = /^([a-f0-9]{64})\.json$/.exec(e.name);
        if (m) out.push(`sha256:${m[1]}`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied)) {
        throw e;
      }
    }
    return out;
  }

  putImage(rec: ImageRecord): void {
    const old = this.image(rec.id);
    if (old) rec.repoDigests = [...new Set([...old.repoDigests, ...rec.repoDigests])];
    writeAtomic(`${this.images}/${digestHex(rec.id)}.json`, JSON.stringify(rec, null, 2) + "\n");
  }

  /** Every image record that can be read; an oversized one is left out (see OversizedRecord). */
  listImages(): ImageRecord[] {
    const out: ImageRecord[] = [];
    for (const id of this.#ids()) {
      try {
        const rec = this.image(id);
        if (rec) out.push(rec);
      } catch (e) {
        if (!(e instanceof OversizedRecord)) throw e;
      }
    }
    return out.sort((a, b) => (b.pulledAt ?? "").localeCompare(a.pulledAt ?? ""));
  }

  #tagFile(name: string): string {
    return `${this.tags}/${encodeURIComponent(name)}.json`;
  }

  setTag(name: string, id: string, manifestDigest: string): void {
    this.init();
    writeAtomic(this.#tagFile(name), JSON.stringify({ name, id, manifestDigest }) + "\n");
  }

  tag(name: string): TagRecord | undefined {
    const t = readJson<TagRecord>(this.#tagFile(name));
    return t && t.name === name && HEX.test(t.id) ? t : undefined;
  }

  removeTag(name: string): boolean {
    try {
      Deno.removeSync(this.#tagFile(name));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  listTags(): TagRecord[] {
    const out: TagRecord[] = [];
    try {
      for (const e of Deno.readDirSync(this.tags)) {
        if (!e.name.endsWith(".json")) continue;
        let name: string;
        try {
          name = decodeURIComponent(e.name.slice(0, -5));
        } catch {
          continue;
        }
        const t = this.tag(name);
        if (t) out.push(t);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied)) {
        throw e;
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  tagsOf(id: string): string[] {
    return this.listTags().filter((t) => t.id === id).map((t) => t.name);
  }

  /**
   * The local image `text` names: a tag (`busybox:1.36`, normalised), a
   * digest reference (`name@sha256:…`), an id (`sha256:…`) or a unique id
   * prefix of at least 4 hex digits.
   */
  find(text: string): ImageRecord | undefined {
    const m = /^(?:sha256:)?([a-f0-9]{4,64})$/.exec(text);
    if (m) {
      // By the record files, so that an oversized record is named (OversizedRecord), not missed.
      const hits = this.#ids().filter((id) => digestHex(id).startsWith(m[1]));
      if (hits.length === 1) {
        const rec = this.image(hits[0]);
        if (rec || text.startsWith("sha256:")) return rec;
      }
      if (hits.length > 1) throw new ConflictError(`image id prefix ${m[1]} is ambiguous`);
      if (text.startsWith("sha256:")) return undefined;
    }
    let ref: ImageRef;
    try {
      ref = parseReference(text);
    } catch {
      return undefined;
    }
    return this.findRef(ref);
  }

  findRef(ref: ImageRef): ImageRecord | undefined {
    if (ref.digest) {
      const want = `${repoName(ref)}@${ref.digest}`;
      return this.listImages().find((i) =>
        i.repoDigests.includes(want) ||
        i.manifestDigest === ref.digest &&
          i.repoDigests.some((d) => d.startsWith(`${repoName(ref)}@`))
      );
    }
    const t = this.tag(tagName(ref)!);
    return t ? this.image(t.id) : undefined;
  }

  /** Lower directories for overlayfs, topmost first; refuses an image whose layers went missing. */
  lowerDirs(rec: ImageRecord): string[] {
    const out: string[] = [];
    for (const l of rec.layers) {
      if (!this.layer(l.diffId)) {
        throw new ImageError(
          `image ${rec.id.slice(7, 19)}: layer ${
            l.diffId.slice(7, 19)
          } is missing from the store (pull the image again)`,
        );
      }
      out.push(`${this.layerDir(l.diffId)}/fs`);
    }
    return out.reverse();
  }

  /** Removes an image record (its tags first); blobs and layers go at prune. */
  removeImage(rec: ImageRecord): string[] {
    const tags = this.tagsOf(rec.id);
    for (const t of tags) this.removeTag(t);
    try {
      Deno.removeSync(`${this.images}/${digestHex(rec.id)}.json`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return tags;
  }

  /**
   * Deletes blobs and layers no image references, and temporaries no pull
   * holds (call with the gc lock held exclusively). Answers what was freed.
   */
  sweep(alsoKeep: Set<string> = new Set()): { blobs: number; layers: number; bytes: number } {
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>(alsoKeep);
    for (const i of this.listImages()) {
      keepBlobs.add(digestHex(i.id));
      keepBlobs.add(digestHex(i.manifestDigest));
      for (const d of i.repoDigests) {
        const at = d.indexOf("@");
        if (at > 0) keepBlobs.add(digestHex(d.slice(at + 1))); // the index a name@digest points at
      }
      for (const l of i.layers) {
        keepBlobs.add(digestHex(l.digest));
        keepLayers.add(digestHex(l.diffId));
      }
    }
    const out = { blobs: 0, layers: 0, bytes: 0 };
    const list = (d: string) => {
      try {
        return [...Deno.readDirSync(d)];
      } catch {
        return [];
      }
    };
    for (const e of list(this.blobs)) {
      if (keepBlobs.has(e.name)) continue;
      const p = `${this.blobs}/${e.name}`;
      try {
        out.bytes += Deno.lstatSync(p).size;
        Deno.removeSync(p, { recursive: true });
        out.blobs++;
      } catch { /* already gone */ }
    }
    for (const e of list(this.layers)) {
      if (keepLayers.has(e.name)) continue;
      const p = `${this.layers}/${e.name}`;
      const info = readJson<LayerInfo>(`${p}/layer.json`);
      out.bytes += info?.size ?? 0;
      Deno.removeSync(p, { recursive: true });
      out.layers++;
    }
    for (const e of list(this.locks)) {
      if (e.name !== "gc") {
        try {
          Deno.removeSync(`${this.locks}/${e.name}`);
        } catch { /* held or gone */ }
      }
    }
    return out;
  }
}

/** An image in use by a container cannot be removed without force. */
export function refuseInUse(rec: ImageRecord, users: string[], force: boolean): void {
  if (users.length > 0 && !force) {
    throw new ConflictError(
      `image ${rec.id.slice(7, 19)} is in use by ${users.join(", ")} (remove them first, or rm -f)`,
    );
  }
}

export function notFound(text: string): NotFoundError {
  return new NotFoundError(
    `image ${JSON.stringify(text)} is not in the store (rkl image pull ${text})`,
  );
}
