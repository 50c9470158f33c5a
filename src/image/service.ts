/**
 * The image store as the workloads see it: pull by policy, and turn an image
 * into what a container is made of (overlay lower dirs and the process
 * defaults its config sets: Entrypoint/Cmd, Env, WorkingDir, User).
 */
import { FieldError, ImageError, SpecError } from "../errors.ts";
import type { SourceLocation } from "../errors.ts";
import type { BundleDefaults } from "../oci/generate.ts";
import { lgetxattr } from "../sys/fileattr.ts";
import type { Syscalls } from "../sys/syscalls.ts";
import { type HostFs, realFs } from "../sys/fs.ts";
import { parsePasswd, readUserFiles, resolveNames, type UserFiles } from "./users.ts";
// The puller (registry client, tar reader, zlib) loads only when a pull happens.
import type { Progress } from "./pull.ts";
import { formatReference, parseReference, tagName } from "./reference.ts";
import { trace } from "../trace.ts";
import {
  authFilePath,
  type Credentials,
  DEFAULT_REGISTRIES_FILE,
  loadRegistries,
  readAuthFile,
  type RegistriesConfig,
} from "./registries.ts";
import { type ImageConfig, type ImageRecord, ImageStore, notFound } from "./store.ts";

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

/**
 * What happens to an image, as docker's events tell it: `ref` is the
 * reference pulled, or the image id (for import, tag, untag, delete), and
 * `name` the tag it concerns. The workloads' Host writes them to the event
 * log that `rkl events` reads (src/workloads/event_log.ts).
 */
export interface ImageEvent {
  action: "pull" | "import" | "tag" | "untag" | "delete";
  ref: string;
  name?: string;
}

export interface ImageServiceOptions {
  root: string;
  registriesFile?: string;
  timeoutMs?: number;
  progress?: () => Progress | undefined;
  onEvent?: (e: ImageEvent) => void;
}

export interface ImageView {
  record: ImageRecord;
  lowers: string[];
  defaults: BundleDefaults;
}

export class ImageService {
  readonly store: ImageStore;
  #registries?: RegistriesConfig;
  constructor(private opts: ImageServiceOptions) {
    this.store = new ImageStore(opts.root);
  }

  get registriesFile(): string {
    return this.opts.registriesFile ?? Deno.env.get("RKL_REGISTRIES_CONFIG") ??
      DEFAULT_REGISTRIES_FILE;
  }

  async registries(): Promise<RegistriesConfig> {
    return this.#registries ??= await loadRegistries(this.registriesFile);
  }

  timeoutMs(): number {
    const s = Number(Deno.env.get("RKL_PULL_TIMEOUT") ?? "30");
    return this.opts.timeoutMs ?? (Number.isFinite(s) && s > 0 ? s * 1000 : 30000);
  }

  async pull(
    ref: string,
    o: { platform?: string; quiet?: boolean; auths?: Record<string, Credentials> } = {},
  ): Promise<ImageRecord> {
    const { Puller } = await import("./pull.ts");
    trace("pull: puller loaded");
    const registries = await this.registries();
    trace("pull: registries read");
    const puller = new Puller({
      store: this.store,
      registries,
      auths: readAuthFile(authFilePath()),
      timeoutMs: this.timeoutMs(),
      platform: o.platform,
      progress: o.quiet ? undefined : this.opts.progress?.(),
      pullAuths: o.auths,
    });
    const rec = await puller.pull(ref);
    let name = ref;
    try {
      const r = parseReference(ref);
      name = tagName(r) ?? formatReference(r);
    } catch { /* the puller took it: kept as given */ }
    this.note({ action: "pull", ref: name });
    return rec;
  }

  /** Reports an image event (to the Host's event log, when it gave one). */
  note(e: ImageEvent): void {
    this.opts.onEvent?.(e);
  }

  /** The image for `ref` under `policy` (pulling when it says so), or an error at `loc`. */
  async ensure(ref: string, policy: PullPolicy, loc: SourceLocation): Promise<ImageRecord> {
    // An image id (the CRI names images by id) is found, never pulled.
    const have = this.store.find(ref);
    if (have && policy !== "Always") return have;
    try {
      parseReference(ref);
    } catch (e) {
      throw new SpecError(loc, (e as Error).message);
    }
    if (policy === "Never") {
      if (!have) {
        throw new SpecError(
          loc,
          `image ${JSON.stringify(ref)} is not in the store and imagePullPolicy is Never`,
        );
      }
      return have;
    }
    if (have && policy === "IfNotPresent") return have;
    try {
      return await this.pull(ref, { quiet: true });
    } catch (e) {
      if (e instanceof ImageError) throw new SpecError(loc, e.message);
      throw e;
    }
  }

