/** A single container's own sandbox: its network namespace, CNI attachments and /etc files. */
import { type NetConfList, resultIPv4 } from "../../net/cni.ts";
import { cniUp, hostLocks } from "../../net/attach.ts";
import { createNetns } from "../../sys/netns.ts";
import { trace } from "../../trace.ts";
import { checkCancelled } from "../../cancel.ts";
import { hostsFile, resolvConf } from "../etc_files.ts";
import { assertPortsFree } from "../ports.ts";
import type { Host } from "../host.ts";
import { readOr } from "./_fs.ts";
import { cniContainerId } from "./record.ts";
import { bridgeAbsent } from "./network.ts";
import type { ContainerPlan, ContainerRecord, CreateOptions } from "./types.ts";

const RESOLV = "/etc/resolv.conf";

/** A single container's own network namespace, CNI attachments and /etc files. */
export async function setUpOwnSandbox(
  host: Host,
  rec: ContainerRecord,
  plan: ContainerPlan,
  conflist: NetConfList | undefined,
  save: () => void,
  fixed?: CreateOptions["fixed"],
): Promise<void> {
  const d = plan.dirs;
  host.fs.mkdir(`${host.paths.runRoot}/netns`, { recursive: true, mode: 0o755 });
  rec.resources.netns = true;
  checkCancelled();
  try {
    if (host.rootless) host.rootless.createNetns(d.netns);
    else createNetns(host.sys, d.netns, host.fs);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      // Not ours: never unpinned, and no DEL or runtime delete in it either.
      Object.assign(rec.resources, { netns: false, cni: false, runtime: false });
      save();
    }
    throw e;
  }
  trace("create: netns");
  rec.resources.cni = true;
  // Before the ADDs that may make a bridge: only their rollback deletes it
  // (bridgeGoesWith). Saved before them (only then: the first ADD on a
  // network), so an `rm -f` after a kill -9 finishes that rollback too.
  let fresh = false;
  if (rec.network && bridgeAbsent(host, conflist)) fresh = rec.network.newBridge = true;
  for (const x of rec.extraNetworks ?? []) {
    if (bridgeAbsent(host, x.conflist)) fresh = x.newBridge = true;
  }
  if (fresh) save();
  checkCancelled();
  const result = await cniUp(host.cni, {
    cniId: cniContainerId(rec),
    netns: d.netns,
    conflist,
    portMappings: plan.portMappings,
    fixed: rec.network ? fixed?.[rec.network.name] : undefined,
    portsFree: () => assertPortsFree(host, plan.portMappings, cniContainerId(rec)),
    lock: host.lock,
  });
  if (result && rec.network) {
    rec.network.result = result;
    rec.network.ip = resultIPv4(result);
    save();
  }
  for (const x of rec.extraNetworks ?? []) {
    x.result = await host.cni.add(x.conflist, {
      containerId: cniContainerId(rec),
      netns: d.netns,
      ifName: x.ifName,
      ...(fixed?.[x.name] ? { capabilityArgs: fixed[x.name] } : {}),
    }, hostLocks(undefined, host.lock));
    x.ip = resultIPv4(x.result);
    save();
  }

  host.fs.writeTextFile(
    `${d.etc}/hosts`,
    hostsFile(plan.config.hostname ?? plan.name, rec.network?.ip),
  );
  host.fs.writeTextFile(`${d.etc}/hostname`, `${plan.config.hostname ?? plan.name}\n`);
  host.fs.writeTextFile(`${d.etc}/resolv.conf`, resolvConf(readOr(host.fs, RESOLV)));
  trace("create: cni + etc files");
}
