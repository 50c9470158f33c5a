/**
 * A layer downloaded and unpacked in one pass, its blob stored only once
 * its size and digest are checked.
 */
import { EndpointError } from "../registry.ts";
import type { Endpoint } from "../registries.ts";
import { type Descriptor, digestHex, type LayerInfo } from "../store.ts";
import { pathExists } from "../../sys/fsutil.ts";
import { trace } from "../../trace.ts";
import { blobSize, describe, DigestMismatch, dropResponse, type PullSession } from "./common.ts";
import { BlobSink } from "./fetch.ts";
import { layerTmp, unpackInto } from "./layer_dirs.ts";

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
export async function streamLayer(
  s: PullSession,
  ep: Endpoint,
  repo: string,
  d: Descriptor,
  diffId: string,
  label: string,
  early?: Promise<Response>,
): Promise<LayerInfo | EndpointError | undefined> {
  let used = false;
  try {
    return await streamLayerLocked(s, ep, d, diffId, label, () => {
      used = true;
      return early ?? s.client.get(ep, repo, `/v2/${repo}/blobs/${d.digest}`, {});
    });
  } finally {
    if (early && !used) await dropResponse(early);
  }
}

/** streamLayer under the blob's and the layer's locks; `get` asks for the blob. */
export async function streamLayerLocked(
  s: PullSession,
  ep: Endpoint,
  d: Descriptor,
  diffId: string,
  label: string,
  get: () => Promise<Response>,
): Promise<LayerInfo | EndpointError | undefined> {
  const store = s.ctx.store;
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
      const sink = new BlobSink(d, s.progress);
      s.progress.begin(hex, label, d.size);
      const what = `${describe(ep)}: blob ${d.digest.slice(7, 19)}`;
      const client = s.client;
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
            s.fetched.push(d.digest);
          },
        });
        s.unpacked.push(diffId);
        s.progress.end(hex, "done");
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
