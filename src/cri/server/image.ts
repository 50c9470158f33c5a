/** The ImageService: PullImage, ListImages, ImageStatus, RemoveImage, ImageFsInfo. */
import type { Host } from "../../workloads/host.ts";
import type { ImageService } from "../../image/service.ts";
import { removeImages } from "../../image/manage.ts";
import { parseReference } from "../../image/reference.ts";
import { decodeBasicAuth } from "../../image/registries.ts";
import type { ImageRecord } from "../../image/store.ts";
import { ImageError, NotFoundError } from "../../errors.ts";
import {
  CriError,
  type Handler,
  invalid,
  type Message,
  notFound,
  precondition,
  Status,
} from "../grpc.ts";
import { diskUse } from "./_common.ts";

/**
 * PullImage's AuthConfig as credentials for this pull, keyed by the
 * image's own registry (never a mirror's host: they were given for the
 * registry). username/password, or `auth` as base64 "user:password".
 */
export function pullAuths(
  image: string,
  a: Message | null | undefined,
): Record<string, { username: string; password: string }> | undefined {
  if (!a || !(a.username || a.password || a.auth || a.identity_token || a.registry_token)) {
    return undefined;
  }
  if (a.identity_token || a.registry_token) {
    throw new CriError(
      Status.UNIMPLEMENTED,
      "auth.identity_token and auth.registry_token are not supported; give username and password",
    );
  }
  let username: string = a.username ?? "", password: string = a.password ?? "";
  if (a.auth) {
    const c = decodeBasicAuth(a.auth);
    if (!c) throw invalid('auth.auth: not base64 of "user:password"');
    ({ username, password } = c);
  }
  if (!username) throw invalid("auth: a username is needed");
  let registry: string;
  try {
    registry = parseReference(image).registry;
  } catch (e) {
    throw invalid(`image.image: ${(e as Error).message}`);
  }
  const hosts = registry === "docker.io" ? ["docker.io", "registry-1.docker.io"] : [registry];
  return Object.fromEntries(hosts.map((h) => [h, { username, password }]));
}

/**
 * ImageFsInfo's answer: the image store's use, under a mountpoint that
 * exists. The store's root is made on the first pull; the kubelet stats the
 * mountpoint it is given (cadvisor's GetDirFsInfo) and, for one that is not
 * there, logs "Image garbage collection failed" at every GC period until a
 * pull makes it. So the root is made here (mode 0700, as the store makes it).
 */
export function imageFsInfo(root: string, nowMs: number) {
  Deno.mkdirSync(root, { recursive: true, mode: 0o700 });
  const use = diskUse(root);
  return {
    image_filesystems: [{
      timestamp: (BigInt(nowMs) * 1_000_000n).toString(),
      fs_id: { mountpoint: root },
      used_bytes: { value: String(use.bytes) },
      inodes_used: { value: String(use.inodes) },
    }],
    container_filesystems: [],
  };
}

/** The image store, or FAILED_PRECONDITION on a host without one. */
export function imageStore(host: Host): ImageService {
  if (!host.images) throw precondition("this host has no image store");
  return host.images;
}

function imageMessage(images: ImageService, rec: ImageRecord) {
  const tags = images.store.tagsOf(rec.id);
  const user = rec.config?.User ?? "";
  const name = user.split(":")[0];
  const uid = /^\d+$/.test(name) ? { uid: { value: name } } : name ? { username: name } : {};
  return {
    id: rec.id,
    repo_tags: tags,
    repo_digests: rec.repoDigests,
    size: String(rec.size),
    ...uid,
    spec: { image: rec.id },
    pinned: false,
  };
}

/**
 * PullImage in a child `rkl image pull` (the daemon's own argv, its root and
 * run root): the download and unpack buffers die with the child instead of
 * staying in the daemon (a pull of agnhost's 64 MB layer in a plain process:
 * PSS 24 → 99 MB, 89 after a forced GC; in the daemon as its unit runs it,
 * 14 MB of its PSS with 30 pods: 84 → 70, bench/cluster.ts). The store is on
 * disk and locked per blob and layer, so the daemon sees the image as soon as
 * the child is done. The child's one-line error ("rkl: …", the registry's
 * words) is the answer's.
 */
export async function pullInChild(host: Host, argv: string[], ref: string): Promise<string> {
  const r = await new Deno.Command(argv[0], {
    args: [
      ...argv.slice(1),
      "--root",
      host.paths.root,
      "--run-root",
      host.paths.runRoot,
      "image",
      "pull",
      "--quiet",
      "--",
      ref,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const id = dec.decode(r.stdout).trim().split("\n").pop() ?? "";
  if (r.success && /^sha256:[a-f0-9]{64}$/.test(id)) return id;
  const said = dec.decode(r.stderr).split("\n").find((l) => l.startsWith("rkl: "))?.slice(5) ??
    dec.decode(r.stderr).trim().split("\n")[0];
  const message = said || `image pull of ${ref} exited with ${r.code}`;
  if (r.code === 2) throw invalid(message);
  throw new ImageError(message);
}

export function imageHandlers(host: Host): Record<string, Handler> {
  return {
    ListImages: (req) => {
      const want: string = req.filter?.image?.image ?? "";
      const images = imageStore(host);
      const recs = want
        ? [images.store.find(want)].filter((r): r is ImageRecord => !!r)
        : images.store.listImages();
      return Promise.resolve({ images: recs.map((r) => imageMessage(images, r)) });
    },

    ImageStatus: (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const images = imageStore(host);
      const rec = images.store.find(text);
      if (!rec) return Promise.resolve({ image: null, info: {} });
      const info = req.verbose
        ? {
          info: JSON.stringify({
            config: rec.config,
            layers: rec.layers.length,
            os: rec.os,
            architecture: rec.architecture,
          }),
        }
        : {};
      return Promise.resolve({ image: imageMessage(images, rec), info });
    },

    PullImage: async (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const auths = pullAuths(text, req.auth);
      try {
        parseReference(text);
      } catch (e) {
        throw invalid(`image.image: ${(e as Error).message}`);
      }
      try {
        // In a child when the daemon can start one (credentials stay in-process: never on an argv).
        if (host.selfArgv && !auths && !host.rootless) {
          return { image_ref: await pullInChild(host, host.selfArgv, text) };
        }
        const rec = await imageStore(host).pull(text, { quiet: true, auths });
        return { image_ref: rec.id };
      } catch (e) {
        if (e instanceof NotFoundError) throw notFound((e as Error).message);
        throw e;
      }
    },

    RemoveImage: async (req) => {
      const text: string = req.image?.image ?? "";
      if (!text) throw invalid("image.image: must be set");
      const rec = imageStore(host).store.find(text);
      if (!rec) return {}; // removing what is gone is done
      try {
        await removeImages(host, [rec.id], false);
      } catch (e) {
        // Another RemoveImage got there first.
        if (!(e instanceof NotFoundError)) throw e;
      }
      return {};
    },

    ImageFsInfo: () => Promise.resolve(imageFsInfo(imageStore(host).store.root, Date.now())),
  };
}