  /**
   * The config of an image not in the store, read from its registry (the
   * mirrors, auth and 4 MiB caps of a pull) without storing anything and
   * without a layer: see Puller.inspect.
   */
  async inspect(ref: string): Promise<ImageConfig> {
    const { Puller } = await import("./pull.ts");
    const puller = new Puller({
      store: this.store,
      registries: await this.registries(),
      auths: readAuthFile(authFilePath()),
      timeoutMs: this.timeoutMs(),
    });
    return (await puller.inspect(ref)).config ?? {};
  }

  /** What a container of this image is made of. */
  view(sys: Syscalls, rec: ImageRecord, loc: SourceLocation): ImageView {
    const lowers = this.store.lowerDirs(rec);
    const c = rec.config ?? {};
    const defaults = configDefaults(c);
    if (c.User) Object.assign(defaults, imageUser(sys, c.User, lowers, loc, rec));
    return { record: rec, lowers, defaults };
  }
}

/** The process defaults an image config sets, but its User (which needs the layers' files). */
export function configDefaults(c: ImageConfig): BundleDefaults {
  const env = [...(c.Env ?? [])];
  if (!env.some((e) => e.startsWith("PATH="))) {
    env.unshift("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  return {
    entrypoint: c.Entrypoint ?? undefined,
    args: c.Cmd ?? undefined,
    env,
    cwd: c.WorkingDir || undefined,
    stopSignal: c.StopSignal,
  };
}

/** The image's /etc/passwd and /etc/group as the merged view shows them. */
export function layeredUserFiles(
  sys: Syscalls,
  lowers: string[],
  fs: HostFs = realFs,
): UserFiles {
  const out: UserFiles = {};
  const seen = new Set<string>();
  for (const dir of lowers) {
    const files = readUserFiles(sys, dir, fs);
    for (const k of ["passwd", "group"] as const) {
      if (seen.has(k)) continue;
      let st: unknown;
      try {
        st = fs.lstat(`${dir}/etc/${k}`);
      } catch { /* not in this layer */ }
      if (st) {
        seen.add(k);
        if (files[k] !== undefined) out[k] = files[k];
        const why = files.unreadable?.[k];
        if (why) out.unreadable = { ...out.unreadable, [k]: why };
      }
    }
    let opaque = false;
    try {
      opaque = lgetxattr(`${dir}/etc`, "trusted.overlay.opaque")?.[0] === 0x79;
    } catch { /* no etc here */ }
    if (opaque || seen.size === 2) break;
  }
  return out;
}

/** `User` of an image config (`uid`, `uid:gid`, `name`, `name:group`) → ids. */
export function imageUser(
  sys: Syscalls,
  user: string,
  lowers: string[],
  loc: SourceLocation,
  rec: ImageRecord,
  fs: HostFs = realFs,
): { uid: number; gid: number } {
  const [u, g] = user.split(":", 2);
  const files = layeredUserFiles(sys, lowers, fs);
  const where = `image ${rec.id.slice(7, 19)}`;
  try {
    if (/^\d+$/.test(u) && (g === undefined || /^\d+$/.test(g))) {
      const uid = Number(u);
      const gid = g !== undefined
        ? Number(g)
        : parsePasswd(files.passwd ?? "").find((e) => e.uid === uid)?.gid ?? 0;
      return { uid, gid };
    }
    const names = {
      user: /^\d+$/.test(u) ? undefined : u,
      group: g === undefined || /^\d+$/.test(g) ? undefined : g,
    };
    const ids = resolveNames(names, {
      uid: /^\d+$/.test(u) ? Number(u) : undefined,
      gid: g !== undefined && /^\d+$/.test(g) ? Number(g) : undefined,
    }, { ...files, where });
    return ids;
  } catch (e) {
    if (e instanceof FieldError) {
      throw new SpecError(loc, `the image's User ${JSON.stringify(user)}: ${e.detail}`);
    }
    throw e;
  }
}

export { notFound };
