/**
 * The bundle recipes, built into rkl so that a copied binary can make its own
 * (`rkl bundle build pause DIR`): from the host's static catatonit and
 * busybox (Debian: catatonit, busybox-static). bundles/build.sh is the same
 * recipe for a checkout before any Deno code runs.
 */
import { NotFoundError } from "../errors.ts";
import { which } from "../oci/runtime.ts";
import { buildPauseBundle } from "./pod.ts";

export const BUNDLE_KINDS = ["pause", "busybox"] as const;
export type BundleKind = typeof BUNDLE_KINDS[number];

export async function buildBundle(kind: BundleKind, dir: string): Promise<void> {
  if (kind === "pause") return buildPauseBundle(dir);
  const busybox = which("busybox");
  if (!busybox) {
    throw new NotFoundError("Cannot build the busybox bundle: busybox is not installed", {
      hint: "apt-get install busybox-static",
    });
  }
  const rootfs = `${dir}/rootfs`;
  for (const d of ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "var/www", "root", "run"]) {
    Deno.mkdirSync(`${rootfs}/${d}`, { recursive: true });
  }
  Deno.chmodSync(`${rootfs}/tmp`, 0o1777);
  Deno.copyFileSync(busybox, `${rootfs}/bin/busybox`);
  Deno.chmodSync(`${rootfs}/bin/busybox`, 0o755);
  const list = await new Deno.Command(`${rootfs}/bin/busybox`, {
    args: ["--list"],
    stdout: "piped",
  }).output();
  for (const applet of new TextDecoder().decode(list.stdout).split("\n").filter(Boolean)) {
    if (applet === "busybox") continue;
    try {
      Deno.symlinkSync("busybox", `${rootfs}/bin/${applet}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
  Deno.writeTextFileSync(
    `${rootfs}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
  );
  Deno.writeTextFileSync(`${rootfs}/etc/group`, "root:x:0:\nnobody:x:65534:\n");
}
