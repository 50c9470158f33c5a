/**
 * `rkl daemon install --user`: writes the user's systemd unit (see
 * src/daemon/install_user.ts) and its manifests dir, as the user itself (no
 * namespace is needed to write a file in its home), and says how to start
 * it. `systemd-analyze --user verify` accepts the unit (tests/e2e).
 */
import { UsageError } from "../src/errors.ts";
import { userInstallPaths, userUnitFile } from "../src/daemon/install_user.ts";
import { write } from "./format.ts";

export function installUserUnit(bin: string | string[], manifests?: string): void {
  if ((Deno.uid() ?? 0) === 0 && Deno.env.get("RKL_ROOTLESS") !== "1") {
    throw new UsageError(
      "daemon install --user is for a user without root; root's unit is daemon install",
    );
  }
  const paths = userInstallPaths(Deno.env.toObject());
  const dir = manifests ?? paths.manifests;
  if (!dir.startsWith("/")) {
    throw new UsageError(`--manifests ${JSON.stringify(dir)} must be an absolute path`);
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.mkdirSync(paths.unit.slice(0, paths.unit.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(paths.unit, userUnitFile({ bin, manifests: dir }));
  write(
    `wrote ${paths.unit}; static pods in ${dir}; then: systemctl --user daemon-reload && ` +
      `systemctl --user enable --now rkl (loginctl enable-linger USER keeps it after logout)\n`,
  );
}
