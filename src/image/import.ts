/**
 * `rkl image import`: a `docker save` tarball (manifest.json + config +
 * layer tars) or an OCI image layout tarball (oci-layout, index.json,
 * blobs/sha256/…). The archive is read with the same tar reader and the same
 * path rules as a layer; every blob is checked against its digest.
 */
import { createHash, sha256Hex } from "./digest.ts";
import { ImageError, UsageError } from "../errors.ts";
import { parseReference, tagName } from "./reference.ts";
import { type Descriptor, digestHex, type ImageRecord, type ImageStore } from "./store.ts";
import { ByteSource, readTar, TarError } from "./tar.ts";
import { memberPath } from "./unpack.ts";
import {
  choosePlatform,
  type ConfigBlob,
  hostPlatform,
  imageRecord,
  MAX_CONFIG,
  MAX_MANIFEST,
  settleParents,
  unpackOnce,
} from "./pull.ts";
import { FileReadError, openRegularFile, readBounded } from "../sys/readfile.ts";

interface Staged {
  dir: string;
  files: Set<string>;
  links: Map<string, string>;
}

async function stage(f: Deno.FsFile, dir: string): Promise<Staged> {
  const files = new Set<string>();
  const links = new Map<string, string>();
  const head = new Uint8Array(2);
  let n: number | null;
  try {
    n = f.readSync(head);
    f.seekSync(0, Deno.SeekMode.Start);
  } catch (e) {
    f.close();
    throw e;
  }
  let stream = f.readable as ReadableStream<Uint8Array>;
  if (n === 2 && head[0] === 0x1f && head[1] === 0x8b) {
    stream = f.readable.pipeThrough(new DecompressionStream("gzip"));
  }
  const src = new ByteSource(stream);
  for await (const e of readTar(src)) {
    const parts = memberPath(e.header.name);
    const rel = parts.join("/");
    if (e.header.type === "dir" || rel === "") continue;
    if (e.header.type === "symlink") {
      const base = e.header.linkname.startsWith("/") ? [] : parts.slice(0, -1);
      links.set(rel, withinArchive(base, e.header.linkname));
      continue;
    }
    if (e.header.type === "link") {
      links.set(rel, withinArchive([], e.header.linkname));
      continue;
    }
    if (e.header.type !== "file") continue;
    // Staged flat, by a hash of the name: no member decides a path on disk.
    const out = Deno.openSync(`${dir}/${sha256Hex(new TextEncoder().encode(rel))}`, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    try {
      await e.body((c) => {
        let off = 0;
        while (off < c.length) off += out.writeSync(c.subarray(off));
      });
    } finally {
      out.close();
    }
    files.add(rel);
  }
  return { dir, files, links };
}

/** A link target as a member name; refused when it leaves the archive. */
function withinArchive(base: string[], target: string): string {
  const out = [...base];
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (out.length === 0) {
        throw new TarError(`link target ${JSON.stringify(target)} leaves the archive`);
      }
      out.pop();
    } else out.push(p);
  }
  return out.join("/");
}

function resolve(s: Staged, name: string): string {
  let rel = memberPath(name).join("/");
  for (let hops = 0; s.links.has(rel); hops++) {
    if (hops > 16) throw new ImageError(`archive member ${name}: too many links`);
    rel = s.links.get(rel)!;
  }
  if (!s.files.has(rel)) throw new ImageError(`the archive has no ${JSON.stringify(name)}`);
  return `${s.dir}/${sha256Hex(new TextEncoder().encode(rel))}`;
}

function fileDigest(path: string): string {
  const h = createHash("sha256");
  const f = Deno.openSync(path);
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n = f.readSync(buf); n !== null && n > 0; n = f.readSync(buf)) {
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return `sha256:${h.digest("hex")}`;
}

interface Parsed {
  configBytes: Uint8Array;
  configDigest: string;
  layers: { path: string; digest: string; mediaType: string; size: number }[];
  manifestBytes: Uint8Array;
  tags: string[];
  repoDigests: string[];
}

