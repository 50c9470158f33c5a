import { REPO } from "./requires.ts";
/**
 * Test images: tar layers written here byte by byte (so hostile ones can be
 * made too), pushed to a real registry (Debian's docker-registry, started on
 * 127.0.0.1 at a free port) through the distribution API's upload calls.
 */
import { createHash } from "node:crypto";
import { gzipSync, zstdCompressSync } from "node:zlib";

export interface Member {
  name: string;
  type?: "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";
  data?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  major?: number;
  minor?: number;
  xattrs?: Record<string, string>;
  /** More pax records for this member, written as given (a list may repeat a key). */
  pax?: Record<string, string> | [string, string][];
  /** The type flag as written, instead of the one `type` names. */
  flag?: string;
  /** A pax global header ("g") with these records, written before this member. */
  global?: Record<string, string>;
  /** A GNU long name ("L") written before this member. */
  gnuLongName?: string;
}

const enc = new TextEncoder();

function field(h: Uint8Array, off: number, len: number, value: string): void {
  h.set(enc.encode(value).subarray(0, len), off);
}
function octal(h: Uint8Array, off: number, len: number, n: number): void {
  field(h, off, len, n.toString(8).padStart(len - 1, "0") + "\0");
}

function header(name: string, flag: string, m: Partial<Member>, size: number): Uint8Array {
  const h = new Uint8Array(512);
  field(h, 0, 100, name);
  octal(h, 100, 8, m.mode ?? (flag === "5" ? 0o755 : 0o644));
  octal(h, 108, 8, m.uid ?? 0);
  octal(h, 116, 8, m.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 1700000000);
  h.fill(32, 148, 156);
  field(h, 156, 1, flag);
  field(h, 157, 100, m.linkname ?? "");
  field(h, 257, 6, "ustar\0");
  field(h, 263, 2, "00");
  octal(h, 329, 8, m.major ?? 0);
  octal(h, 337, 8, m.minor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function pad(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

/** A tar of `members` (pax headers for long names and xattrs). */
export function tarBytes(members: Member[]): Uint8Array {
  const out: Uint8Array[] = [];
  const flags = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };
  for (const m of members) {
    const data = typeof m.data === "string" ? enc.encode(m.data) : m.data ?? new Uint8Array();
    const pax: string[] = [];
    if (m.name.length > 99) pax.push(`path=${m.name}`);
    for (const [k, v] of Object.entries(m.xattrs ?? {})) pax.push(`SCHILY.xattr.${k}=${v}`);
    for (const [k, v] of Array.isArray(m.pax) ? m.pax : Object.entries(m.pax ?? {})) {
      pax.push(`${k}=${v}`);
    }
    const records = (recs: string[]) =>
      enc.encode(
        recs.map((r) => {
          let len = r.length + 3;
          while (`${len} ${r}\n`.length !== len) len = `${len} ${r}\n`.length;
          return `${len} ${r}\n`;
        }).join(""),
      );
    if (m.global) {
      const body = records(Object.entries(m.global).map(([k, v]) => `${k}=${v}`));
      out.push(header("GlobalHead", "g", {}, body.length), body, pad(body.length));
    }
    if (m.gnuLongName !== undefined) {
      const body = enc.encode(m.gnuLongName + "\0");
      out.push(header("././@LongLink", "L", {}, body.length), body, pad(body.length));
    }
    if (pax.length > 0) {
      const body = records(pax);
      out.push(header("PaxHeader", "x", {}, body.length), body, pad(body.length));
    }
    const t = m.type ?? "file";
    out.push(
      header(m.name.slice(0, 99), m.flag ?? flags[t], m, t === "file" ? data.length : 0),
    );
    if (t === "file") out.push(data, pad(data.length));
  }
  out.push(new Uint8Array(1024));
  const total = out.reduce((n, b) => n + b.length, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const b of out) {
    all.set(b, off);
    off += b.length;
  }
  return all;
}

/** A tar of a directory tree, made by GNU tar (numeric owners, sorted). */
export async function dirTar(dir: string): Promise<Uint8Array> {
  const out = await new Deno.Command("tar", {
    args: ["--numeric-owner", "--sort=name", "--format=pax", "-C", dir, "-cf", "-", "."],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error(`tar of ${dir} failed`);
  return out.stdout;
}

export function sha(b: Uint8Array): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

export interface Registry {
  url: string;
  host: string;
  stop(): Promise<void>;
}

/** Starts docker-registry on 127.0.0.1 at a free port with storage under `dir`. */
export async function startRegistry(dir: string): Promise<Registry> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  Deno.mkdirSync(`${dir}/data`, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/config.yml`,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = new Deno.Command("docker-registry", {
    args: ["serve", `${dir}/config.yml`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`${url}/v2/`);
      await r.body?.cancel();
      if (r.ok) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
    if (i === 99) throw new Error("docker-registry did not start");
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

async function pushBlob(url: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = sha(data);
  const head = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  await head.body?.cancel();
  if (head.ok) return digest;
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
  let loc = start.headers.get("location")!;
  if (loc.startsWith("/")) loc = `${url}${loc}`;
  const put = await fetch(`${loc}${loc.includes("?") ? "&" : "?"}digest=${digest}`, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: new Uint8Array(data),
  });
  await put.body?.cancel();
  if (put.status !== 201) throw new Error(`upload of ${digest}: ${put.status}`);
  return digest;
}

export async function pushManifest(
  url: string,
  repo: string,
  ref: string,
  mediaType: string,
  doc: unknown,
): Promise<{ digest: string; size: number }> {
  const body = enc.encode(JSON.stringify(doc));
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    method: "PUT",
    headers: { "content-type": mediaType },
    body,
  });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`manifest ${repo}:${ref}: ${r.status} ${text}`);
  return { digest: sha(body), size: body.length };
}

export interface ImageSpec {
  /** Uncompressed layer tars, bottom first. */
  layers: Uint8Array[];
  compression?: "gzip" | "zstd" | "none";
  config?: Record<string, unknown>;
  architecture?: string;
  /** Docker schema 2 media types instead of OCI's. */
  docker?: boolean;
}

/** Pushes an image; answers the manifest's digest and size and the config's digest. */
export async function pushImage(
  url: string,
  repo: string,
  tag: string,
  spec: ImageSpec,
): Promise<{ digest: string; size: number; configDigest: string }> {
  const comp = spec.compression ?? "gzip";
  const layerDescs = [];
  for (const tar of spec.layers) {
    const blob = comp === "gzip" ? gzipSync(tar) : comp === "zstd" ? zstdCompressSync(tar) : tar;
    const digest = await pushBlob(url, repo, new Uint8Array(blob));
    const mt = spec.docker
      ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
      : `application/vnd.oci.image.layer.v1.tar${comp === "none" ? "" : `+${comp}`}`;
    layerDescs.push({ mediaType: mt, digest, size: blob.length });
  }
  const config = enc.encode(JSON.stringify({
    architecture: spec.architecture ?? "amd64",
    os: "linux",
    created: "2026-11-30T12:00:00Z",
    config: spec.config ?? { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
    rootfs: { type: "layers", diff_ids: spec.layers.map(sha) },
  }));
  const configDigest = await pushBlob(url, repo, config);
  const mediaType = spec.docker
    ? "application/vnd.docker.distribution.manifest.v2+json"
    : "application/vnd.oci.image.manifest.v1+json";
  const m = await pushManifest(url, repo, tag, mediaType, {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: spec.docker
        ? "application/vnd.docker.container.image.v1+json"
        : "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: layerDescs,
  });
  return { ...m, configDigest };
}

/** Pushes an index over already-pushed manifests. */
export function pushIndex(
  url: string,
  repo: string,
  tag: string,
  entries: { digest: string; size: number; architecture: string }[],
) {
  const mediaType = "application/vnd.oci.image.index.v1+json";
  return pushManifest(url, repo, tag, mediaType, {
    schemaVersion: 2,
    mediaType,
    manifests: entries.map((e) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: e.digest,
      size: e.size,
      platform: { os: "linux", architecture: e.architecture },
    })),
  });
}

/**
 * The test bundle's busybox rootfs pushed to `reg` as library/busybox:`tag`,
 * and `dir`/registries.yaml mirroring docker.io to it (no fallback to the
 * real one); that file's path, for RKL_REGISTRIES_CONFIG.
 */
export async function mirrorBusybox(reg: Registry, dir: string, tag = "1.36"): Promise<string> {
  await pushImage(reg.url, "library/busybox", tag, {
    layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  const file = `${dir}/registries.yaml`;
  Deno.writeTextFileSync(
    file,
    `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n    fallback: false\n`,
  );
  return file;
}
