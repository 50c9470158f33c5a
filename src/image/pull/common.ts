/**
 * What every step of a pull shares: the context, the progress display, the
 * media types and caps, and small checks on descriptors.
 */
import { ImageError } from "../../errors.ts";
import { RegistryClient } from "../registry.ts";
import type { Credentials, Endpoint, RegistriesConfig } from "../registries.ts";
import type { Descriptor, ImageConfig, ImageRecord, ImageStore } from "../store.ts";

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

export const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
export const MANIFEST_ONE = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
]);
export const LAYER_TYPES = new Set([
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
export const WORKERS = 3;

export function hostPlatform(): string {
  return Deno.build.arch === "aarch64" ? "linux/arm64" : "linux/amd64";
}

export interface Manifest {
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

export function describe(ep: Endpoint): string {
  return ep.mirror ? `mirror ${ep.url}` : ep.url;
}

/** A digest mismatch: the blob is not what its descriptor names; nothing of it is kept. */
export class DigestMismatch extends ImageError {}

/** Refuses a manifest or config whose descriptor says it is larger than `max`. */
export function refuseLarger(d: Descriptor, max: number, what: string): void {
  if (blobSize(d) > max) {
    throw new ImageError(
      `${what} ${d.digest} is ${d.size} bytes; rkl reads ${what}s up to ${max} bytes (${
        max / (1 << 20)
      } MiB)`,
    );
  }
}

/** A descriptor's size, checked before anything is fetched. */
export function blobSize(d: Descriptor): number {
  if (!Number.isSafeInteger(d.size) || d.size < 0) {
    throw new ImageError(`blob ${d.digest}: bad size`);
  }
  return d.size;
}

/** Lets go of a response not wanted after all (its GET was made ahead), whatever came of it. */
export async function dropResponse(res: Promise<Response>): Promise<void> {
  try {
    await (await res).body?.cancel();
  } catch { /* failed or gone: nothing held */ }
}

/**
 * One pull's state, shared by its steps: the context, the registry client,
 * and what the pull stored so far (removed again if it fails).
 */
export class PullSession {
  readonly client: RegistryClient;
  /** Blobs this pull stored: removed again if the pull fails and no image uses them. */
  readonly fetched: string[] = [];
  /** Layers this pull unpacked, likewise. */
  readonly unpacked: string[] = [];
  constructor(readonly ctx: PullContext) {
    this.client = new RegistryClient({
      timeoutMs: ctx.timeoutMs,
      credentials: (host) =>
        ctx.pullAuths?.[host] ?? ctx.registries.configs[host]?.auth ?? ctx.auths[host],
    });
  }

  get progress(): Progress {
    return this.ctx.progress ?? silentProgress;
  }
}
