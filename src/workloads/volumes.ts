/**
 * Named volumes, directories under ROOT/volumes that outlive what mounts
 * them: docker's (`rkl volume create NAME`, `run -v NAME:/dir`, which makes
 * a missing one as docker does), compose's (`PROJECT_NAME`) and
 * PersistentVolumeClaims' (`pvc-NAME`). A docker-style or compose volume
 * keeps its data in `NAME/_data`, as docker's local driver does; one made
 * by `volume create` or `run -v` has its creation time and labels in
 * `NAME/volume.json`. Creating and removing happen under the store lock,
 * where a create reserves its record, so no removal takes a volume a
 * container is being made with.
 */
import { ConflictError, NotFoundError, UsageError } from "../errors.ts";
import { assertBelow, lstatOr, privateDir, readDirOr, removeBelow } from "../sys/fsutil.ts";
import { VOLUME_NAME, volumeNameError } from "../base/names.ts";
import type { Host } from "./host.ts";
import type { StoredRecord } from "../store/store.ts";

export interface VolumeView {
  name: string;
  /** `volume`: made by `volume create` or `run -v`. */
  kind: "claim" | "compose" | "volume";
  path: string;
  /** Containers, pods or compose projects whose records name it. */
  users: string[];
}

/** A dir under ROOT/volumes as a record may name it (docker's, compose's `PROJECT_KEY`, a claim's). */
export const VOLUME_DIR_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The metadata file of a docker-style volume, beside its `_data`. */
const META = "volume.json";

/** Refuses a name docker would refuse, and the claims' `pvc-` names. */
export function checkVolumeName(name: string): void {
  const why = volumeNameError(name);
  if (why) throw new UsageError(why);
}

/** Where a named volume's data is (its `_data`), whether or not it exists yet. */
export function volumeDataDir(host: Pick<Host, "paths">, name: string): string {
  return `${host.paths.root}/volumes/${name}/_data`;
}

/** The volume whose data dir `source` is (`ROOT/volumes/NAME/_data`), or undefined. */
export function volumeOfDataDir(host: Pick<Host, "paths">, source: string): string | undefined {
  const prefix = `${host.paths.root}/volumes/`;
  if (!source.startsWith(prefix) || !source.endsWith("/_data")) return undefined;
  const name = source.slice(prefix.length, -"/_data".length);
  return VOLUME_DIR_NAME.test(name) ? name : undefined;
}

/**
 * Makes the docker-style volume `name` unless it exists (docker's `volume
 * create` and `run -v NAME:…`); true when this call made it. Call under the
 * store lock.
 */
export function ensureVolume(
  host: Host,
  name: string,
  labels: Record<string, string> = {},
  options: { anonymous?: boolean } = {},
): boolean {
  checkVolumeName(name);
  const root = `${host.paths.root}/volumes`;
  const dir = `${root}/${name}`;
  assertBelow(root, dir, `volume ${name}`, host.fs);
  const have = lstatOr(dir, host.fs);
  if (have) {
    // A symlink put there is not followed: the volume would be wherever it points.
    if (!have.isDirectory) {
      throw new ConflictError(
        `Cannot use volume ${JSON.stringify(name)}: ${dir} is not a directory`,
      );
    }
    const data = lstatOr(`${dir}/_data`, host.fs);
    if (data && !data.isDirectory) {
      throw new ConflictError(
        `Cannot use volume ${JSON.stringify(name)}: ${dir}/_data is not a directory`,
      );
    }
    if (!data) host.fs.mkdir(`${dir}/_data`, { mode: 0o755 });
    return false;
  }
  privateDir(root, 0o700, host.fs);
  host.fs.mkdir(dir, { mode: 0o700 });
  // The volume is its data dir: made before the metadata, so a dir with metadata has both.
  host.fs.mkdir(`${dir}/_data`, { mode: 0o755 });
  host.fs.writeTextFile(
    `${dir}/${META}`,
    JSON.stringify({
      createdAt: host.now().toISOString(),
      labels,
      ...(options.anonymous ? { anonymous: true } : {}),
    }) + "\n",
    { mode: 0o600 },
  );
  return true;
}

/** A volume's metadata as stored (hostile until checked): what is not a string is dropped. */
function readMeta(
  host: Host,
  dir: string,
): { createdAt?: string; labels: Record<string, string> } | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(host.fs.readRegularText(`${dir}/${META}`, 64 * 1024));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  const labels: Record<string, string> = {};
  if (typeof o.labels === "object" && o.labels !== null && !Array.isArray(o.labels)) {
    for (const [k, v] of Object.entries(o.labels)) if (typeof v === "string") labels[k] = v;
  }
  const createdAt = typeof o.createdAt === "string" && !Number.isNaN(Date.parse(o.createdAt))
    ? o.createdAt
    : undefined;
  return { createdAt, labels };
}

