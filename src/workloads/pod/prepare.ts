/**
 * What a pod's create needs before it makes anything: the pause bundle
 * checked, images pulled (as each policy says), the network loaded and the
 * host ports others hold read. Everything that can fail on input fails here.
 */
import { SpecError } from "../../errors.ts";
import type { NetConfList, PortMapping } from "../../net/cni.ts";
import { natTable } from "../../net/hostnet.ts";
import { loadNetwork } from "../../net/network.ts";
import { defaultPullPolicy } from "../../image/reference.ts";
import type { LoadedPod } from "../../spec/pod.ts";
import { prepareHostPaths, readBundle, rootSource } from "../container.ts";
import { type Host, networkOptions } from "../host.ts";
import { pauseBundle, pauseSpec } from "./pause.ts";
import { podPortMappings } from "./plan.ts";
import { type CreatePodOptions, podDirs, type PodRecord } from "./types.ts";

export interface PodInputs {
  /** A pause process only where something needs it: PID 1 of a shared PID namespace. */
  withPause: boolean;
  /** The pause bundle ("" without one, or with a pause image). */
  pauseDir: string;
  /** Whether the pause bundle names its own process. */
  pauseHasArgs: boolean;
  mappings: PortMapping[];
  imageVolumes: NonNullable<PodRecord["imageVolumes"]>;
  /** The network to attach to (null: the host's, or none). */
  network: string | null;
  conflist?: NetConfList;
  /** The nat table as read ("" when no port is published). */
  nat: string;
}

export async function preparePod(
  host: Host,
  loaded: LoadedPod,
  options: CreatePodOptions,
): Promise<PodInputs> {
  const spec = loaded.spec;
  // A pause process only where something needs it: PID 1 of a shared PID
  // namespace. Otherwise the namespaces are pinned as files with no process
  // holding them (CRI-O's pinns without an infra container).
  const withPause = spec.shareProcessNamespace;
  let pauseDir = "";
  let pauseHasArgs = false;
  if (withPause && !spec.pauseImage) {
    pauseDir = pauseBundle(host, loaded);
    try {
      pauseHasArgs = (readBundle(host, pauseSpec(pauseDir, false)).args ?? []).length > 0;
    } catch {
      throw new SpecError(
        spec.pauseBundle ? loaded.source.at(["metadata", "labels", "bundle"]) : { file: pauseDir },
        `pause bundle ${JSON.stringify(pauseDir)} has no rootfs/ directory`,
      );
    }
  }
  const mappings = spec.hostNetwork ? [] : spec.portMappings ?? podPortMappings(loaded);
  // Host ports other roots and other forwarders hold (the nat table), read
  // meanwhile: checked at the reservation.
  const natRead = mappings.length > 0 && !spec.hostNetwork && options.network
    ? natTable(host.cmd)
    : undefined;
  // Images are pulled (as each container's policy says) before anything is made.
  for (const c of [...spec.initContainers, ...spec.containers]) {
    await rootSource(host, c);
    prepareHostPaths(host, c);
  }
  const dirs = podDirs(host, spec.name);
  // Image volumes too, as their pullPolicy says (default as for a container's image).
  const imageVolumes: PodInputs["imageVolumes"] = {};
  for (const [v, iv] of Object.entries(spec.imageVolumes ?? {})) {
    // The request's own locator (its front end's) places the volume's field.
    const at = loaded.source.at(iv.path);
    if (!host.images) throw new SpecError(at, "an image volume needs the image store");
    const image = await host.images.ensure(
      iv.reference,
      iv.pullPolicy ?? defaultPullPolicy(iv.reference),
      at,
    );
    imageVolumes[v] = { imageId: image.id, dir: `${dirs.volumes}/${v}` };
  }
  const network = spec.hostNetwork ? null : options.network;
  const conflist = network ? await loadNetwork(network, networkOptions(host)) : undefined;
  const nat = conflist && mappings.length > 0 ? await (natRead ?? natTable(host.cmd)) : "";
  return { withPause, pauseDir, pauseHasArgs, mappings, imageVolumes, network, conflist, nat };
}
