/** Image removal, pruning and login: the parts that look at containers too. */
import { ImageError, NotFoundError } from "../errors.ts";
import type { StateStore } from "../store/store.ts";
import { parseReference, tagName } from "./reference.ts";
import { RegistryClient } from "./registry.ts";
import { authFilePath, type Credentials, endpointsFor, writeAuthEntry } from "./registries.ts";
import type { ImageService } from "./service.ts";
import { type ImageRecord, notFound, OversizedRecord, refuseInUse } from "./store.ts";

/**
 * What removal and pruning need of the workloads' Host: the state store (its records and lock)
 * and the image service. Declared here so image/ needs nothing from workloads/; a Host is one.
 */
export interface ImageHost {
  store: StateStore;
  images?: ImageService;
}

/** Names of the containers whose rootfs is made of image `id`, and of the pods it is a volume of. */
export function imageUsers(host: ImageHost, id: string): string[] {
  const pods = host.store.list<
    { name: string; schemaVersion: number; imageVolumes?: Record<string, { imageId: string }> }
  >("pods").filter((p) => Object.values(p.imageVolumes ?? {}).some((v) => v.imageId === id))
    .map((p) => `pod ${p.name}`);
  return [
    ...host.store.list<{ name: string; schemaVersion: number; imageId?: string }>("containers")
      .filter((c) => c.imageId === id).map((c) => c.name),
    ...pods,
  ];
}

/**
 * `rkl image rm`: a name removes that tag, and the image once no tag is left;
 * an id removes the image with all its tags. Refused while a container uses
 * the image unless forced. Blobs and layers go at once when nothing else
 * uses them.
 */
export async function removeImages(
  host: ImageHost,
  names: string[],
  force: boolean,
): Promise<string[]> {
  const images = host.images!;
  const store = images.store;
  return await store.withGcLock(true, async () => {
    const out: string[] = [];
    // Each line said is an event too (docker's untag and delete, the image id as the actor).
    const untagged = (id: string, tag: string) => {
      out.push(`Untagged: ${tag}`);
      images.note({ action: "untag", ref: id, name: tag });
    };
    const deleted = (id: string) => {
      out.push(`Deleted: ${id}`);
      images.note({ action: "delete", ref: id });
    };
    for (const n of names) {
      let rec: ImageRecord | undefined;
      try {
        rec = store.find(n);
      } catch (e) {
        if (!(e instanceof OversizedRecord)) throw e;
        // A record too large to read (pulled before configs were capped): removed unread.
        const id = e.id;
        await host.store.withLock(() => {
          refuseInUse({ id } as ImageRecord, imageUsers(host, id), force);
          for (const t of store.removeImage({ id } as ImageRecord)) untagged(id, t);
          return Promise.resolve();
        });
        deleted(id);
        continue;
      }
      if (!rec) throw notFound(n);
      const byId = /^(?:sha256:)?[a-f0-9]{4,64}$/.test(n) &&
        rec.id.slice(7).startsWith(n.replace(/^sha256:/, ""));
      const tags = store.tagsOf(rec.id);
      let tag: string | undefined;
      if (!byId) {
        try {
          tag = tagName(parseReference(n));
        } catch { /* found by id */ }
      }
      if (tag && tags.includes(tag) && tags.length > 1) {
        store.removeTag(tag);
        untagged(rec.id, tag);
        continue;
      }
      await host.store.withLock(() => {
        refuseInUse(rec, imageUsers(host, rec.id), force);
        for (const t of store.removeImage(rec)) untagged(rec.id, t);
        return Promise.resolve();
      });
      deleted(rec.id);
    }
    const freed = sweepUnused(host);
    if (freed.blobs + freed.layers > 0) {
      out.push(`Freed: ${freed.blobs} blobs, ${freed.layers} layers`);
    }
    return out;
  });
}

/** Removes blobs and layers of no image, keeping layers a container still mounts. */
function sweepUnused(host: ImageHost): { blobs: number; layers: number; bytes: number } {
  return host.images!.store.sweep(usedLayerDirs(host));
}

/** Layer directories that a container's overlay names (kept even after a forced rm). */
function usedLayerDirs(host: ImageHost): Set<string> {
  const out = new Set<string>();
  for (
    const c of host.store.list<{ name: string; schemaVersion: number; lowerDirs?: string[] }>(
      "containers",
    )
  ) {
    for (const d of c.lowerDirs ?? []) out.add(d.replace(/\/fs$/, "").split("/").pop()!);
  }
  return out;
}

/** `rkl image prune`: untagged images (all unused with `all`), then unreferenced blobs and layers. */
export async function pruneImages(
  host: ImageHost,
  all: boolean,
): Promise<{ images: string[]; blobs: number; layers: number; bytes: number }> {
  const store = host.images!.store;
  return await store.withGcLock(true, async () => {
    const removed: string[] = [];
    await host.store.withLock(() => {
      for (const rec of store.listImages()) {
        if (imageUsers(host, rec.id).length > 0) continue;
        if (!all && store.tagsOf(rec.id).length > 0) continue;
        for (const t of store.removeImage(rec)) {
          host.images!.note({ action: "untag", ref: rec.id, name: t });
        }
        host.images!.note({ action: "delete", ref: rec.id });
        removed.push(rec.id);
      }
      return Promise.resolve();
    });
    const freed = sweepUnused(host);
    return { images: removed, ...freed };
  });
}

/** Checks credentials against the registry (a token or `/v2/` with them), then stores them. */
export async function login(
  images: ImageService,
  registry: string,
  creds: Credentials,
): Promise<void> {
  const host = registry.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  const cfg = await images.registries();
  const eps = endpointsFor(
    { ...cfg, mirrors: {} },
    host === "index.docker.io" ? "docker.io" : host,
  );
  const client = new RegistryClient({ timeoutMs: images.timeoutMs(), credentials: () => creds });
  try {
    await client.ping(eps[0]);
  } catch (e) {
    if (e instanceof ImageError) throw new ImageError(`Cannot log in to ${host}: ${e.message}`);
    throw e;
  }
  writeAuthEntry(authFilePath(), host, creds);
}

export function requireImage(images: ImageService, text: string): ImageRecord {
  const rec = images.store.find(text);
  if (!rec) throw new NotFoundError(notFound(text).message);
  return rec;
}
