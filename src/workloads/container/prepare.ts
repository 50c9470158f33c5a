/**
 * A container's inputs, read and checked before anything is made: the
 * bundle or image its root filesystem comes from (pulled when its policy
 * says so), its hostPaths, its user names and its Localhost seccomp profile.
 */
import { FieldError, SpecError } from "../../errors.ts";
import { type BundleDefaults, bundleDefaults } from "../../oci/generate.ts";
import { parseSeccompProfile, type SeccompProfile } from "../../oci/seccomp.ts";
import type { LoadedContainer } from "../../spec/container.ts";
import type { FsInfo } from "../../sys/fs.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../../sys/readfile.ts";
import { layeredUserFiles } from "../../image/service.ts";
import { defaultPullPolicy } from "../../image/reference.ts";
import { readUserFiles, resolveNames } from "../users.ts";
import type { Host } from "../host.ts";
import type { RootSource } from "./types.ts";

/** st_mode's file type bits (stat(2)). */
const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** Reads the bundle's config.json (optional) and checks its rootfs exists. */
export function readBundle(host: Pick<Host, "fs">, loaded: LoadedContainer): BundleDefaults {
  const image = loaded.spec.image;
  try {
    if (!host.fs.stat(`${image}/rootfs`).isDirectory) throw new Error();
  } catch {
    throw new SpecError(
      loaded.source.at(["image"]),
      `bundle ${JSON.stringify(image)} has no rootfs/ directory`,
    );
  }
  try {
    return bundleDefaults(JSON.parse(host.fs.readTextFile(`${image}/config.json`)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new SpecError(
      loaded.source.at(["image"]),
      `Cannot read ${image}/config.json: ${(e as Error).message}`,
    );
  }
}

/**
 * Checks each hostPath against its Kubernetes `type` (making it for the
 * *OrCreate ones, as the kubelet does) before anything else is made, so a
 * missing or wrong source is an error at its line instead of the runtime's
 * "failed to prepare rootfs" that names no path. Only mounts with a field
 * `path` are checked; an error is a FieldError naming it (relative to the
 * request's root: the pod's for a pod's container), which the create's entry
 * (or validate) locates through the request's source.
 */
export function prepareHostPaths(
  host: Pick<Host, "fs">,
  loaded: LoadedContainer,
  options: { dryRun?: boolean } = {},
): string[] {
  const notes: string[] = [];
  for (const m of loaded.spec.mounts) {
    // A named volume (`run -v NAME:…`) is made by the create, under the store lock.
    if (m.kind !== "hostPath" || !m.path || m.namedVolume !== undefined) continue;
    const path = m.path;
    const type = m.hostPathType ?? "";
    const fail = (why: string): never => {
      throw new FieldError(path, `hostPath ${JSON.stringify(m.source)} ${why}`);
    };
    let st: FsInfo | undefined;
    try {
      st = host.fs.stat(m.source);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) fail(`cannot be read: ${(e as Error).message}`);
    }
    if (!st) {
      const dirType = type === "DirectoryOrCreate" || m.createMissingDir;
      if (options.dryRun && (dirType || type === "FileOrCreate")) {
        notes.push(`hostPath ${m.source} will be created (${type || "a directory"})`);
        continue;
      }
      if (dirType) {
        host.fs.mkdir(m.source, { recursive: true, mode: 0o755 });
        continue;
      }
      if (type === "FileOrCreate") {
        try {
          host.fs.writeFile(m.source, new Uint8Array(), { createNew: true, mode: 0o644 });
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) {
            fail(`cannot be created: ${(e as Error).message}`);
          }
        }
        continue;
      }
      fail(
        type !== ""
          ? `does not exist (type ${type})`
          : path[0] === "--mount"
          ? "does not exist (docker's --mount makes no missing source; -v does)"
          : "does not exist (the bind's create_host_path is false)",
      );
    }
    const kind = (st!.mode ?? 0) & S_IFMT;
    const is: Record<string, boolean> = {
      DirectoryOrCreate: st!.isDirectory,
      Directory: st!.isDirectory,
      FileOrCreate: st!.isFile,
      File: st!.isFile,
      Socket: kind === S_IFSOCK,
      CharDevice: kind === S_IFCHR,
      BlockDevice: kind === S_IFBLK,
    };
    if (type !== "" && !is[type]) fail(`is not what type ${type} asks for`);
  }
  return notes;
}

