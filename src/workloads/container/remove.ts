/** Removing containers: one (`rm`), or several side by side (compose down). */
import { ConflictError } from "../../errors.ts";
import { hostVeth } from "../../net/cni.ts";
import { DamagedRecordError } from "../../store/store.ts";
import { pathExists } from "../../sys/fsutil.ts";
import { linkGone } from "../../sys/linkwatch.ts";
import { trace } from "../../trace.ts";
import { readExitCode } from "../../oci/conmon.ts";
import { scavengeContainer } from "../scavenge.ts";
import type { Host } from "../host.ts";
import { bridgeGoesWith, deleteBridge, unusedBridge } from "./network.ts";
import { getContainer, ownerGone, refuseWhileBeingMade } from "./record.ts";
import { refresh } from "./status.ts";
import { teardown } from "./teardown.ts";
import { noteKill } from "./lifecycle.ts";
import { idHeldByAnother } from "./rename.ts";
import type { ContainerRecord, NetworkUser } from "./types.ts";

/**
 * `rm`: a stopped (or, with `force`, any) container torn down and its record
 * deleted; a damaged record with `force` is cleaned up by name (scavenge.ts).
 */
export async function removeContainer(
  host: Host,
  name: string,
  options: {
    force?: boolean;
    keepBridges?: ReadonlySet<string>;
    /** Its anonymous volumes (`-v /dir`) go too, as docker's `rm -v` and `run --rm`. */
    volumes?: boolean;
  } = {},
): Promise<void> {
  trace("rm: begin");
  let rec: ContainerRecord;
  try {
    rec = getContainer(host, name);
  } catch (e) {
    // A damaged record: clean by what the host holds under this name.
    if (!(e instanceof DamagedRecordError) || !options.force) throw e;
    if (idHeldByAnother(host, name)) {
      // What the host holds under this name is a renamed container's: only the record goes.
      host.warn(`${e.message}; removing the record (${JSON.stringify(name)} is another's id)`);
      await host.store.withLock(() => Promise.resolve(host.store.delete("containers", name)));
      return;
    }
    host.warn(`${e.message}; removing what the host holds for ${JSON.stringify(name)}`);
    await scavengeContainer(host, name);
    return;
  }
  refuseWhileBeingMade(
    host,
    rec.name,
    "container",
    rec.status === "creating" ? rec.owner : undefined,
  );
  if (options.force) {
    // `<runtime> delete --force` kills whatever still runs, so -f needs no stop step; a
    // running one is told killed (SIGKILL), as docker's rm -f tells it, before its die.
    if (rec.status === "running" && readExitCode(rec.dirs.exitDir, rec.id, host.fs) === undefined) {
      noteKill(host, rec, "SIGKILL", host.now());
    }
    await teardown(host, rec, options);
    trace("rm: teardown");
    return;
  }
  await refresh(host, rec);
  const interrupted = rec.status === "creating" && ownerGone(host, rec.owner);
  if (rec.status === "running" || (rec.status === "creating" && !interrupted)) {
    throw new ConflictError(
      `Cannot remove container ${JSON.stringify(name)}: it is ${rec.status}`,
      {
        hint: "stop it first, or use rm -f",
      },
    );
  }
  await teardown(host, rec, options);
  trace("rm: teardown");
}

/**
 * `rm -f` of several containers side by side (compose down). A bridge that
 * goes (bridgeGoesWith: its network is gone, or is in `networksGoing`, the
 * networks the caller removes next) and that none but them uses is deleted
 * as soon as their DELs have deleted its veths, beside the rest of the DELs
 * (their iptables work), not after the last one: the bridge's own deletion
 * takes 35-50 ms of the kernel's rtnl lock, which the veth deletions need
 * too. Runs under the store lock, so no create joins such a network
 * meanwhile. Returns the names removed; throws the first error once every
 * removal has ended.
 */
export async function removeContainers(
  host: Host,
  names: string[],
  options: { networksGoing?: ReadonlySet<string> } = {},
): Promise<string[]> {
  return await host.store.withLock(async () => {
    const going = new Set(names);
    const idle = new Map<string, { user: NetworkUser; veths: string[] }>();
    const unsure = new Set<string>();
    for (const name of names) {
      let rec: ContainerRecord | undefined;
      try {
        rec = host.store.get<ContainerRecord>("containers", name);
      } catch {
        continue; // damaged: its removal scavenges, and the bridge waits for the last DEL
      }
      if (!rec?.resources.cni) continue;
      const attachments = [
        ...(rec.network ? [{ network: rec.network, result: rec.network.result }] : []),
        ...(rec.extraNetworks ?? []).map((x) => ({
          network: {
            name: x.name,
            conflist: x.conflist,
            portMappings: [],
            newBridge: x.newBridge,
          },
          result: x.result,
        })),
      ];
      for (const { network, result } of attachments) {
        const user: NetworkUser = { kind: "containers", name: rec.name, network };
        const goes = options.networksGoing?.has(network.name) ||
          bridgeGoesWith(host, user, rec.status === "creating");
        const bridge = goes ? unusedBridge(host, user, going) : undefined;
        if (!bridge) continue;
        const entry = idle.get(bridge) ?? { user, veths: [] };
        idle.set(bridge, entry);
        const veth = hostVeth(result, bridge);
        if (veth) entry.veths.push(veth);
        else unsure.add(bridge); // a veth not known by name: the old way, after the last DEL
      }
    }
    for (const b of unsure) idle.delete(b);
    let ended!: () => void;
    const allEnded = new Promise<void>((r) => ended = r);
    // Subscribed before any DEL starts, so no deletion is missed.
    const watches = [...idle].map(([bridge, e]) => ({
      bridge,
      user: e.user,
      gone: Promise.all(e.veths.map((v) => linkGone(v, allEnded))).then(() =>
        e.veths.every((v) => !pathExists(`/sys/class/net/${v}`, host.fs))
      ),
    }));
    const keepBridges = new Set(idle.keys());
    const removals = Promise.allSettled(
      names.map((n) => removeContainer(host, n, { force: true, keepBridges })),
    ).finally(ended);
    const bridgeResults = await Promise.allSettled(watches.map(async (w) => {
      if (await w.gone) return await deleteBridge(host, w.bridge);
      // A veth is still there (its DEL failed): decide once the records are
      // gone, as a single rm would (the caller removes the network next).
      await removals;
      if (unusedBridge(host, w.user)) await deleteBridge(host, w.bridge);
    }));
    const results = await removals;
    const failed = [...results, ...bridgeResults].find((r): r is PromiseRejectedResult =>
      r.status === "rejected"
    );
    if (failed) throw failed.reason;
    return names;
  });
}