function users(host: Host): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (vol: string, who: string) => out.set(vol, [...(out.get(vol) ?? []), who]);
  for (const p of host.store.list<StoredRecord & { claims?: string[] }>("pods")) {
    for (const c of p.claims ?? []) add(`pvc-${c}`, `pod ${p.name}`);
  }
  for (
    const c of host.store.list<StoredRecord & { volumes?: string[]; namedVolumes?: unknown }>(
      "compose",
    )
  ) {
    for (const v of c.volumes ?? []) add(`${c.name}_${v}`, `compose project ${c.name}`);
    if (!Array.isArray(c.namedVolumes)) continue;
    for (const v of c.namedVolumes) if (typeof v === "string") add(v, `compose project ${c.name}`);
  }
  for (const c of host.store.list<StoredRecord & { volumes?: unknown }>("containers")) {
    if (!Array.isArray(c.volumes)) continue;
    for (const v of c.volumes) if (typeof v === "string") add(v, `container ${c.name}`);
  }
  return out;
}

export function listVolumes(host: Host): VolumeView[] {
  const dir = `${host.paths.root}/volumes`;
  const used = users(host);
  return readDirOr(dir, host.fs).filter((e) => e.isDirectory).map((e) => ({
    name: e.name,
    kind: lstatOr(`${dir}/${e.name}/${META}`, host.fs)?.isFile
      ? "volume" as const
      : e.name.startsWith("pvc-") && (!e.name.includes("_") || used.has(e.name))
      ? "claim" as const
      : "compose" as const,
    path: `${dir}/${e.name}`,
    users: used.get(e.name) ?? [],
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** docker's `volume inspect` of one volume. */
export interface VolumeInspect {
  CreatedAt: string;
  Driver: "local";
  Labels: Record<string, string>;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string>;
  Scope: "local";
  /** rkl's: what names it (containers, pods, compose projects). */
  UsedBy: string[];
}

export function inspectVolume(host: Host, name: string): VolumeInspect {
  const v = listVolumes(host).find((x) => x.name === name);
  if (!v) throw new NotFoundError(`volume ${JSON.stringify(name)} does not exist`);
  const meta = readMeta(host, v.path);
  const data = `${v.path}/_data`;
  let created = meta?.createdAt;
  if (!created) {
    try {
      created = host.fs.stat(v.path).mtime?.toISOString();
    } catch { /* gone meanwhile */ }
  }
  return {
    CreatedAt: created ?? "",
    Driver: "local",
    Labels: meta?.labels ?? {},
    Mountpoint: lstatOr(data, host.fs)?.isDirectory ? data : v.path,
    Name: v.name,
    Options: {},
    Scope: "local",
    UsedBy: v.users,
  };
}

/**
 * Removes docker-style volumes of a container whose record is gone, unless
 * something else names them by now: those its create made when that create
 * is undone (ContainerRecord.madeVolumes), its anonymous ones at `rm -v` and
 * `run --rm`. Call under the store lock, after the record is gone.
 */
export function removeVolumesIfUnused(host: Host, names: readonly unknown[]): void {
  const views = listVolumes(host);
  for (const n of names) {
    if (typeof n !== "string" || !VOLUME_NAME.test(n)) continue;
    const v = views.find((x) => x.name === n);
    if (!v || v.users.length > 0 || v.kind !== "volume") continue;
    removeBelow(`${host.paths.root}/volumes`, v.path, `volume ${n}`, host.fs);
  }
}

/**
 * `volume prune`: removes every volume nothing names (podman's; docker's
 * own leaves named ones unless `--all`). Call under the store lock. Returns
 * the names removed.
 */
export function pruneVolumes(host: Host): string[] {
  const gone: string[] = [];
  for (const v of listVolumes(host)) {
    if (v.users.length > 0) continue;
    removeBelow(`${host.paths.root}/volumes`, v.path, `volume ${v.name}`, host.fs);
    gone.push(v.name);
  }
  return gone;
}

/** Removes a volume no pod or project names. `name` is as `volume ls` shows it. */
export function removeVolume(host: Host, name: string): void {
  // A claim's name is a DNS-1123 label or a podman volume name (`mariadb_data`, as
  // `podman kube generate` writes it): both fit this pattern.
  if (!VOLUME_DIR_NAME.test(name)) {
    throw new UsageError(`${JSON.stringify(name)} is not a volume name`);
  }
  const v = listVolumes(host).find((x) => x.name === name);
  if (!v) throw new NotFoundError(`volume ${JSON.stringify(name)} does not exist`);
  if (v.users.length > 0) {
    throw new ConflictError(
      `Cannot remove volume ${JSON.stringify(name)}: in use by ${v.users.join(", ")}`,
    );
  }
  removeBelow(`${host.paths.root}/volumes`, v.path, `volume ${name}`, host.fs);
}
