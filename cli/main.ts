/**
 * rkl's entry point. `--version` answers before anything else is loaded, so
 * it costs one module; everything else is imported on demand (a static
 * specifier, so `deno compile` includes it).
 */
import { VERSION } from "./version.ts";

const args = Deno.args;
if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
  console.log(`rkl ${VERSION}`);
  Deno.exit(0);
}
if (args[0] === "__netns-connect") {
  // A port forward's per-connection helper: loads one small module.
  await (await import("../src/sys/netns_connect.ts")).netnsConnect(args.slice(1));
}
{
  // A running daemon serves the commonest commands (cli/remote.ts).
  const [{ runRemote }, { COMMIT }] = await Promise.all([
    import("./remote.ts"),
    import("./build_info.ts"),
  ]);
  const code = await runRemote(args, `${VERSION}+${COMMIT}`);
  if (code !== undefined) Deno.exit(code);
}
if (Deno.uid() !== 0) {
  // A user without root: into its namespaces now, before the CLI loads (cli/rootless_early.ts).
  await (await import("./rootless_early.ts")).enterEarly(args);
}
if (args.includes("ps") || args.includes("stats")) {
  // `ps` and `stats --no-stream` without the CLI framework or the Host, when plain (light.ts).
  const code = await (await import("./commands/docker/light.ts")).runLight(args);
  if (code !== undefined) Deno.exit(code);
}
// Before anything is spawned: the caller's fds (a flock, a pipe) must not
// live on in conmon, the daemon or a monitor (src/sys/cloexec.ts).
(await import("../src/sys/cloexec.ts")).cloexecInheritedFds();
{
  // `pod run`, `pod rm`, `kube play`, `kube down` without commander, when plain (direct.ts).
  const code = await (await import("./direct.ts")).runDirect(args);
  if (code !== undefined) Deno.exit(code);
}
if (args.includes("daemon")) {
  // `rkl daemon` without commander, when plain (daemon_direct.ts): less for it to keep resident.
  const code = await (await import("./daemon_direct.ts")).runDaemonDirect(args);
  if (code !== undefined) Deno.exit(code);
}
const { main } = await import("./app.ts");
(await import("../src/trace.ts")).trace("modules loaded");
Deno.exit(await main(args));
