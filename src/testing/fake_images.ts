/**
 * An image service for a FakeHost: a "registry" of images a test adds by
 * reference (a config with Entrypoint/Cmd/Env/User/WorkingDir, and layers
 * given as files), and a store on the MemFs. A pull copies an image's layers
 * into `ROOT/images/layers/DIFFID/fs` and records it (`pulls` lists what
 * each pull did); "image.pull" is its fault point. `view()` is the real
 * one's: the image's defaults, and its User resolved through the layers'
 * /etc/passwd and /etc/group, opened beneath each layer as rkl does
 * (through the fake kernel's openat2 and /proc/self/fd).
 *
 * The policy logic (`ensure`: Always / IfNotPresent / Never, and what a
 * failed pull turns into) is the real ImageService's, inherited.
 */
import { ImageError } from "../errors.ts";
import type { SourceLocation } from "../errors.ts";
import { configDefaults, ImageService, type ImageView } from "../image/service.ts";
import { imageUser } from "../image/service.ts";
import { parseReference, tagName } from "../image/reference.ts";
import { type ImageConfig, type ImageRecord, ImageStore } from "../image/store.ts";
import type { Syscalls } from "../sys/syscalls.ts";
import type { RklPaths } from "../workloads/host.ts";
import type { Faults } from "./faults.ts";
import type { MemFs } from "./mem_fs.ts";

export interface FakeImage {
  config: ImageConfig;
  /** Layers, bottom first: path (relative, e.g. "etc/passwd") → content ("" with a trailing / for a dir). */
  layers: Record<string, string>[];
}

const hex = (n: number, seed: string) => {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(`${seed}#${n}`)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0").repeat(8);
};

/** Images by their normalized name (`docker.io/library/app:1`). */
function key(ref: string): string | undefined {
  try {
    return tagName(parseReference(ref));
  } catch {
    return undefined;
  }
}

class FakeImageStore extends ImageStore {
  readonly byId = new Map<string, ImageRecord>();
  readonly tagged = new Map<string, string>();

  constructor(root: string, private readonly fs: MemFs) {
    super(root);
  }

  override init(): void {}

  override withLock<T>(_name: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  override sweepTemporaries(): string[] | undefined {
    return [];
  }

  override image(id: string): ImageRecord | undefined {
    return this.byId.get(id);
  }

  override listImages(): ImageRecord[] {
    return [...this.byId.values()];
  }

  override find(text: string): ImageRecord | undefined {
    if (this.byId.has(text)) return this.byId.get(text);
    const k = key(text);
    const id = k ? this.tagged.get(k) : undefined;
    return id ? this.byId.get(id) : undefined;
  }

  override lowerDirs(rec: ImageRecord): string[] {
    const out = rec.layers.map((l) => {
      const dir = `${this.layers}/${l.diffId.slice(7)}/fs`;
      if (!this.fs.quietly(() => this.fs.exists(dir))) {
        throw new ImageError(
          `image ${rec.id.slice(7, 19)}: layer ${
            l.diffId.slice(7, 19)
          } is missing from the store (pull the image again)`,
        );
      }
      return dir;
    });
    return out.reverse();
  }
}

export class FakeImages extends ImageService {
  /** What can be pulled, by normalized name. */
  readonly registry = new Map<string, FakeImage>();
  /** One line per pull: `pulled REF ID (N layers)`. */
  readonly pulls: string[] = [];
  declare readonly store: FakeImageStore;

  constructor(
    private readonly fs: MemFs,
    private readonly faults: Faults,
    paths: Pick<RklPaths, "root">,
  ) {
    super({ root: `${paths.root}/images`, registriesFile: "/fake/etc/containers/registries.conf" });
    // The real constructor made a real ImageStore: this one keeps its records in memory, its layers on the MemFs.
    (this as { store: ImageStore }).store = new FakeImageStore(`${paths.root}/images`, fs);
  }

  /** Makes `ref` pullable. */
  add(ref: string, image: FakeImage): void {
    const k = key(ref);
    if (!k) throw new Error(`FakeImages.add: ${ref} is not a tagged reference`);
    this.registry.set(k, image);
  }

  override pull(ref: string): Promise<ImageRecord> {
    if (this.faults.hit("image.pull", ref)) {
      return Promise.reject(new ImageError(`Cannot pull ${ref}: injected fault`));
    }
    const k = key(ref);
    const image = k ? this.registry.get(k) : undefined;
    if (!k || !image) {
      return Promise.reject(new ImageError(`Cannot pull ${ref}: manifest unknown`));
    }
    const layers = image.layers.map((files, i) => {
      const diffId = `sha256:${hex(i, `${k}:${JSON.stringify(files)}`)}`;
      const dir = `${this.store.layers}/${diffId.slice(7)}/fs`;
      this.fs.quietly(() => {
        this.fs.mkdir(dir, { recursive: true, mode: 0o755 });
        for (const [rel, content] of Object.entries(files)) {
          const path = `${dir}/${rel.replace(/\/$/, "")}`;
          this.fs.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o755 });
          if (rel.endsWith("/")) this.fs.mkdir(path, { recursive: true, mode: 0o755 });
          else this.fs.writeTextFile(path, content, { mode: 0o644 });
        }
      });
      return {
        digest: diffId,
        diffId,
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        size: 0,
      };
    });
    const id = `sha256:${hex(0, `${k} config ${JSON.stringify(image.config)}`)}`;
    const rec: ImageRecord = {
      schemaVersion: 1,
      id,
      manifestDigest: `sha256:${hex(1, id)}`,
      repoDigests: [],
      layers,
      size: 0,
      os: "linux",
      architecture: "amd64",
      config: image.config,
      pulledAt: new Date(0).toISOString(),
    };
    this.store.byId.set(id, rec);
    this.store.tagged.set(k, id);
    this.pulls.push(`pulled ${k} ${id.slice(7, 19)} (${layers.length} layers)`);
    return Promise.resolve(rec);
  }

  override inspect(ref: string): Promise<ImageConfig> {
    const image = this.registry.get(key(ref) ?? "");
    if (!image) return Promise.reject(new ImageError(`Cannot inspect ${ref}: manifest unknown`));
    return Promise.resolve(image.config);
  }

  /** As the real view, with the layers' user files read from the MemFs. */
  override view(sys: Syscalls, rec: ImageRecord, loc: SourceLocation): ImageView {
    const lowers = this.store.lowerDirs(rec);
    const c = rec.config ?? {};
    const defaults = configDefaults(c);
    if (c.User) Object.assign(defaults, imageUser(sys, c.User, lowers, loc, rec, this.fs));
    return { record: rec, lowers, defaults };
  }

  /** `ref id` of each image in the store, for a snapshot. */
  list(): string[] {
    return [...this.store.tagged].map(([k, id]) => `${k} ${id.slice(7, 19)}`).sort();
  }
}
