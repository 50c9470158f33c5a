/**
 * The pull itself: the manifest resolved, the first layers' GETs made
 * early, the config, every layer fetched and unpacked by three workers, then
 * the blobs, the image record and its tag stored. A failed pull removes what
 * it stored that no image uses.
 */
import { sha256Hex } from "../digest.ts";
import { ImageError } from "../../errors.ts";
import { EndpointError } from "../registry.ts";
import { type Endpoint, endpointsFor } from "../registries.ts";
import { formatReference, type ImageRef, parseReference, repoName, tagName } from "../reference.ts";
import {
  type Descriptor,
  digestHex,
  type ImageRecord,
  type LayerInfo,
  type LayerRef,
} from "../store.ts";
import { pathExists } from "../../sys/fsutil.ts";
import { trace } from "../../trace.ts";
import {
  type ConfigBlob,
  dropResponse,
  imageRecord,
  LAYER_TYPES,
  type Manifest,
  type PullContext,
  PullSession,
  WORKERS,
} from "./common.ts";
import { fetchBlob, fetchConfig } from "./fetch.ts";
import { settleParents, unpackOnce } from "./layer_dirs.ts";
import { resolveManifest } from "./resolve.ts";
import { streamLayer } from "./stream.ts";

export class Puller {
  /** The registry client and what this pull stored (removed again if it fails). */
  #s: PullSession;
  constructor(private ctx: PullContext) {
    this.#s = new PullSession(ctx);
  }

  /** Unpacks a stored layer blob into its directory unless that is there. */
  async unpack(d: Descriptor, diffId: string): Promise<LayerInfo> {
    const { info, made } = await unpackOnce(this.ctx.store, d, diffId);
    if (made) this.#s.unpacked.push(diffId);
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
      this.#s.progress.close();
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
    for (const l of this.#s.unpacked) {
      if (used.has(l)) continue;
      await store.withLock(`layer-${digestHex(l)}`, () => {
        try {
          Deno.removeSync(store.layerDir(l), { recursive: true });
        } catch { /* gone */ }
        return Promise.resolve();
      });
    }
    for (const d of this.#s.fetched) {
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
      const { m, man } = await resolveManifest(this.#s, ref, eps);
      const order = [m.ep, ...eps.filter((e) => e !== m.ep)];
      const { bytes } = await fetchConfig(this.#s, order, ref.repository, man.config);
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
      this.#s.progress.close();
    }
  }

  async #pull(ref: ImageRef, eps: Endpoint[]): Promise<ImageRecord> {
    const store = this.ctx.store;
    store.init();
    const repo = ref.repository;
    const { m, nameDigest, blobs, man } = await resolveManifest(this.#s, ref, eps);
    const order = [m.ep, ...eps.filter((e) => e !== m.ep)];
    // The first layers' GETs go out beside the config's: the registry's
    // answer time overlaps. A layer whose blob is here (or half here) is
    // not asked; an answer not used is let go (see streamLayer).
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
      const res = this.#s.client.get(order[0], repo, `/v2/${repo}/blobs/${l.digest}`, {});
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
    const { bytes: cfgBytes, stored } = await fetchConfig(this.#s, order, repo, man.config);
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
        const streamed = await streamLayer(this.#s, order[0], repo, l, diffIds[i], label, ahead);
        if (streamed && !(streamed instanceof EndpointError)) {
          results[i] = streamed;
          trace(`pull: streamed ${i}`);
          continue;
        }
        if (!store.layer(diffIds[i])) {
          if (streamed) {
            await fetchBlob(this.#s, order.slice(1), repo, l, label, [streamed.message]);
          } else await fetchBlob(this.#s, order, repo, l, label);
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
