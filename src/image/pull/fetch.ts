/**
 * Fetching blobs from a registry: a body read whole into memory under a cap,
 * the image config, and a layer blob downloaded into the store (resuming a
 * `.partial`), each checked against its descriptor's size and digest.
 */
import { createHash, type Hash } from "../digest.ts";
import { ImageError } from "../../errors.ts";
import { EndpointError } from "../registry.ts";
import type { Endpoint } from "../registries.ts";
import { type Descriptor, digestHex } from "../store.ts";
import { concat } from "../../bytes.ts";
import {
  blobSize,
  describe,
  DigestMismatch,
  MAX_CONFIG,
  type Progress,
  type PullSession,
  refuseLarger,
} from "./common.ts";

/**
 * Takes a blob's bytes as they arrive (a resumed download starts with what
 * the `.partial` held): the descriptor's size as a limit, the hash, the
 * file, the progress; then the size and the digest once they have all come.
 */
export class BlobSink {
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

/**
 * GETs `path` from `ep` into memory, at most `limit` bytes (ImageError
 * beyond). EndpointError for an answer other than 200, so that the caller
 * tries the next endpoint.
 */
export async function fetchWhole(
  s: PullSession,
  ep: Endpoint,
  repo: string,
  path: string,
  headers: Record<string, string>,
  limit: number,
  say: { unknown: string; tooLarge: string },
): Promise<{ res: Response; body: Uint8Array }> {
  const res = await s.client.get(ep, repo, path, headers);
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
  for await (const c of s.client.chunks(res, describe(ep))) {
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
export async function fetchConfig(
  s: PullSession,
  eps: Endpoint[],
  repo: string,
  d: Descriptor,
): Promise<{ bytes: Uint8Array; stored: boolean }> {
  const store = s.ctx.store;
  refuseLarger(d, MAX_CONFIG, "image config");
  if (store.hasBlob(d.digest)) {
    return { bytes: store.readBlob(d.digest, MAX_CONFIG), stored: true };
  }
  const hex = digestHex(d.digest);
  const why: string[] = [];
  for (const ep of eps) {
    try {
      s.progress.begin(hex, "config", d.size);
      const { body } = await fetchWhole(s, ep, repo, `/v2/${repo}/blobs/${d.digest}`, {}, d.size, {
        unknown: `blob ${d.digest.slice(7, 19)} unknown`,
        tooLarge: `blob ${d.digest}: larger than its descriptor's ${d.size} bytes`,
      });
      const sink = new BlobSink(d, s.progress);
      sink.write(body);
      sink.check(`${describe(ep)}: blob ${d.digest.slice(7, 19)}`);
      s.progress.end(hex, "done");
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
export async function fetchBlob(
  s: PullSession,
  eps: Endpoint[],
  repo: string,
  d: Descriptor,
  label: string,
  tried: string[] = [],
): Promise<void> {
  const store = s.ctx.store;
  const hex = digestHex(d.digest);
  blobSize(d);
  await store.withLock(`blob-${hex}`, async () => {
    if (store.hasBlob(d.digest)) {
      s.progress.begin(hex, label, d.size);
      s.progress.end(hex, "already here");
      return;
    }
    const partial = `${store.blobs}/.partial-${hex}`;
    const why: string[] = [...tried];
    for (const ep of eps) {
      try {
        await download(s, ep, repo, d, partial, label);
        Deno.renameSync(partial, store.blobPath(d.digest));
        s.fetched.push(d.digest);
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

export async function download(
  s: PullSession,
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
    return download(s, ep, repo, d, partial, label);
  }
  const headers: Record<string, string> = {};
  if (have > 0 && have < d.size) headers.range = `bytes=${have}-`;
  const res = have === d.size && have > 0
    ? undefined
    : await s.client.get(ep, repo, `/v2/${repo}/blobs/${d.digest}`, headers);
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
  const sink = append ? new BlobSink(d, s.progress, hash, have) : new BlobSink(d, s.progress);
  const hex = digestHex(d.digest);
  s.progress.begin(hex, label, d.size);
  s.progress.advance(hex, sink.have);
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
      for await (const c of s.client.chunks(res, what)) sink.write(c, f);
      f.syncSync();
    } finally {
      f.close();
    }
  }
  sink.check(what);
  s.progress.end(hex, "done");
}
