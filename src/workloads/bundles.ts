/**
 * The bundle recipes, built into rkl so that a copied binary can make its own
 * (`rkl bundle build pause DIR`): from the host's static catatonit and
 * busybox (Debian: catatonit, busybox-static). bundles/build.sh is the same
 * recipe for a checkout before any Deno code runs.
 */
import { NotFoundError } from "../errors.ts";
import { which } from "../oci/runtime.ts";
import { buildPauseBundle } from "./pod.ts";
import { pathExists } from "../sys/fsutil.ts";
import type { Host } from "./host.ts";

export const BUNDLE_KINDS = ["pause", "busybox"] as const;
export type BundleKind = typeof BUNDLE_KINDS[number];

/** Builds bundle `kind` in `dir`, through the host's file and command ports. */
export async function buildBundle(
  host: Pick<Host, "fs" | "cmd">,
  kind: BundleKind,
  dir: string,
): Promise<void> {
  if (kind === "pause") return buildPauseBundle(dir);
  const busybox = which("busybox");
  if (!busybox) {
    throw new NotFoundError("Cannot build the busybox bundle: busybox is not installed", {
      hint: "apt-get install busybox-static",
    });
  }
  const rootfs = `${dir}/rootfs`;
  for (const d of ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "var/www", "root", "run"]) {
    host.fs.mkdir(`${rootfs}/${d}`, { recursive: true });
  }
  host.fs.chmod(`${rootfs}/tmp`, 0o1777);
  host.fs.copyFile(busybox, `${rootfs}/bin/busybox`);
  host.fs.chmod(`${rootfs}/bin/busybox`, 0o755);
  const list = await host.cmd.run(`${rootfs}/bin/busybox`, { args: ["--list"] });
  for (const applet of list.stdout.split("\n").filter(Boolean)) {
    if (applet === "busybox") continue;
    try {
      host.fs.symlink("busybox", `${rootfs}/bin/${applet}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
  if (!pathExists(`${rootfs}/bin/printenv`, host.fs)) {
    host.fs.writeTextFile(`${rootfs}/bin/printenv`, PRINTENV, { mode: 0o755 });
    host.fs.chmod(`${rootfs}/bin/printenv`, 0o755);
  }
  host.fs.writeTextFile(
    `${rootfs}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
  );
  host.fs.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\nnobody:x:65534:\n");
}

/** bundles/build.sh writes the same script. */
const PRINTENV = `#!/bin/sh
# printenv for bundles whose busybox lacks the applet (Debian's busybox-static;
# the busybox image on Docker Hub has it): prints the named variables, or all.
# It reads its own starting environment, which also holds names such as
# \`discovery.type\` that the shell itself does not pass on.
[ $# -eq 0 ] && exec tr '\\0' '\\n' </proc/$$/environ
rc=0
for v in "$@"; do
  tr '\\0' '\\n' </proc/$$/environ |
    awk -v n="$v=" 'index($0, n) == 1 { print substr($0, length(n) + 1); f = 1; exit } END { exit !f }' ||
    rc=1
done
exit $rc
`;
