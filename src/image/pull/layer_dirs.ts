/**
 * A layer's directory in the store: unpacked from its blob (or as the blob
 * arrives) under a fresh temporary name, checked against its diff ID,
 * renamed into place; then the directories it needed but did not list
 * settled from the layers below.
 */
import { ImageError } from "../../errors.ts";
import { type Descriptor, digestHex, type ImageStore, type LayerInfo } from "../store.ts";
import { copyUpParents, type ImplicitDir, unpackLayer } from "../unpack.ts";
import { writeAtomic } from "../../store/store.ts";
import { pathExists } from "../../sys/fsutil.ts";

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
export function layerTmp(store: ImageStore, hex: string): string {
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