async function register(store: ImageStore, p: Parsed): Promise<ImageRecord> {
  const cfg = JSON.parse(new TextDecoder().decode(p.configBytes)) as ConfigBlob;
  const diffIds = cfg.rootfs?.diff_ids ?? [];
  if (diffIds.length !== p.layers.length) {
    throw new ImageError(
      `the config lists ${diffIds.length} diff IDs for ${p.layers.length} layers`,
    );
  }
  await store.putBlob(p.configDigest, p.configBytes);
  let size = 0;
  for (const [i, l] of p.layers.entries()) {
    await store.withLock(`blob-${digestHex(l.digest)}`, () => {
      if (!store.hasBlob(l.digest)) {
        if (fileDigest(l.path) !== l.digest) {
          throw new ImageError(`layer ${l.digest}: digest mismatch`);
        }
        Deno.renameSync(l.path, store.blobPath(l.digest));
      }
      return Promise.resolve();
    });
    const { info } = await unpackOnce(store, l as Descriptor, diffIds[i]);
    size += info.size;
  }
  await settleParents(store, diffIds);
  const manifestDigest = `sha256:${sha256Hex(p.manifestBytes)}`;
  await store.putBlob(manifestDigest, p.manifestBytes);
  const rec = imageRecord(cfg, {
    id: p.configDigest,
    manifestDigest,
    repoDigests: p.repoDigests,
    layers: p.layers.map((l, i) => ({
      digest: l.digest,
      diffId: diffIds[i],
      mediaType: l.mediaType,
      size: l.size,
    })),
    size,
  });
  store.putImage(rec);
  for (const t of p.tags) store.setTag(t, rec.id, manifestDigest);
  return store.image(rec.id) ?? rec;
}

function normaliseTag(text: string): string {
  const name = tagName(parseReference(text));
  if (!name) throw new ImageError(`${JSON.stringify(text)} is not a name with a tag`);
  return name;
}