/**
 * The container's root filesystem source. A bundle (an absolute path once
 * parsed) is read as it is; an image reference is pulled as its policy says
 * (default: Always for `:latest`, else IfNotPresent), or with `pull: false`
 * only looked up (undefined lowers when absent: a dry run).
 */
export async function rootSource(
  host: Pick<Host, "sys" | "fs" | "images">,
  loaded: LoadedContainer,
  options: { pull?: boolean } = {},
): Promise<RootSource> {
  const image = loaded.spec.image;
  if (image.startsWith("/")) {
    const defaults = readBundle(host, loaded);
    const rootfs = `${image}/rootfs`;
    return {
      lowers: [rootfs],
      defaults,
      userFiles: () => readUserFiles(host.sys, rootfs, host.fs),
      where: rootfs,
    };
  }
  const at = loaded.source.at(["image"]);
  if (!host.images) throw new SpecError(at, `image ${JSON.stringify(image)}: no image store here`);
  const policy = loaded.spec.imagePullPolicy ?? defaultPullPolicy(image);
  const rec = options.pull === false
    ? host.images.store.find(image)
    : await host.images.ensure(image, policy, at);
  if (!rec) return { lowers: [], defaults: {}, userFiles: () => ({}), where: `image ${image}` };
  const view = host.images.view(host.sys, rec, at);
  return {
    lowers: view.lowers,
    defaults: view.defaults,
    imageId: rec.id,
    userFiles: () => layeredUserFiles(host.sys, view.lowers, host.fs),
    where: `image ${image}`,
  };
}

/** The spec with user/group names turned into ids from the rootfs's own files. */
export function withResolvedUser(
  host: Pick<Host, "sys"> & Partial<Pick<Host, "fs">>,
  loaded: LoadedContainer,
  source?: RootSource,
): LoadedContainer {
  const names = loaded.spec.userNames;
  if (!names) return loaded;
  const rootfs = `${loaded.spec.image}/rootfs`;
  const sc = loaded.spec.securityContext;
  const ids = resolveNames(names, { uid: sc.runAsUser, gid: sc.runAsGroup }, {
    ...(source ? source.userFiles() : readUserFiles(host.sys, rootfs, host.fs)),
    where: source?.where ?? rootfs,
  });
  return {
    ...loaded,
    spec: { ...loaded.spec, securityContext: { ...sc, runAsUser: ids.uid, runAsGroup: ids.gid } },
  };
}

/** Reads the profile a `seccompProfile: {type: Localhost}` names, from the seccomp dir. */
export function readLocalhostSeccomp(
  host: Pick<Host, "paths">,
  loaded: LoadedContainer,
): SeccompProfile | undefined {
  const p = loaded.spec.securityContext.seccompProfile;
  if (p?.type !== "Localhost" || !p.localhostProfile) return undefined;
  const dir = host.paths.seccompDir ?? `${host.paths.root}/seccomp`;
  // The CRI names profiles by absolute path; the YAML schema allows only relative ones.
  const file = p.localhostProfile.startsWith("/")
    ? p.localhostProfile
    : `${dir}/${p.localhostProfile}`;
  const at = loaded.source.at(["securityContext", "seccompProfile", "localhostProfile"]);
  let text: string;
  try {
    text = readTextBounded(file, { max: MAX_INPUT_BYTES });
  } catch (e) {
    const why = e instanceof FileReadError ? e.reason : (e as Error).message;
    throw new SpecError(at, `Cannot read seccomp profile ${file}: ${why}`, { cause: e });
  }
  try {
    return parseSeccompProfile(text, file);
  } catch (e) {
    throw new SpecError(at, (e as Error).message);
  }
}
