/**
 * From a reference to the image's manifest: the first endpoint (mirror or
 * registry) that has it, and through an index the manifest for the
 * platform, each checked against its digest.
 */
import { sha256Hex } from "../digest.ts";
import { ImageError } from "../../errors.ts";
import { EndpointError, MANIFEST_TYPES } from "../registry.ts";
import type { Endpoint } from "../registries.ts";
import type { ImageRef } from "../reference.ts";
import type { Descriptor } from "../store.ts";
import { trace } from "../../trace.ts";
import {
  choosePlatform,
  describe,
  hostPlatform,
  INDEX_TYPES,
  type Manifest,
  MANIFEST_ONE,
  MAX_MANIFEST,
  type PullSession,
  refuseLarger,
} from "./common.ts";
import { fetchWhole } from "./fetch.ts";

/** Fetches a manifest (by tag or digest) from the first endpoint that has it. */
export async function fetchManifest(
  s: PullSession,
  eps: Endpoint[],
  repo: string,
  reference: string,
  want?: string,
): Promise<{ ep: Endpoint; body: Uint8Array; digest: string; mediaType: string }> {
  const why: string[] = [];
  for (const ep of eps) {
    try {
      const { res, body } = await fetchWhole(
        s,
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

/** The image's manifest for this platform (through an index), and every manifest read. */
export async function resolveManifest(s: PullSession, ref: ImageRef, eps: Endpoint[]): Promise<{
  m: { ep: Endpoint; body: Uint8Array; digest: string; mediaType: string };
  nameDigest: string;
  blobs: [string, Uint8Array][];
  man: Manifest & { config: Descriptor; layers: Descriptor[] };
}> {
  const repo = ref.repository;
  const platform = s.ctx.platform ?? hostPlatform();
  let m = await fetchManifest(s, eps, repo, ref.digest ?? ref.tag!, ref.digest);
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
    m = await fetchManifest(
      s,
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
