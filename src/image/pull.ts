/**
 * `rkl image pull`: manifest (an index chooses this host's platform), config,
 * then every layer fetched and unpacked at once (three at a time), each blob
 * checked against its digest before it is stored and each layer's
 * uncompressed stream against the config's diff ID before its directory is
 * renamed into place. A failure leaves no record, tag, blob or layer behind
 * except a `.partial` download, which the next pull of that blob resumes.
 */
import { createHash, type Hash, sha256Hex } from "./digest.ts";
import { ImageError } from "../errors.ts";
import { EndpointError, MANIFEST_TYPES, RegistryClient } from "./registry.ts";
import {
  type Credentials,
  type Endpoint,
  endpointsFor,
  type RegistriesConfig,
} from "./registries.ts";
import { formatReference, type ImageRef, parseReference, repoName, tagName } from "./reference.ts";
import {
  type Descriptor,
  digestHex,
  type ImageConfig,
  type ImageRecord,
  type ImageStore,
  type LayerInfo,
  type LayerRef,
} from "./store.ts";
import { copyUpParents, type ImplicitDir, unpackLayer } from "./unpack.ts";
import { writeAtomic } from "../store/store.ts";
import { pathExists } from "../sys/fsutil.ts";
import { trace } from "../trace.ts";
import { concat } from "../bytes.ts";

export interface Progress {
  begin(id: string, label: string, total: number): void;
  advance(id: string, bytes: number): void;
  end(id: string, note: string): void;
  close(): void;
}

export const silentProgress: Progress = {
  begin() {},
  advance() {},
  end() {},
  close() {},
};

export interface PullContext {
  store: ImageStore;
  registries: RegistriesConfig;
  auths: Record<string, Credentials>;
  timeoutMs: number;
  /** `os/arch[/variant]`, default this host's. */
  platform?: string;
  progress?: Progress;
  /** Credentials for this pull only (the CRI's PullImage auth), by registry host; first choice. */
  pullAuths?: Record<string, Credentials>;
}

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
const MANIFEST_ONE = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
]);
const LAYER_TYPES = new Set([
  "application/vnd.oci.image.layer.v1.tar",
  "application/vnd.oci.image.layer.v1.tar+gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.diff.tar.gzip",
  "application/vnd.docker.image.rootfs.diff.tar",
]);
/**
 * Manifests, indexes and image configs are read into memory: each is capped
 * at 4 MiB, as containers/image caps them (iolimits MaxManifestBodySize,
 * MaxConfigBodySize) and the distribution registry caps manifests. A
 * descriptor that names a larger one is refused with its digest before a
 * byte is fetched; a body that turns out larger is cut off at the cap.
 */
export const MAX_MANIFEST = 4 << 20;
export const MAX_CONFIG = 4 << 20;
/** Layers fetched and unpacked at once. */
const WORKERS = 3;

export function hostPlatform(): string {
  return Deno.build.arch === "aarch64" ? "linux/arm64" : "linux/amd64";
}

interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** An image record from its config blob and what the pull or import found. */
export function imageRecord(
  cfg: ConfigBlob,
  found: Pick<ImageRecord, "id" | "manifestDigest" | "repoDigests" | "layers" | "size">,
): ImageRecord {
  return {
    schemaVersion: 1,
    ...found,
    created: cfg.created,
    os: cfg.os ?? "linux",
    architecture: cfg.architecture ?? "",
    config: cfg.config ?? {},
    pulledAt: new Date().toISOString(),
  };
}

