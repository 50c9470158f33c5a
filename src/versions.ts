/** The versions `rkl version` reports: rkl, Deno, and the parts rkl drives on this host. */
import { CNI_PLUGIN_DIRS } from "./net/cni.ts";
import { RUNTIME_PREFERENCE, which } from "./oci/runtime.ts";

async function firstLine(cmd: string, args: string[], env?: Record<string, string>) {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      env: { RUST_BACKTRACE: "0", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim() ||
      new TextDecoder().decode(out.stderr).trim();
    return text.split("\n")[0] ?? "";
  } catch {
    return "";
  }
}

/** `built` is the commit a packed copy was made from (cli/build_info.ts), "dev" in a checkout. */
async function commitOf(built: string): Promise<string> {
  if (built !== "dev") return built;
  const dir = new URL("..", import.meta.url);
  if (dir.protocol !== "file:") return "unknown";
  const line = await firstLine("git", ["-C", dir.pathname, "rev-parse", "--short", "HEAD"]);
  return /^[0-9a-f]{4,}$/.test(line) ? `${line} (checkout)` : "unknown";
}

/** `commit`: cli/build_info.ts's COMMIT, passed in by the cli (src/ imports nothing from cli/). */
export async function componentVersions(rklVersion: string, commit: string) {
  const runtimes = [];
  for (const name of RUNTIME_PREFERENCE) {
    const path = which(name);
    if (!path) continue;
    const v = await firstLine(path, ["--version"]);
    runtimes.push({ name, path, version: v.replace(/^.*?version:?\s*/i, "") || "unknown" });
  }
  const conmonPath = which("conmon");
  const conmon = conmonPath
    ? {
      path: conmonPath,
      version: (await firstLine(conmonPath, ["--version"])).replace(/^conmon version\s*/, ""),
    }
    : undefined;
  const cni = [];
  for (const name of ["bridge", "host-local", "portmap"]) {
    const dir = CNI_PLUGIN_DIRS.find((d) => {
      try {
        return Deno.statSync(`${d}/${name}`).isFile;
      } catch {
        return false;
      }
    });
    if (!dir) continue;
    const path = `${dir}/${name}`;
    // Run without CNI_COMMAND a plugin prints its own version; with VERSION, its protocols.
    const own = await firstLine(path, []);
    const proto = await firstLine(path, [], { CNI_COMMAND: "VERSION" });
    let protocols = "unknown";
    try {
      protocols = (JSON.parse(proto).supportedVersions as string[]).join(", ");
    } catch { /* not JSON */ }
    cni.push({
      name,
      path,
      version: own.replace(/^CNI \S+ plugin\s*/, "") || "unknown",
      protocols,
    });
  }
  return {
    rkl: { version: rklVersion, commit: await commitOf(commit) },
    deno: Deno.version,
    runtimes,
    conmon,
    cni,
  };
}
