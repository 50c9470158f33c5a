/**
 * Fault injection around the real parts: a runtime wrapper and CNI plugin
 * wrappers that run the real binaries unless a control file names their
 * step, in which case they fail (exit 1 with a message) or hang. The control
 * file holds one line `STEP MODE` (e.g. `create fail`, `start hang`,
 * `ADD fail`, `DEL fail`) or nothing.
 */
import { which } from "../../src/oci/runtime.ts";

export interface Faults {
  /** Path of the runtime wrapper, for `--runtime`. */
  runtime: string;
  /** Directory of CNI plugin wrappers, for RKL_CNI_PATH. */
  cniPath: string;
  /** Sets the fault (undefined clears it). */
  set(step?: string, mode?: "fail" | "hang"): Promise<void>;
}

const CNI_DIRS = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"];

export async function makeFaults(dir: string, realRuntime = "youki"): Promise<Faults> {
  const control = `${dir}/fault`;
  await Deno.writeTextFile(control, "");
  const real = which(realRuntime);
  if (!real) throw new Error(`${realRuntime} is not installed`);
  // The wrapper is named like the runtime so rkl keeps its state apart (runtime root by name).
  const binDir = `${dir}/faulty-bin`;
  await Deno.mkdir(binDir, { recursive: true });
  const runtime = `${binDir}/faulty-${realRuntime}`;
  await Deno.writeTextFile(
    runtime,
    `#!/bin/sh
# Runs ${real} unless ${control} names this subcommand.
sub=""
for a in "$@"; do
  case "$a" in create|start|delete|kill|state|exec) sub="$a"; break;; esac
done
read -r step mode < ${control} 2>/dev/null
if [ -n "$sub" ] && [ "$sub" = "$step" ]; then
  case "$mode" in
    fail) echo "injected failure at $sub" >&2; exit 1;;
    hang) exec sleep 3600;;
  esac
fi
exec ${real} "$@"
`,
  );
  await Deno.chmod(runtime, 0o755);

  const cniPath = `${dir}/faulty-cni`;
  await Deno.mkdir(cniPath, { recursive: true });
  for (const plugin of ["bridge", "host-local", "portmap", "loopback"]) {
    const realPlugin = CNI_DIRS.map((d) => `${d}/${plugin}`).find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
    if (!realPlugin) throw new Error(`CNI plugin ${plugin} is not installed`);
    // Only the bridge plugin is faulted: it is the one every attachment runs.
    const fault = plugin === "bridge"
      ? `read -r step mode < ${control} 2>/dev/null
if [ "$CNI_COMMAND" = "$step" ]; then
  case "$mode" in
    fail) printf '{"cniVersion":"1.0.0","code":999,"msg":"injected failure at %s"}' "$CNI_COMMAND"; exit 1;;
    hang) exec sleep 3600;;
  esac
fi
`
      : "";
    await Deno.writeTextFile(
      `${cniPath}/${plugin}`,
      `#!/bin/sh\n${fault}exec ${realPlugin} "$@"\n`,
    );
    await Deno.chmod(`${cniPath}/${plugin}`, 0o755);
  }
  return {
    runtime,
    cniPath,
    set: async (step, mode) => {
      await Deno.writeTextFile(control, step ? `${step} ${mode ?? "fail"}\n` : "");
    },
  };
}