export interface ConfigBlob {
  architecture?: string;
  os?: string;
  created?: string;
  config?: ImageConfig;
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** Chooses the manifest for `platform` from an index's entries. */
export function choosePlatform(entries: Descriptor[], platform: string): Descriptor | undefined {
  const [os, arch, variant] = platform.split("/");
  const fit = entries.filter((d) =>
    d.platform?.os === os && d.platform?.architecture === arch &&
    (variant === undefined || d.platform?.variant === undefined || d.platform.variant === variant)
  );
  // arm64's variant is v8 when named; an entry without one fits as well
  return fit.find((d) => d.platform?.variant === variant) ?? fit[0];
}

function describe(ep: Endpoint): string {
  return ep.mirror ? `mirror ${ep.url}` : ep.url;
}

/** A digest mismatch: the blob is not what its descriptor names; nothing of it is kept. */
class DigestMismatch extends ImageError {}

/** Refuses a manifest or config whose descriptor says it is larger than `max`. */
function refuseLarger(d: Descriptor, max: number, what: string): void {
  if (blobSize(d) > max) {
    throw new ImageError(
      `${what} ${d.digest} is ${d.size} bytes; rkl reads ${what}s up to ${max} bytes (${
        max / (1 << 20)
      } MiB)`,
    );
  }
}

/** A descriptor's size, checked before anything is fetched. */
function blobSize(d: Descriptor): number {
  if (!Number.isSafeInteger(d.size) || d.size < 0) {
    throw new ImageError(`blob ${d.digest}: bad size`);
  }
  return d.size;
}

/**
 * Takes a blob's bytes as they arrive (a resumed download starts with what
 * the `.partial` held): the descriptor's size as a limit, the hash, the
 * file, the progress; then the size and the digest once they have all come.
 */
class BlobSink {
  readonly #hex: string;
  constructor(
    private readonly d: Descriptor,
    private readonly progress: Progress,
    private readonly hash: Hash = createHash("sha256"),
    public have = 0,
  ) {
    this.#hex = digestHex(d.digest);
  }

  /** Counts, hashes and (given a file) writes `c`. */
  write(c: Uint8Array, f?: Deno.FsFile): void {
    this.have += c.length;
    if (this.have > this.d.size) {
      throw new ImageError(
        `blob ${this.d.digest}: larger than its descriptor's ${this.d.size} bytes`,
      );
    }
    this.hash.update(c);
    let off = 0;
    while (f && off < c.length) off += f.writeSync(c.subarray(off));
    this.progress.advance(this.#hex, c.length);
  }

  /** EndpointError when `what` (the endpoint and blob) ended early, DigestMismatch when it is not the blob. */
  check(what: string): void {
    if (this.have !== this.d.size) {
      throw new EndpointError(`${what} ended after ${this.have} of ${this.d.size} bytes`);
    }
    const got = `sha256:${this.hash.digest("hex")}`;
    if (got !== this.d.digest) {
      throw new DigestMismatch(
        `blob ${this.d.digest}: digest mismatch (the content hashes to ${got}); nothing stored`,
      );
    }
  }
}

/** Lets go of a response not wanted after all (its GET was made ahead), whatever came of it. */
async function dropResponse(res: Promise<Response>): Promise<void> {
  try {
    await (await res).body?.cancel();
  } catch { /* failed or gone: nothing held */ }
}

export class Puller {
  #client: RegistryClient;
  /** Blobs this pull stored: removed again if the pull fails and no image uses them. */
  #fetched: string[] = [];
  /** Layers this pull unpacked, likewise. */
  #unpacked: string[] = [];
  constructor(private ctx: PullContext) {
    this.#client = new RegistryClient({
      timeoutMs: ctx.timeoutMs,
      credentials: (host) =>
        ctx.pullAuths?.[host] ?? ctx.registries.configs[host]?.auth ?? ctx.auths[host],
    });
  }

