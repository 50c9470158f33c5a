/** The pause container: its bundle (rkl's own, built from catatonit on first use) and its spec. */
import { NotFoundError } from "../../errors.ts";
import { which } from "../../oci/runtime.ts";
import type { ContainerSpec, LoadedContainer } from "../../spec/container.ts";
import type { LoadedPod } from "../../spec/pod.ts";
import { type HostFs, realFs } from "../../sys/fs.ts";
import type { Host } from "../host.ts";

/** The pause bundle: the manifest's `bundle` label, RKL_PAUSE_BUNDLE, or rkl's own, built on first use. */
export function pauseBundle(host: Host, loaded: LoadedPod): string {
  if (loaded.spec.pauseBundle) return loaded.spec.pauseBundle;
  const dir = host.pauseBundle;
  try {
    host.fs.stat(`${dir}/rootfs/bin/catatonit`);
    return dir;
  } catch { /* build it */ }
  buildPauseBundle(dir, host.fs);
  return dir;
}

/**
 * `rkl`'s pause bundle: catatonit (static) in an otherwise empty rootfs.
 * `rkl bundle build pause` calls it with no Host, hence the real file system by default.
 */
export function buildPauseBundle(dir: string, fs: HostFs = realFs): void {
  const bin = which("catatonit");
  if (!bin) {
    throw new NotFoundError("Cannot build the pause bundle: catatonit is not installed", {
      hint:
        "run scripts/setup.sh (Debian package catatonit) or name a bundle in metadata.labels.bundle",
    });
  }
  const rootfs = `${dir}/rootfs`;
  for (const d of ["bin", "proc", "sys", "dev", "etc", "tmp"]) {
    fs.mkdir(`${rootfs}/${d}`, { recursive: true });
  }
  const tmp = `${rootfs}/bin/.catatonit-${Deno.pid}`;
  fs.copyFile(bin, tmp);
  fs.chmod(tmp, 0o755);
  fs.rename(tmp, `${rootfs}/bin/catatonit`);
}

/**
 * The pause container as a container spec: from a bundle, catatonit -P
 * unless the bundle names its own process; from an image (already in the
 * store), the image's own entrypoint.
 */
export function pauseSpec(bundle: string, hasArgs: boolean, image?: string): LoadedContainer {
  const spec: ContainerSpec = {
    name: "pause",
    image: image ?? bundle,
    ...(image ? { imagePullPolicy: "Never" as const } : {}),
    command: hasArgs || image ? undefined : ["/bin/catatonit", "-P"],
    env: [],
    ports: [],
    resources: {},
    mounts: [],
    securityContext: {},
    tty: false,
    labels: {},
  };
  return {
    spec,
    warnings: [],
    source: { file: bundle, at: (path) => ({ file: bundle, path: path.join(".") }) },
  };
}
