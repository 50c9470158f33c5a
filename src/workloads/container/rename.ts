/**
 * Renaming a container, docker's way: the id stays, the name changes.
 *
 * A container's id names everything it has on the host (its dir, conmon
 * dir, netns, cgroup, log, exit file, CNI id and runtime container); its
 * name is the key of its record, which is what every command looks it up
 * by. A container is made with its id equal to its name. A rename moves the
 * record to the new name under the store lock (store.rename: the new name
 * appears before the old one goes) and touches nothing else, so a running
 * container keeps running and its logs, exec, stop and rm follow the new
 * name. The old name is free again; a container made with it while a
 * renamed one keeps it as its id gets a random id (`chooseId`).
 */
import { ConflictError, UsageError } from "../../errors.ts";
import { isDnsLabel } from "../../base/names.ts";
import { DamagedRecordError, RecordExistsError } from "../../store/store.ts";
import { recordSource } from "../record_source.ts";
import type { Host } from "../host.ts";
import { getContainer } from "./record.ts";
import type { ContainerRecord } from "./types.ts";
import { randomHexId } from "../../base/hex.ts";

/** docker compose's project label (compose/names.ts), not imported to keep compose unloaded. */
const COMPOSE_PROJECT = "com.docker.compose.project";

/** True when another container (one not named `name`) keeps `name` as its id. */
export function idHeldByAnother(host: Pick<Host, "store">, name: string): boolean {
  return host.store.list<ContainerRecord>("containers").some((r) =>
    r.id === name && r.name !== name
  );
}

/**
 * The id of a new single container named `name`: the name, unless a renamed
 * container keeps it as its id (then a random one).
 */
export function chooseId(host: Pick<Host, "store">, name: string): string {
  return idHeldByAnother(host, name) ? randomHexId() : name;
}

/** Why this container cannot be renamed, or undefined. */
function refusal(rec: ContainerRecord): string | undefined {
  if (rec.pod) {
    return `it is a member of pod ${
      JSON.stringify(rec.pod)
    }, which keeps its members as POD_CONTAINER by the names in its spec (podman renames pod members; rkl does not)`;
  }
  if (rec.labels[COMPOSE_PROJECT] !== undefined) {
    return `it belongs to compose project ${
      JSON.stringify(rec.labels[COMPOSE_PROJECT])
    }, which finds a service's containers by their names (PROJECT-SERVICE-N); compose up would make another`;
  }
  if (recordSource(rec)?.kind === "cri") {
    return "it was made through the CRI, whose ids are its names";
  }
  if (rec.status === "creating") return "it is still being created";
  if (rec.removing) return "it is being removed";
  return undefined;
}

/**
 * Renames container `old` to `next` (a name `checkName` took). Refused,
 * with nothing changed: a taken or invalid name (UsageError, exit 2), a pod
 * member, a compose or CRI container, one being created or removed.
 */
export async function renameContainer(
  host: Host,
  old: string,
  next: string,
): Promise<ContainerRecord> {
  const quoted = JSON.stringify(old);
  if (!isDnsLabel(next)) {
    throw new UsageError(
      `Cannot rename container ${quoted} to ${
        JSON.stringify(next)
      }: container names are DNS labels (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)`,
    );
  }
  return await host.store.withLock(() => {
    const rec = getContainer(host, old);
    if (next === old) {
      throw new UsageError(
        `Cannot rename container ${quoted}: ${JSON.stringify(next)} is its name`,
      );
    }
    const why = refusal(rec);
    if (why) throw new ConflictError(`Cannot rename container ${quoted}: ${why}`);
    let taken: boolean;
    try {
      taken = host.store.get("containers", next) !== undefined;
    } catch (e) {
      if (!(e instanceof DamagedRecordError)) throw e;
      taken = true; // a damaged record holds the name until rm -f takes it
    }
    if (taken) {
      throw new UsageError(
        `Cannot rename container ${quoted}: name ${JSON.stringify(next)} is in use`,
      );
    }
    const renamed: ContainerRecord = { ...rec, name: next, renamedFrom: old };
    try {
      host.store.rename("containers", old, renamed);
    } catch (e) {
      // A name taken by a record that could not be read (damaged) ends here too.
      if (e instanceof RecordExistsError) {
        throw new UsageError(
          `Cannot rename container ${quoted}: name ${JSON.stringify(next)} is in use`,
        );
      }
      throw e;
    }
    return Promise.resolve(renamed);
  });
}
