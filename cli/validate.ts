/**
 * `rkl pod validate FILE`: everything `pod run` checks before it makes
 * anything (the YAML, bundles, hostPath types, seccomp profiles, users,
 * runAsNonRoot, limits against this host), and nothing it makes. Warnings go
 * to stderr as they would for `run`; a refusal is the same one-line error
 * with exit 2. It needs no root: the host facts it uses are read-only.
 */
import {
  planContainer,
  prepareHostPaths,
  readLocalhostSeccomp,
  rootSource,
  withResolvedUser,
} from "../src/workloads/container.ts";
import { ImageService } from "../src/image/service.ts";
import { defaultPullPolicy, parseReference } from "../src/image/reference.ts";
import { locateFieldError, SpecError } from "../src/errors.ts";
import { cachedReader, checkUnpulled } from "../src/workloads/unpulled.ts";
import { LinuxSyscalls } from "../src/sys/syscalls.ts";
import { realFs } from "../src/sys/fs.ts";
import type { Context } from "./app.ts";
import { hardLimits, nofileHard, resolvePaths } from "./host.ts";
import { loadPodFile } from "./commands/pod.ts";

export async function validatePods(
  file: string,
  ctx: Context,
  configmaps: string[] = [],
): Promise<string> {
  const pods = await loadPodFile(file, ctx.warn, configmaps);
  const paths = resolvePaths(ctx.options());
  const limits = hardLimits();
  const host = {
    paths,
    images: new ImageService({ root: `${paths.root}/images` }),
    cgroupParent: "rkl",
    nofileHard: nofileHard(limits),
    hardLimits: limits,
    sys: new LinuxSyscalls(),
    fs: realFs,
  };
  // An image not pulled yet: its config from the registry, once per reference.
  const readConfig = cachedReader((ref) => host.images.inspect(ref));
  const out: string[] = [];
  for (const pod of pods) {
    const s = pod.spec;
    const notes: string[] = [];
    // A FieldError's path is the pod's: located through the pod file's source, as pod run does.
    const located = <T>(f: () => T): T => {
      try {
        return f();
      } catch (e) {
        throw locateFieldError(e, pod.source);
      }
    };
    for (const c of [...s.initContainers, ...s.containers]) {
      const source = await rootSource(host, c, { pull: false });
      let bundle = source.defaults;
      let loaded = c;
      if (source.lowers.length === 0) {
        const u = await checkUnpulled(readConfig, c);
        ({ bundle, loaded } = u);
        notes.push(...u.notes);
        if (u.warning) ctx.warn(u.warning);
      } else loaded = located(() => withResolvedUser(host, c, source));
      notes.push(...located(() => prepareHostPaths(host, c, { dryRun: true })));
      planContainer(loaded, {
        host,
        network: null,
        bundle,
        localhostSeccomp: readLocalhostSeccomp(host, loaded),
        podInfo: {
          name: s.name,
          namespace: s.namespace,
          uid: "(made at create)",
          labels: s.labels,
          annotations: s.annotations,
          nodeName: "(this host)",
          serviceAccountName: "default",
          hostIP: "(this host's)",
          podIP: "(assigned at create)",
        },
      });
    }
    for (const [v, iv] of Object.entries(s.imageVolumes ?? {})) {
      if (host.images.store.find(iv.reference)) continue;
      if ((iv.pullPolicy ?? defaultPullPolicy(iv.reference)) === "Never") {
        throw new SpecError(
          pod.source.at(iv.path),
          `image ${JSON.stringify(iv.reference)} is not in the store and pullPolicy is Never`,
        );
      }
      try {
        parseReference(iv.reference);
      } catch (e) {
        throw new SpecError(pod.source.at(iv.path), (e as Error).message);
      }
      notes.push(`image volume ${v}: image ${iv.reference} will be pulled`);
    }
    const kinds = [
      `${s.containers.length} container${s.containers.length === 1 ? "" : "s"}`,
      ...(s.initContainers.length > 0
        ? [`${s.initContainers.filter((c) => !c.spec.sidecar).length} init`]
        : []),
      ...(s.initContainers.some((c) => c.spec.sidecar)
        ? [`${s.initContainers.filter((c) => c.spec.sidecar).length} sidecar`]
        : []),
    ];
    const ports = s.containers.flatMap((c) => c.spec.ports.filter((p) => p.hostPort))
      .map((p) => `${p.hostPort}->${p.containerPort}/${(p.protocol || "TCP").toLowerCase()}`);
    out.push(
      `pod ${s.name}: ok (${kinds.join(", ")}${ports.length ? `; ports ${ports.join(", ")}` : ""}${
        s.hostNetwork ? "; host network" : ""
      })\n`,
    );
    for (const n of notes) out.push(`  ${n}\n`);
  }
  return out.join("");
}