  get #progress(): Progress {
    return this.ctx.progress ?? silentProgress;
  }

  /** Fetches a manifest (by tag or digest) from the first endpoint that has it. */
  async #manifest(
    eps: Endpoint[],
    repo: string,
    reference: string,
    want?: string,
  ): Promise<{ ep: Endpoint; body: Uint8Array; digest: string; mediaType: string }> {
    const why: string[] = [];
    for (const ep of eps) {
      try {
        const { res, body } = await this.#whole(
          ep,
          repo,
          `/v2/${repo}/manifests/${reference}`,
          { accept: MANIFEST_TYPES.join(", ") },
          MAX_MANIFEST,
          {
            unknown: "manifest unknown",
            tooLarge: `manifest ${
              want ?? `for ${reference}`
            } is larger than ${MAX_MANIFEST} bytes (4 MiB)`,
          },
        );
        const digest = `sha256:${sha256Hex(body)}`;
        if (want && digest !== want) {
          throw new ImageError(
            `${describe(ep)}: manifest digest mismatch (asked ${want}, got ${digest})`,
          );
        }
        const header = res.headers.get("docker-content-digest");
        if (!want && header && header.startsWith("sha256:") && header !== digest) {
          throw new ImageError(
            `${
              describe(ep)
            }: manifest digest mismatch (registry says ${header}, content is ${digest})`,
          );
        }
        let parsed: Manifest;
        try {
          parsed = JSON.parse(new TextDecoder().decode(body));
        } catch {
          throw new ImageError(`${describe(ep)}: the manifest is not JSON`);
        }
        const mediaType = parsed.mediaType ?? res.headers.get("content-type")?.split(";")[0] ?? "";
        return { ep, body, digest, mediaType };
      } catch (e) {
        if (e instanceof EndpointError) {
          why.push(e.message);
          continue;
        }
        throw e;
      }
    }
    throw new ImageError(why.join("; ") || "no endpoint to pull from");
  }

  /**
   * GETs `path` from `ep` into memory, at most `limit` bytes (ImageError
   * beyond). EndpointError for an answer other than 200, so that the caller
   * tries the next endpoint.
   */
  async #whole(
    ep: Endpoint,
    repo: string,
    path: string,
    headers: Record<string, string>,
    limit: number,
    say: { unknown: string; tooLarge: string },
  ): Promise<{ res: Response; body: Uint8Array }> {
    const res = await this.#client.get(ep, repo, path, headers);
    if (!res.ok) {
      await res.body?.cancel();
      const what = res.status === 404 ? say.unknown : `answered ${res.status}`;
      throw new EndpointError(`${describe(ep)}: ${what}`, res.status);
    }
    const tooLarge = () => new ImageError(`${describe(ep)}: ${say.tooLarge}`);
    if (Number(res.headers.get("content-length") ?? "0") > limit) {
      await res.body?.cancel();
      throw tooLarge();
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const c of this.#client.chunks(res, describe(ep))) {
      total += c.length;
      if (total > limit) throw tooLarge();
      parts.push(c);
    }
    return { res, body: concat(parts) };
  }

  /**
   * The image config's bytes, checked against its descriptor. A config the
   * store lacks is read into memory (at most 4 MiB) and `stored` is
   * false: the caller stores it with the manifests once the layers are
   * there, so the layers need not wait for a file and its fsync. A larger
   * one is refused before it is fetched.
   */
  async #config(
    eps: Endpoint[],
    repo: string,
    d: Descriptor,
  ): Promise<{ bytes: Uint8Array; stored: boolean }> {
    const store = this.ctx.store;
    refuseLarger(d, MAX_CONFIG, "image config");
    if (store.hasBlob(d.digest)) {
      return { bytes: store.readBlob(d.digest, MAX_CONFIG), stored: true };
    }
    const hex = digestHex(d.digest);
    const why: string[] = [];
    for (const ep of eps) {
      try {
        this.#progress.begin(hex, "config", d.size);
        const { body } = await this.#whole(ep, repo, `/v2/${repo}/blobs/${d.digest}`, {}, d.size, {
          unknown: `blob ${d.digest.slice(7, 19)} unknown`,
          tooLarge: `blob ${d.digest}: larger than its descriptor's ${d.size} bytes`,
        });
        const sink = new BlobSink(d, this.#progress);
        sink.write(body);
        sink.check(`${describe(ep)}: blob ${d.digest.slice(7, 19)}`);
        this.#progress.end(hex, "done");
        return { bytes: body, stored: false };
      } catch (e) {
        if (e instanceof EndpointError) {
          why.push(e.message);
          continue;
        }
        throw e;
      }
    }
    throw new ImageError(`blob ${d.digest.slice(0, 19)}: ${why.join("; ")}`);
  }

  /**
   * Downloads a blob into the store unless it is there, under the blob's
   * lock (a second pull of it waits and then finds it). Resumes a
   * `.partial` left by an interrupted pull with an HTTP range request.
   */
  async #blob(
    eps: Endpoint[],
    repo: string,
    d: Descriptor,
    label: string,
    tried: string[] = [],
  ): Promise<void> {
    const store = this.ctx.store;
    const hex = digestHex(d.digest);
    blobSize(d);
    await store.withLock(`blob-${hex}`, async () => {
      if (store.hasBlob(d.digest)) {
        this.#progress.begin(hex, label, d.size);
        this.#progress.end(hex, "already here");
        return;
      }
      const partial = `${store.blobs}/.partial-${hex}`;
      const why: string[] = [...tried];
      for (const ep of eps) {
        try {
          await this.#download(ep, repo, d, partial, label);
          Deno.renameSync(partial, store.blobPath(d.digest));
          this.#fetched.push(d.digest);
          return;
        } catch (e) {
          if (e instanceof EndpointError) {
            why.push(e.message);
            continue;
          }
          if (e instanceof ImageError) {
            try {
              Deno.removeSync(partial);
            } catch { /* gone */ }
          }
          throw e;
        }
      }
      throw new ImageError(`blob ${d.digest.slice(0, 19)}: ${why.join("; ")}`);
    });
  }

  async #download(
    ep: Endpoint,
    repo: string,
    d: Descriptor,
    partial: string,
    label: string,
  ): Promise<void> {
    const hash = createHash("sha256");
    let have = 0;
    try {
      const f = Deno.openSync(partial, { read: true });
      try {
        for await (const c of f.readable) {
          hash.update(c);
          have += c.length;
        }
      } catch { /* closed by readable */ }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (have > d.size) {
      Deno.removeSync(partial);
      return this.#download(ep, repo, d, partial, label);
    }
    const headers: Record<string, string> = {};
    if (have > 0 && have < d.size) headers.range = `bytes=${have}-`;
    const res = have === d.size && have > 0
      ? undefined
      : await this.#client.get(ep, repo, `/v2/${repo}/blobs/${d.digest}`, headers);
    let append = have > 0;
    if (res) {
      if (res.status === 200) {
        append = false;
      } else if (res.status !== 206) {
        await res.body?.cancel();
        throw new EndpointError(
          `${describe(ep)}: blob ${d.digest.slice(7, 19)} ${
            res.status === 404 ? "unknown" : `answered ${res.status}`
          }`,
          res.status,
        );
      }
    }
    const sink = append
      ? new BlobSink(d, this.#progress, hash, have)
      : new BlobSink(d, this.#progress);
    const hex = digestHex(d.digest);
    this.#progress.begin(hex, label, d.size);
    this.#progress.advance(hex, sink.have);
    const what = `${describe(ep)}: blob ${d.digest.slice(7, 19)}`;
    if (res) {
      const f = Deno.openSync(partial, {
        write: true,
        create: true,
        append,
        truncate: !append,
        mode: 0o600,
      });
      try {
        for await (const c of this.#client.chunks(res, what)) sink.write(c, f);
        f.syncSync();
      } finally {
        f.close();
      }
    }
    sink.check(what);
    this.#progress.end(hex, "done");
  }

  /**
   * Downloads a layer's blob and unpacks it in the same pass: the bytes go to
   * the `.partial` file, the blob's hash and the unpacker as they arrive, so
   * the unpack overlaps the download and the blob is never read back. The
   * unpacked directory is renamed into place only after the blob's size and
   * digest are checked and the blob is stored (under both locks: a second
   * pull of either waits, then finds them).
   *
   * undefined: not done this way (the blob or a `.partial` is there already,
   * the endpoint did not answer 200, or the download or the unpack failed);
   * the caller then takes the two-step path, which resumes the `.partial`,
   * reports a digest mismatch as such and unpacks from the stored blob. An
   * EndpointError: `ep` gave no answer (refused, timed out); the two-step
   * path tries the other endpoints, so a silent one is not waited for twice.
   */
  async #streamed(
    ep: Endpoint,
    repo: string,
    d: Descriptor,
    diffId: string,
    label: string,
    early?: Promise<Response>,
  ): Promise<LayerInfo | EndpointError | undefined> {
    let used = false;
    try {
      return await this.#streamedLocked(ep, d, diffId, label, () => {
        used = true;
        return early ?? this.#client.get(ep, repo, `/v2/${repo}/blobs/${d.digest}`, {});
      });
    } finally {
      if (early && !used) await dropResponse(early);
    }
  }

  /** #streamed under the blob's and the layer's locks; `get` asks for the blob. */
  async #streamedLocked(
    ep: Endpoint,
    d: Descriptor,
    diffId: string,
    label: string,
    get: () => Promise<Response>,
  ): Promise<LayerInfo | EndpointError | undefined> {
    const store = this.ctx.store;
    const hex = digestHex(d.digest);
    const lhex = digestHex(diffId);
    blobSize(d);
    const partial = `${store.blobs}/.partial-${hex}`;
    return await store.withLock(`blob-${hex}`, () =>
      store.withLock(`layer-${lhex}`, async () => {
        const have = store.layer(diffId);
        if (have) return have;
        if (store.hasBlob(d.digest) || pathExists(partial)) return undefined;
        let res: Response;
        try {
          res = await get();
        } catch (e) {
          // the two-step path tries the other endpoints and says why
          return e instanceof EndpointError ? e : undefined;
        }
        if (res.status !== 200) {
          await res.body?.cancel();
          return undefined;
        }
        const tmp = layerTmp(store, lhex);
        using f = Deno.openSync(partial, { write: true, createNew: true, mode: 0o600 });
        const sink = new BlobSink(d, this.#progress);
        this.#progress.begin(hex, label, d.size);
        const what = `${describe(ep)}: blob ${d.digest.slice(7, 19)}`;
        const client = this.#client;
        async function* tee(): AsyncGenerator<Uint8Array> {
          for await (const c of client.chunks(res, what)) {
            sink.write(c, f);
            yield c;
          }
        }
        try {
          const info = await unpackInto(store, d, diffId, tmp, store.layerDir(diffId), {
            chunks: tee(),
            beforeCommit: () => {
              sink.check(what);
              f.syncSync();
              Deno.renameSync(partial, store.blobPath(d.digest));
              this.#fetched.push(d.digest);
            },
          });
          this.#unpacked.push(diffId);
          this.#progress.end(hex, "done");
          return info;
        } catch (e) {
          if (e instanceof DigestMismatch) {
            Deno.removeSync(partial);
            throw e;
          }
          // what arrived stays in the .partial for the two-step path to resume
          trace(`pull: streamed layer given up (${(e as Error).message.split("\n")[0]})`);
          return undefined;
        }
      }));
  }

  /** Unpacks a stored layer blob into its directory unless that is there. */
  async unpack(d: Descriptor, diffId: string): Promise<LayerInfo> {
    const { info, made } = await unpackOnce(this.ctx.store, d, diffId);
    if (made) this.#unpacked.push(diffId);
    return info;
  }

  async pull(text: string): Promise<ImageRecord> {
    const ref = parseReference(text);
    const store = this.ctx.store;
    const eps = endpointsFor(this.ctx.registries, ref.registry);
    if (eps.length === 0) {
      throw new ImageError(
        `no endpoint for ${ref.registry} (its mirrors list none and fallback is off)`,
      );
    }
    const name = formatReference(ref);
    try {
      return await store.withGcLock(false, async () => {
        try {
          return await this.#pull(ref, eps);
        } catch (e) {
          await this.#discard();
          throw e;
        }
      });
    } catch (e) {
      if (e instanceof ImageError) throw new ImageError(`Cannot pull ${name}: ${e.message}`);
      throw e;
    } finally {
      this.#progress.close();
    }
  }

  /** Removes the blobs this failed pull stored that no image references. */
  async #discard(): Promise<void> {
    const store = this.ctx.store;
    const used = new Set<string>();
    for (const i of store.listImages()) {
      used.add(i.id);
      for (const l of i.layers) {
        used.add(l.digest);
        used.add(l.diffId);
      }
    }
    for (const l of this.#unpacked) {
      if (used.has(l)) continue;
      await store.withLock(`layer-${digestHex(l)}`, () => {
        try {
          Deno.removeSync(store.layerDir(l), { recursive: true });
        } catch { /* gone */ }
        return Promise.resolve();
      });
    }
    for (const d of this.#fetched) {
      if (used.has(d)) continue;
      await store.withLock(`blob-${digestHex(d)}`, () => {
        try {
          Deno.removeSync(store.blobPath(d));
        } catch { /* gone */ }
        return Promise.resolve();
      });
    }
  }

  /**
   * The image's config as the registry serves it, read without storing
   * anything and without a layer: the manifest (through an index for this
   * platform) and the config blob, each under its 4 MiB cap and checked
   * against its digest. `pod validate` reads an image not pulled yet so.
   */
  async inspect(text: string): Promise<ConfigBlob> {
    const ref = parseReference(text);
    const eps = endpointsFor(this.ctx.registries, ref.registry);
    if (eps.length === 0) {
      throw new ImageError(
        `no endpoint for ${ref.registry} (its mirrors list none and fallback is off)`,
      );
    }
    try {
      const { m, man } = await this.#resolve(ref, eps);
      const order = [m.ep, ...eps.filter((e) => e !== m.ep)];
      const { bytes } = await this.#config(order, ref.repository, man.config);
      if (sha256Hex(bytes) !== digestHex(man.config.digest)) {
        throw new ImageError("config digest mismatch");
      }
      try {
        return JSON.parse(new TextDecoder().decode(bytes)) as ConfigBlob;
      } catch {
        throw new ImageError("the image config is not JSON");
      }
    } catch (e) {
      if (e instanceof ImageError) {
        throw new ImageError(`Cannot read ${formatReference(ref)}'s config: ${e.message}`);
      }
      throw e;
    } finally {
      this.#progress.close();
    }
  }

  /** The image's manifest for this platform (through an index), and every manifest read. */
  async #resolve(ref: ImageRef, eps: Endpoint[]): Promise<{
    m: { ep: Endpoint; body: Uint8Array; digest: string; mediaType: string };
    nameDigest: string;
    blobs: [string, Uint8Array][];
    man: Manifest & { config: Descriptor; layers: Descriptor[] };
  }> {
    const repo = ref.repository;
    const platform = this.ctx.platform ?? hostPlatform();
    let m = await this.#manifest(eps, repo, ref.digest ?? ref.tag!, ref.digest);
    trace("pull: manifest");
    const nameDigest = m.digest; // what `name@digest` refers to (an index, for a multi-arch image)
    const blobs: [string, Uint8Array][] = [[m.digest, m.body]];
    const top = JSON.parse(new TextDecoder().decode(m.body)) as Manifest;
    if (INDEX_TYPES.has(m.mediaType) || top.manifests) {
      const index = top;
      const chosen = choosePlatform(index.manifests ?? [], platform);
      if (!chosen) {
        const offered = (index.manifests ?? []).map((d) =>
          `${d.platform?.os}/${d.platform?.architecture}`
        ).join(", ");
        throw new ImageError(`no manifest for ${platform} (the index offers ${offered || "none"})`);
      }
      refuseLarger(chosen, MAX_MANIFEST, "manifest");
      m = await this.#manifest(
        [m.ep, ...eps.filter((e) => e !== m.ep)],
        repo,
        chosen.digest,
        chosen.digest,
      );
      blobs.push([m.digest, m.body]);
    }
    const man = JSON.parse(new TextDecoder().decode(m.body)) as Manifest;
    if (
      man.schemaVersion === 1 ||
      m.mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")
    ) {
      throw new ImageError(
        "Docker schema 1 manifests are not supported (push the image again with a current client)",
      );
    }
    if (!MANIFEST_ONE.has(m.mediaType) && !(man.config && man.layers)) {
      throw new ImageError(`unsupported manifest type ${JSON.stringify(m.mediaType)}`);
    }
    if (!man.config || !Array.isArray(man.layers)) {
      throw new ImageError("the manifest has no config or layers");
    }
    return { m, nameDigest, blobs, man: { ...man, config: man.config, layers: man.layers } };
  }

  async #pull(ref: ImageRef, eps: Endpoint[]): Promise<ImageRecord> {
    const store = this.ctx.store;
    store.init();
    const repo = ref.repository;
    const { m, nameDigest, blobs, man } = await this.#resolve(ref, eps);
    const order = [m.ep, ...eps.filter((e) => e !== m.ep)];
    // The first layers' GETs go out beside the config's: the registry's
    // answer time overlaps. A layer whose blob is here (or half here) is
    // not asked; an answer not used is let go (see #streamed).
    const early = new Map<string, Promise<Response>>();
    for (const l of man.layers.slice(0, WORKERS)) {
      let hex: string;
      try {
        hex = digestHex(l.digest); // a malformed one is refused where the layer is pulled
      } catch {
        continue;
      }
      if (early.has(l.digest) || store.hasBlob(l.digest)) continue;
      if (pathExists(`${store.blobs}/.partial-${hex}`)) continue;
      const res = this.#client.get(order[0], repo, `/v2/${repo}/blobs/${l.digest}`, {});
      res.catch(() => {}); // looked at where it is used
      early.set(l.digest, res);
    }
    try {
      return await this.#layersAndRecord(ref, m, nameDigest, blobs, man, order, early);
    } finally {
      for (const res of early.values()) await dropResponse(res);
    }
  }

  async #layersAndRecord(
    ref: ImageRef,
    m: { digest: string },
    nameDigest: string,
    blobs: [string, Uint8Array][],
    man: Manifest & { config: Descriptor; layers: Descriptor[] },
    order: Endpoint[],
    early: Map<string, Promise<Response>>,
  ): Promise<ImageRecord> {
    const store = this.ctx.store;
    const repo = ref.repository;
    const { bytes: cfgBytes, stored } = await this.#config(order, repo, man.config);
    trace("pull: config");
    // A stored blob is read back from disk: checked again.
    if (stored && sha256Hex(cfgBytes) !== digestHex(man.config.digest)) {
      throw new ImageError("config digest mismatch");
    }
    if (!stored) blobs.push([man.config.digest, cfgBytes]);
    let cfg: ConfigBlob;
    try {
      cfg = JSON.parse(new TextDecoder().decode(cfgBytes));
    } catch {
      throw new ImageError("the image config is not JSON");
    }
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    if (diffIds.length !== man.layers.length) {
      throw new ImageError(
        `the config lists ${diffIds.length} diff IDs for ${man.layers.length} layers`,
      );
    }
    for (const l of man.layers) {
      if (!LAYER_TYPES.has(l.mediaType)) {
        throw new ImageError(
          `layer ${l.digest.slice(0, 19)} has unsupported media type ${
            JSON.stringify(l.mediaType)
          }`,
        );
      }
    }
    const layers: LayerRef[] = [];
    let size = 0;
    const queue = man.layers.map((l, i) => ({ l, i }));
    const results: LayerInfo[] = [];
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const { l, i } = job;
        const label = `layer ${i + 1}/${man.layers!.length}`;
        const ahead = early.get(l.digest);
        early.delete(l.digest);
        const streamed = await this.#streamed(order[0], repo, l, diffIds[i], label, ahead);
        if (streamed && !(streamed instanceof EndpointError)) {
          results[i] = streamed;
          trace(`pull: streamed ${i}`);
          continue;
        }
        if (!store.layer(diffIds[i])) {
          if (streamed) await this.#blob(order.slice(1), repo, l, label, [streamed.message]);
          else await this.#blob(order, repo, l, label);
        }
        trace(`pull: blob ${i}`);
        results[i] = await this.unpack(l, diffIds[i]);
        trace(`pull: unpacked ${i}`);
      }
    };
    // A failed layer stops new work, and the error waits for the layers in
    // flight: each removes its own half-unpacked directory before rkl exits.
    const settled = await Promise.allSettled(
      Array.from({ length: WORKERS }, worker).map((w) =>
        w.catch((e) => {
          queue.length = 0;
          throw e;
        })
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    man.layers.forEach((l, i) => {
      layers.push({ digest: l.digest, diffId: diffIds[i], mediaType: l.mediaType, size: l.size });
      size += results[i].size;
    });
    await settleParents(store, diffIds);
    for (const [d, b] of blobs) await store.putBlob(d, b);
    const rec = imageRecord(cfg, {
      id: man.config.digest,
      manifestDigest: m.digest,
      repoDigests: [`${repoName(ref)}@${nameDigest}`],
      layers,
      size,
    });
    store.putImage(rec);
    trace("pull: record");
    const tag = tagName(ref);
    if (tag) store.setTag(tag, rec.id, m.digest);
    return store.image(rec.id) ?? rec;
  }
}

