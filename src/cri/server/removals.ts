/**
 * RemoveContainer answers once the container is gone from the CRI's view;
 * its teardown (the runtime's delete, the rootfs unmount, its dirs) ends
 * after the answer, as containerd leaves its snapshots to its garbage
 * collector. The record is first marked `removing` and saved (unsynced, see `remove`), so
 * no later call lists or finds it, also after a crash; it stays in its pod's
 * member list until the teardown has ended, so that the pod's teardown
 * finishes a removal that failed or was cut short. A daemon that starts
 * resumes the removals a previous one left (`resume`).
 */
import type { Host } from "../../workloads/host.ts";
import { type ContainerRecord, removeContainer } from "../../workloads/container.ts";
import { forgetPodContainer } from "../../workloads/pod.ts";
import { containerInfo, isCri } from "../metadata.ts";

export class Removals {
  readonly #pending = new Map<string, { sandboxId: string; done: Promise<void> }>();

  constructor(
    private readonly host: Host,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /**
   * Marks container `name` of `sandboxId` as removing and starts its
   * teardown; resolves once the mark is saved. A record gone meanwhile is done.
   */
  async remove(name: string, sandboxId: string): Promise<void> {
    const marked = await this.host.store.withLock(() => {
      const now = this.host.store.get<ContainerRecord>("containers", name);
      if (!now) return Promise.resolve(false);
      // Not synced: a kill leaves the mark in the page cache, and a power cut
      // that loses it leaves an exited container of an earlier boot, which
      // the kubelet removes again.
      if (!now.removing) {
        this.host.store.put("containers", { ...now, removing: true }, { durable: false });
      }
      return Promise.resolve(true);
    });
    if (marked) this.#start(name, sandboxId);
  }

  #start(name: string, sandboxId: string): void {
    if (this.#pending.has(name)) return;
    // After a turn of the event loop: the teardown's first steps (reading
    // the record, spawning the runtime's delete) run synchronously, and
    // started at once they would hold back the answer that has marked it.
    const done = (async () => {
      await new Promise((r) => setTimeout(r, 0));
      try {
        await removeContainer(this.host, name, { force: true });
        await forgetPodContainer(this.host, sandboxId, name);
      } catch (e) {
        this.log(
          `cri: RemoveContainer ${name}: ${(e as Error).message}; ` +
            "the removal of its sandbox tries again",
        );
      } finally {
        this.#pending.delete(name);
      }
    })();
    this.#pending.set(name, { sandboxId, done });
  }

  /** Resolves once every removal under way (of `sandboxId`'s containers, when given) has ended. */
  async settled(sandboxId?: string): Promise<void> {
    const mine = [...this.#pending.values()].filter((p) =>
      sandboxId === undefined || p.sandboxId === sandboxId
    );
    await Promise.all(mine.map((p) => p.done));
  }

  /** Starts the teardown of every CRI container a previous daemon marked as removing. */
  resume(): void {
    let recs: ContainerRecord[];
    try {
      recs = this.host.store.list<ContainerRecord>("containers");
    } catch (e) {
      this.log(`cri: cannot list containers to finish their removal: ${(e as Error).message}`);
      return;
    }
    for (const c of recs) {
      if (isCri(c) && c.removing) this.#start(c.name, containerInfo(c).sandboxId);
    }
  }
}
