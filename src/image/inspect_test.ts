/**
 * Puller.inspect against a registry served here on 127.0.0.1: the config of
 * an image not pulled is read from its manifest and config blob alone (no
 * layer asked for), through an index, and nothing is stored.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "./digest.ts";
import { Puller } from "./pull.ts";
import { emptyRegistries } from "./registries.ts";
import { ImageStore } from "./store.ts";

const enc = new TextEncoder();

function blob(value: unknown): { bytes: Uint8Array; digest: string } {
  const bytes = enc.encode(JSON.stringify(value));
  return { bytes, digest: `sha256:${sha256Hex(bytes)}` };
}

async function withRegistry(
  fn: (
    url: string,
    asked: string[],
    put: (path: string, b: Uint8Array, t?: string) => void,
  ) => Promise<void>,
): Promise<void> {
  const routes = new Map<string, { body: Uint8Array; type: string }>();
  const asked: string[] = [];
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      asked.push(path);
      const r = routes.get(path);
      if (!r) return new Response("{}", { status: 404 });
      return new Response(r.body as BodyInit, { headers: { "content-type": r.type } });
    },
  );
  try {
    await fn(
      `http://127.0.0.1:${server.addr.port}`,
      asked,
      (p, body, type = "application/octet-stream") => routes.set(p, { body, type }),
    );
  } finally {
    ac.abort();
    await server.finished;
  }
}

function puller(url: string, root: string): Puller {
  const registries = emptyRegistries();
  registries.mirrors["docker.io"] = { endpoint: [url], fallback: false };
  return new Puller({ store: new ImageStore(root), registries, auths: {}, timeoutMs: 3000 });
}

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = {
  architecture: "amd64",
  os: "linux",
  config: { Entrypoint: ["/bin/sh", "-c"], Cmd: ["echo hi"], User: "1000", WorkingDir: "/srv" },
  rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] },
};

function pushed(put: (p: string, b: Uint8Array, t?: string) => void, config: unknown) {
  const cfg = blob(config);
  const layer = `sha256:${"2".repeat(64)}`;
  const man = blob({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: cfg.digest,
      size: cfg.bytes.length,
    },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer, size: 9 }],
  });
  put(`/v2/library/app/blobs/${cfg.digest}`, cfg.bytes);
  return { cfg, man, layer };
}

Deno.test("Puller.inspect() reads the manifest and config only and stores nothing", async () => {
  const root = Deno.makeTempDirSync({ prefix: "rkl-inspect-" });
  try {
    await withRegistry(async (url, asked, put) => {
      const { man, layer } = pushed(put, CONFIG);
      put("/v2/library/app/manifests/1", man.bytes, MANIFEST);
      const cfg = await puller(url, `${root}/images`).inspect("app:1");
      assert.deepEqual(cfg.config, CONFIG.config);
      assert.ok(!asked.some((p) => p.includes(layer)), `a layer was asked for: ${asked}`);
      assert.deepEqual(asked.length, 2);
      // nothing made: not even the store's directory
      assert.deepEqual([...Deno.readDirSync(root)], []);
    });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("Puller.inspect() picks this platform's manifest from an index", async () => {
  const root = Deno.makeTempDirSync({ prefix: "rkl-inspect-" });
  try {
    await withRegistry(async (url, _asked, put) => {
      const { man } = pushed(put, CONFIG);
      put(`/v2/library/app/manifests/${man.digest}`, man.bytes, MANIFEST);
      const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
      const index = blob({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{
          mediaType: MANIFEST,
          digest: man.digest,
          size: man.bytes.length,
          platform: { os: "linux", architecture: arch },
        }],
      });
      put(
        "/v2/library/app/manifests/multi",
        index.bytes,
        "application/vnd.oci.image.index.v1+json",
      );
      const cfg = await puller(url, `${root}/images`).inspect("app:multi");
      assert.deepEqual(cfg.config?.Cmd, ["echo hi"]);
      assert.deepEqual([...Deno.readDirSync(root)], []);
    });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("Puller.inspect() refuses a config that is not its digest, or over 4 MiB, in one line", async () => {
  const root = Deno.makeTempDirSync({ prefix: "rkl-inspect-" });
  try {
    await withRegistry(async (url, _asked, put) => {
      const { man, cfg } = pushed(put, CONFIG);
      const lie = cfg.bytes.slice();
      lie[lie.length - 2] ^= 1; // as long as its descriptor says, but not its digest
      put(`/v2/library/app/blobs/${cfg.digest}`, lie);
      put("/v2/library/app/manifests/1", man.bytes, MANIFEST);
      await assert.rejects(
        puller(url, `${root}/images`).inspect("app:1"),
        /^ImageError: Cannot read docker\.io\/library\/app:1's config: .*digest/,
      );
      const big = blob({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: { mediaType: "x", digest: cfg.digest, size: (4 << 20) + 1 },
        layers: [],
      });
      put("/v2/library/app/manifests/big", big.bytes, MANIFEST);
      await assert.rejects(
        puller(url, `${root}/images`).inspect("app:big"),
        /config.*4 MiB|larger/,
      );
      assert.deepEqual([...Deno.readDirSync(root)], []);
    });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("Puller.inspect() says plainly when the registry cannot be reached", async () => {
  const registries = emptyRegistries();
  // a port nothing listens on: bound and closed again
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  registries.mirrors["docker.io"] = { endpoint: [`http://127.0.0.1:${port}`], fallback: false };
  const root = Deno.makeTempDirSync({ prefix: "rkl-inspect-" });
  try {
    const p = new Puller({
      store: new ImageStore(`${root}/images`),
      registries,
      auths: {},
      timeoutMs: 2000,
    });
    await assert.rejects(
      p.inspect("app:1"),
      /^ImageError: Cannot read docker\.io\/library\/app:1's config: /,
    );
    assert.deepEqual([...Deno.readDirSync(root)], []);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