/** In a layer's dir: the directories its members needed but did not list, until settled. */
const PARENTS = "parents.json";

/**
 * Gives the directories each layer needed but did not list the metadata the
 * layers below have for them (copyUpParents(), as containerd does), once all
 * of the image's layers (`diffIds`, bottom first) are there. A layer shared
 * by images takes it from the first image that settles it.
 */
export async function settleParents(store: ImageStore, diffIds: string[]): Promise<void> {
  for (let i = 0; i < diffIds.length; i++) {
    const dir = store.layerDir(diffIds[i]);
    if (!pathExists(`${dir}/${PARENTS}`)) continue;
    await store.withLock(`layer-${digestHex(diffIds[i])}`, () => {
      let dirs: ImplicitDir[];
      try {
        dirs = JSON.parse(Deno.readTextFileSync(`${dir}/${PARENTS}`));
      } catch {
        return Promise.resolve(); // settled meanwhile
      }
      const lowers = diffIds.slice(0, i).reverse().map((d) => `${store.layerDir(d)}/fs`);
      copyUpParents(`${dir}/fs`, lowers, dirs);
      Deno.removeSync(`${dir}/${PARENTS}`);
      return Promise.resolve();
    });
  }
}

/**
 * The layer's directory, unpacked from its stored blob unless it is there,
 * under the layer's lock (a second unpack of it waits, then finds it).
 * `made`: this call unpacked it.
 */