/** Imports every image of the archive; `name` tags the images that carry no name of their own. */
export async function importArchive(
  store: ImageStore,
  archive: string,
  name?: string,
): Promise<ImageRecord[]> {
  // A regular file only, opened before anything is made: a FIFO nobody
  // writes would hang the import, /dev/zero would never end.
  let f: Deno.FsFile;
  try {
    f = openRegularFile(archive);
  } catch (e) {
    if (!(e instanceof FileReadError)) throw e;
    // The argument names no regular file: a user error (exit 2).
    throw new UsageError(`Cannot import ${archive}: ${e.reason}`, { cause: e });
  }
  try {
    store.init();
  } catch (e) {
    f.close();
    throw e;
  }
  const dir = `${store.root}/.import-${Deno.pid}-${Date.now()}`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  try {
    return await store.withGcLock(false, async () => {
      let s: Staged;
      try {
        s = await stage(f, dir);
      } catch (e) {
        if (e instanceof TarError) throw new ImageError(`Cannot import ${archive}: ${e.message}`);
        throw e;
      } finally {
        try {
          f.close();
        } catch { /* closed when its stream ended */ }
      }
      // Manifests, indexes and configs are read into memory: 4 MiB each at most, as in a pull.
      const read = (n: string, max = MAX_MANIFEST) => {
        try {
          return readBounded(resolve(s, n), { max });
        } catch (e) {
          if (!(e instanceof FileReadError)) throw e;
          throw new ImageError(`Cannot import ${archive}: member ${n} is ${e.reason}`, {
            cause: e,
          });
        }
      };
      const out: ImageRecord[] = [];
      if (s.files.has("index.json")) {
        const index = JSON.parse(new TextDecoder().decode(read("index.json"))) as {
          manifests?: Descriptor[];
        };
        const blob = (d: Descriptor, what: "manifest" | "image config" = "manifest") => {
          const max = what === "manifest" ? MAX_MANIFEST : MAX_CONFIG;
          if (Number.isSafeInteger(d.size) && d.size > max) {
            throw new ImageError(
              `Cannot import ${archive}: ${what} ${d.digest} is ${d.size} bytes; rkl reads ${what}s up to ${max} bytes (4 MiB)`,
            );
          }
          const bytes = read(`blobs/sha256/${digestHex(d.digest)}`, max);
          if (sha256Hex(bytes) !== digestHex(d.digest)) {
            throw new ImageError(`blob ${d.digest}: digest mismatch`);
          }
          return bytes;
        };
        for (const top of index.manifests ?? []) {
          let d = top;
          let bytes = blob(d);
          let doc = JSON.parse(new TextDecoder().decode(bytes)) as {
            manifests?: Descriptor[];
            config?: Descriptor;
            layers?: Descriptor[];
          };
          if (doc.manifests) {
            const chosen = choosePlatform(doc.manifests, hostPlatform());
            if (!chosen) {
              throw new ImageError(`Cannot import ${archive}: no manifest for ${hostPlatform()}`);
            }
            d = chosen;
            bytes = blob(d);
            doc = JSON.parse(new TextDecoder().decode(bytes));
          }
          if (!doc.config || !doc.layers) {
            throw new ImageError(
              `Cannot import ${archive}: manifest ${d.digest} has no config or layers`,
            );
          }
          const refName = top.annotations?.["io.containerd.image.name"] ??
            top.annotations?.["org.opencontainers.image.ref.name"];
          const tags: string[] = [];
          if (refName && /[/:]/.test(refName)) tags.push(normaliseTag(refName));
          else if (name) {
            tags.push(normaliseTag(refName && !name.includes(":") ? `${name}:${refName}` : name));
          }
          out.push(
            await register(store, {
              configBytes: blob(doc.config, "image config"),
              configDigest: doc.config.digest,
              layers: doc.layers.map((l) => ({
                path: resolve(s, `blobs/sha256/${digestHex(l.digest)}`),
                digest: l.digest,
                mediaType: l.mediaType,
                size: l.size,
              })),
              manifestBytes: bytes,
              tags,
              repoDigests: [],
            }),
          );
        }
      } else if (s.files.has("manifest.json")) {
        const list = JSON.parse(new TextDecoder().decode(read("manifest.json"))) as {
          Config: string;
          RepoTags?: string[] | null;
          Layers: string[];
        }[];
        for (const m of list) {
          const configBytes = read(m.Config, MAX_CONFIG);
          const configDigest = `sha256:${sha256Hex(configBytes)}`;
          const layers = m.Layers.map((l) => {
            const path = resolve(s, l);
            const head = new Uint8Array(2);
            const lf = Deno.openSync(path);
            try {
              lf.readSync(head);
            } finally {
              lf.close();
            }
            const gz = head[0] === 0x1f && head[1] === 0x8b;
            return {
              path,
              digest: fileDigest(path),
              mediaType: gz
                ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
                : "application/vnd.docker.image.rootfs.diff.tar",
              size: Deno.statSync(path).size,
            };
          });
          const manifest = {
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: {
              mediaType: "application/vnd.oci.image.config.v1+json",
              digest: configDigest,
              size: configBytes.length,
            },
            layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
          };
          const tags = (m.RepoTags ?? []).map(normaliseTag);
          if (tags.length === 0 && name) tags.push(normaliseTag(name));
          out.push(
            await register(store, {
              configBytes,
              configDigest,
              layers,
              manifestBytes: new TextEncoder().encode(JSON.stringify(manifest)),
              tags,
              repoDigests: [],
            }),
          );
        }
      } else {
        throw new ImageError(
          `Cannot import ${archive}: neither an OCI layout (index.json) nor a docker save archive (manifest.json)`,
        );
      }
      return out;
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
