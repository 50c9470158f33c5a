/**
 * rkl run by a user without root: the outer half (see src/sys/userns.ts).
 * The user's rkl finds its state dirs, starts (or finds) the pause process
 * that holds the user's namespaces, and runs this same command again inside
 * them through nsenter, where it is uid 0 of the user namespace; its exit
 * code is this process's. Root's state (/var/lib/rkl, /run/rkl, /etc/rkl) is
 * never read or written on this path.
 */
import { RklError } from "../src/errors.ts";
import { which } from "../src/oci/runtime.ts";
import {
  ensurePause,
  enterArgv,
  idMapsFor,
  privateUserDir,
  rootlessRoots,
  userName,
} from "../src/sys/userns.ts";
import { selfArgv } from "./self.ts";

/** The environment of the inner rkl: its roots, its config files, and the rootless mode. */
export function innerEnv(
  env: Record<string, string>,
  roots: { root: string; runRoot: string; configDir: string },
): Record<string, string> {
  return {
    ...env,
    RKL_ROOTLESS: "1",
    RKL_ROOT: env.RKL_ROOT ?? roots.root,
    RKL_RUN_ROOT: env.RKL_RUN_ROOT ?? roots.runRoot,
    RKL_REGISTRIES_CONFIG: env.RKL_REGISTRIES_CONFIG ?? `${roots.configDir}/registries.yaml`,
    REGISTRY_AUTH_FILE: env.REGISTRY_AUTH_FILE ?? `${roots.configDir}/auth.json`,
    // The thin client's daemon is root's or another root's: not this user's to use.
    RKL_NO_DAEMON: "1",
  };
}

/** Runs this command again as root of the user's namespace, and exits with its code. */
export function enterRootless(): never {
  const uid = Deno.uid() ?? 0;
  const gid = Deno.gid() ?? uid;
  const env = Deno.env.toObject();
  for (const tool of ["newuidmap", "newgidmap", "nsenter", "unshare"]) {
    if (!which(tool)) {
      throw new RklError("EROOTLESS", `Cannot run rootless: ${tool} is not installed`, {
        hint: tool.startsWith("new")
          ? "apt-get install uidmap  |  dnf install shadow-utils"
          : "apt-get install util-linux",
      });
    }
  }
  const roots = rootlessRoots(env, uid);
  if (env.XDG_RUNTIME_DIR?.startsWith("/")) privateUserDir(env.XDG_RUNTIME_DIR, uid);
  privateUserDir(roots.runRoot, uid);
  Deno.mkdirSync(roots.root, { recursive: true, mode: 0o700 });
  const maps = idMapsFor(userName(uid), uid, gid);
  const pid = ensurePause(roots.runRoot, maps);
  const argv = enterArgv(pid, Deno.cwd(), [...selfArgv(), ...Deno.args]);
  // ^C reaches the inner rkl too (one process group): this one waits for it.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(sig, () => {});
  }
  const r = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: innerEnv(env, roots),
    clearEnv: true,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  Deno.exit(r.signal ? 128 + signalNumber(r.signal) : r.code);
}

function signalNumber(s: Deno.Signal): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[
    s
  ] ?? 1;
}

/** `rkl doctor` for a user without root: prints each check; the exit code (1: a required part missing). */
export async function rootlessDoctor(
  format: (
    c: { name: string; ok: boolean; detail: string; required: boolean; fix?: string },
  ) => string,
): Promise<number> {
  const { rootlessChecks } = await import("../src/sys/userns_checks.ts");
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
