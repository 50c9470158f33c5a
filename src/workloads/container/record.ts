/**
 * A container's record: read, updated under the lock, and who is making it
 * while it is "creating" (a dead owner means the create was interrupted).
 */
import { ConflictError, NotFoundError } from "../../errors.ts";
import type { LoadedContainer } from "../../spec/container.ts";
import type { Host } from "../host.ts";
import type { ContainerRecord, Owner } from "./types.ts";

/** The container's record; NotFoundError when there is none. */
export function getContainer(host: Host, name: string): ContainerRecord {
  const rec = host.store.get<ContainerRecord>("containers", name);
  if (!rec) {
    throw new NotFoundError(`Cannot find container ${JSON.stringify(name)}`, {
      hint: "rkl container list shows the names",
    });
  }
  return rec;
}

/**
 * Read-modify-write of a container record under the store lock, on the
 * record as it is now (not a copy read earlier); undefined when it is gone.
 */
export async function updateContainer(
  host: Host,
  name: string,
  fn: (rec: ContainerRecord) => void,
): Promise<ContainerRecord | undefined> {
  return await host.store.withLock(() => {
    const rec = host.store.get<ContainerRecord>("containers", name);
    if (!rec) return Promise.resolve(undefined);
    fn(rec);
    host.store.put("containers", rec);
    return Promise.resolve(rec);
  });
}

/** This process as an owner. */
export function selfOwner(host: Pick<Host, "proc">): Owner {
  return { pid: host.proc.self, start: host.proc.stat(host.proc.self)?.startTime ?? 0 };
}

/** True when the record's owner is set and is no longer running. */
export function ownerGone(host: Pick<Host, "proc">, owner: Owner | undefined): boolean {
  if (!owner) return false;
  const s = host.proc.stat(owner.pid);
  return !s || s.state === "Z" || s.startTime !== owner.start;
}

/** True while `pid` runs (a zombie has exited). */
export function processAlive(host: Pick<Host, "proc">, pid: number): boolean {
  const s = host.proc.stat(pid);
  return s !== undefined && s.state !== "Z"; // a zombie has exited already
}

/**
 * Removing what another live process is still making would race with it
 * (its next step would write the record back): refused, with who it is.
 * An owner that died is no obstacle; that is what rm -f and gc are for.
 */
export function refuseWhileBeingMade(
  host: Pick<Host, "proc">,
  name: string,
  what: "container" | "pod",
  owner: Owner | undefined,
): void {
  if (!owner || owner.pid === host.proc.self || ownerGone(host, owner)) return;
  throw new ConflictError(
    `Cannot remove ${what} ${JSON.stringify(name)}: process ${owner.pid} is still creating it`,
    { hint: "wait for that command to finish, or interrupt it (it rolls back)" },
  );
}

/**
 * CNI_CONTAINERID of a single container. Pods use `p_NAME`; the kind prefix
 * (names cannot hold '_') keeps a container and a pod of one name apart.
 */
export function cniContainerId(rec: { id: string; network?: { cniId?: string } }): string {
  return rec.network?.cniId ?? `c_${rec.id}`; // records made before ids carried the root's tag
}

/** `file:line:column` of a field of the container's spec, for messages. */
export function locText(loaded: LoadedContainer, path: (string | number)[]): string {
  const at = loaded.source.at(path);
  return `${at.file}${at.line ? `:${at.line}:${at.column}` : ""}`;
}
