/**
 * Named volumes: compose's (`PROJECT_NAME`) and PersistentVolumeClaims'
 * (`pvc-NAME`), directories under ROOT/volumes that outlive what mounts them.
 */
import { ConflictError, NotFoundError, UsageError } from "../errors.ts";
import { readDirOr, removeBelow } from "../sys/fsutil.ts";
import type { Host } from "./host.ts";
import type { StoredRecord } from "../store/store.ts";

export interface VolumeView {
  name: string;
  kind: "claim" | "compose";
  path: string;
  /** Pods or compose projects whose records name it. */
  users: string[];
}

function users(host: Host): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (vol: string, who: string) => out.set(vol, [...(out.get(vol) ?? []), who]);
  for (const p of host.store.list<StoredRecord & { claims?: string[] }>("pods")) {
    for (const c of p.claims ?? []) add(`pvc-${c}`, `pod ${p.name}`);
  }
  for (const c of host.store.list<StoredRecord & { volumes?: string[] }>("compose")) {
    for (const v of c.volumes ?? []) add(`${c.name}_${v}`, `compose project ${c.name}`);
  }
  return out;
}

export function listVolumes(host: Host): VolumeView[] {
  const dir = `${host.paths.root}/volumes`;
  const used = users(host);
  return readDirOr(dir, host.fs).filter((e) => e.isDirectory).map((e) => ({
    name: e.name,
    kind: e.name.startsWith("pvc-") && (!e.name.includes("_") || used.has(e.name))
      ? "claim" as const
      : "compose" as const,
    path: `${dir}/${e.name}`,
    users: used.get(e.name) ?? [],
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes a volume no pod or project names. `name` is as `volume ls` shows it. */
export function removeVolume(host: Host, name: string): void {
  // A claim's name is a DNS-1123 label or a podman volume name (`mariadb_data`, as
  // `podman kube generate` writes it): both fit this pattern.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) {
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
