/**
 * rkl run by a user without root: the outer half (see src/sys/userns.ts).
 * The user's rkl finds its state dirs, starts (or finds) the pause process
 * that holds the user's namespaces, and runs this same command again inside
 * them through nsenter, where it is uid 0 of the user namespace; its exit
 * code is this process's. Root's state (/var/lib/rkl, /run/rkl, /etc/rkl) is
 * never read or written on this path.
 */
import { which } from "../src/oci/runtime.ts";
import { userName } from "../src/sys/userns.ts";
import { selfArgv } from "./self.ts";
import { enterNamespace } from "./rootless_early.ts";

export { innerEnv } from "./rootless_early.ts";

/**
 * Runs this command again as root of the user's namespace, and exits with
 * its code: for a command cli/main.ts did not enter early (rootless_early.ts).
 */
export function enterRootless(): never {
  return enterNamespace(selfArgv(), Deno.args);
}

/** `rkl doctor` for a user without root: prints each check; the exit code (1: a required part missing). */
export async function rootlessDoctor(
  format: (
    c: { name: string; ok: boolean; detail: string; required: boolean; fix?: string },
  ) => string,
): Promise<number> {
  const { rootlessChecks } = await import("../src/sys/userns_checks.ts");
  const { youkiRunsRootlessOnV1 } = await import("../src/oci/youki_marker.ts");
  const uid = Deno.uid() ?? 0;
  const checks = rootlessChecks({
    read(path) {
      try {
        return Deno.readTextFileSync(path);
      } catch {
        return undefined;
      }
    },
    which: (name) => which(name),
    mode(path) {
      try {
        return Deno.statSync(path).mode ?? undefined;
      } catch {
        return undefined;
      }
    },
    canOpenRw(path) {
      try {
        Deno.openSync(path, { read: true, write: true }).close();
        return true;
      } catch {
        return false;
      }
    },
    kernelRelease: () => Deno.osRelease(),
    youkiRootlessV1: (binary) => youkiRunsRootlessOnV1(binary),
    uid,
    user: userName(uid),
  });
  let text = `rootless (uid ${uid}):\n`;
  for (const c of checks) text += `${format(c)}\n`;
  const missing = checks.filter((c) => c.required && !c.ok).length;
  text += missing
    ? `${missing} required part(s) missing for rootless rkl\n`
    : "this user can run rootless rkl\n";
  await Deno.stdout.write(new TextEncoder().encode(text));
  return missing ? 1 : 0;
}
