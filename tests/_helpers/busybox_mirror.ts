/** docker.io/library/busybox for the docker-style e2e files: the bundle's rootfs in a registry on 127.0.0.1. */
import { type RklEnv, rklOk } from "./env.ts";
import { REPO } from "./requires.ts";
import { dirTar, pushImage, type Registry, startRegistry } from "./oci.ts";

/**
 * Starts a registry under the env's dir with busybox:latest (the test
 * bundle's rootfs, `sh` as its command), makes it the env's mirror of
 * docker.io (no fallback: nothing leaves the host) and pulls busybox, so the
 * image is there before a file's first census.
 */
export async function busyboxMirror(e: RklEnv): Promise<Registry> {
  const registry = await startRegistry(`${e.dir}/registry`);
  await pushImage(registry.url, "library/busybox", "latest", {
    layers: [await dirTar(`${REPO}/bundles/busybox/rootfs`)],
    config: { Env: ["PATH=/bin:/sbin"], Cmd: ["sh"] },
  });
  Deno.writeTextFileSync(
    `${e.dir}/registries.yaml`,
    `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`,
  );
  e.env.RKL_REGISTRIES_CONFIG = `${e.dir}/registries.yaml`;
  await rklOk(e, ["pull", "-q", "busybox"]);
  return registry;
}