export async function unpackOnce(
  store: ImageStore,
  d: Descriptor,
  diffId: string,
): Promise<{ info: LayerInfo; made: boolean }> {
  const hex = digestHex(diffId);
  return await store.withLock(`layer-${hex}`, async () => {
    const have = store.layer(diffId);
    if (have) return { info: have, made: false };
    const tmp = layerTmp(store, hex);
    return { info: await unpackInto(store, d, diffId, tmp, store.layerDir(diffId)), made: true };
  });
}

/**
 * A fresh name to unpack layer `hex` under, after removing what an
 * interrupted unpack of it left (call with the layer's lock held). The name
 * differs each time: ext4 places a directory made under a +T one (the
 * layers dir, see markTopDir) by a hash of its name, and the same name
 * would land the new tree among the inodes of the copy just deleted.
 */
function layerTmp(store: ImageStore, hex: string): string {
  for (const e of Deno.readDirSync(store.layers)) {
    if (e.name.startsWith(`.tmp-${hex}`)) {
      Deno.removeSync(`${store.layers}/${e.name}`, { recursive: true }); // discarded
    }
  }
  return `${store.layers}/.tmp-${hex}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Unpacks `d`'s blob into `tmp`, checks the diff ID, and renames it to
 * `dir`. The blob comes from the store unless `from` gives its bytes as they
 * arrive; `beforeCommit` runs after the diff ID is checked and before the
 * rename (a streamed blob is checked and stored there), and may throw.
 */
export async function unpackInto(
  store: ImageStore,
  d: Descriptor,
  diffId: string,
  tmp: string,
  dir: string,
  from?: { chunks: AsyncIterable<Uint8Array>; beforeCommit: () => void },
): Promise<LayerInfo> {
  Deno.mkdirSync(`${tmp}/fs`, { recursive: true, mode: 0o755 });
  try {
    const r = from
      ? await unpackLayer(from.chunks, `${tmp}/fs`, d.digest.slice(0, 19))
      : await unpackLayer(store.blobPath(d.digest), `${tmp}/fs`);
    if (r.diffId !== diffId) {
      throw new ImageError(
        `layer ${
          d.digest.slice(0, 19)
        }: its content hashes to ${r.diffId}, the config says ${diffId}`,
      );
    }
    from?.beforeCommit();
    const info: LayerInfo = {
      diffId,
      digest: d.digest,
      size: r.size,
      unpackedAt: new Date().toISOString(),
    };
    if (r.implicit.length > 0) {
      writeAtomic(`${tmp}/${PARENTS}`, JSON.stringify(r.implicit) + "\n");
    }
    writeAtomic(`${tmp}/layer.json`, JSON.stringify(info) + "\n");
    Deno.renameSync(tmp, dir);
    return info;
  } catch (e) {
    Deno.removeSync(tmp, { recursive: true });
    if (!(e instanceof ImageError)) {
      throw new ImageError(
        `layer ${d.digest.slice(0, 19)}: ${(e as Error).message.split("\n")[0]}`,
      );
    }
    throw e;
  }
}
