/** The CLI: commander wiring, the real Host, error → message + exit code. */
import { Command, CommanderError } from "commander";
import { reportError } from "./direct.ts";
import type { Host } from "../src/workloads/host.ts";

import { buildHost, type GlobalOptions } from "./host.ts";
import { VERSION } from "./version.ts";
import { DOCKER_COMMANDS } from "./docker_verbs.ts";
import { stderr, stdout } from "./io.ts";

export interface Context {
  /** The Host, built on first use (commands like --help never need one). */
  host(): Host;
  warn(message: string): void;
  /** The global flags (--root, --run-root, --runtime), for commands that need no Host. */
  options(): GlobalOptions;
  exitCode: number;
}

type Register = (program: Command, ctx: Context) => void;

/**
 * The top-level commands, in help order, and the module that defines each.
 * Only the module of the command being run is loaded (a static specifier
 * each, so `deno compile` includes them all): `image ls` never evaluates the
 * compose parser. The others are registered from this table by name and
 * description alone, so usage errors can still suggest them; `--help`,
 * `help`, `completion` and an unknown word load everything.
 * cli/app_test.ts checks this table against what the modules register.
 */
export const COMMANDS: {
  name: string;
  alias?: string;
  description: string;
  hidden?: true;
  module: keyof typeof MODULES;
}[] = [
  {
    name: "container",
    alias: "c",
    description: "run and manage single containers",
    module: "container",
  },
  { name: "pod", alias: "p", description: "run and manage Kubernetes pods", module: "pod" },
  ...DOCKER_COMMANDS.map(([name, description]) => ({
    name,
    description,
    module: "docker" as const,
  })),
  { name: "__rm-on-exit", description: "", hidden: true, module: "docker" },
  { name: "compose", description: "run compose applications", module: "compose" },
  {
    name: "kube",
    description:
      "play and tear down Kubernetes files: Pods, Deployments, DaemonSets, Jobs, Services",
    module: "kube",
  },
  { name: "__job-monitor", description: "", hidden: true, module: "kube" },
  {
    name: "daemon",
    description: "keep the pods of a manifests directory running (static pods)",
    module: "daemon",
  },
  {
    name: "node",
    description: "make this host a Kubernetes node with rkl as the kubelet's runtime",
    module: "node",
  },
  {
    name: "bundle",
    description: "OCI bundles rkl can build from the host's packages",
    module: "bundle",
  },
  {
    name: "gc",
    description:
      "remove what no record owns (netns, mounts, cgroups, leases, nat rules, runtime state, files) and roll back interrupted creates",
    module: "gc",
  },
  { name: "__health-monitor", description: "", hidden: true, module: "gc" },
  { name: "__pod-probes", description: "", hidden: true, module: "gc" },
  {
    name: "volume",
    description:
      "named volumes: docker's (volume create, run -v NAME:/dir), compose's and PersistentVolumeClaims'",
    module: "volume",
  },
  {
    name: "image",
    description: "OCI images: pull, list, inspect, tag, remove, prune, import",
    module: "image",
  },
  {
    name: "login",
    description:
      "store credentials for a registry in the auth file ($REGISTRY_AUTH_FILE, default /etc/rkl/auth.json)",
    module: "image",
  },
  {
    name: "logout",
    description: "remove a registry's credentials from the auth file",
    module: "image",
  },
  { name: "generate", description: "write Kubernetes YAML for what runs", module: "generate" },
  {
    name: "stats",
    description:
      "a live table of CPU %, memory, network and block I/O and pids per container, as docker stats",
    module: "stats",
  },
  {
    name: "events",
    description:
      "what happened to containers, pods, images and the daemon, then what happens (until ^C or --until)",
    module: "events",
  },
  {
    name: "doctor",
    description:
      "check what rkl needs on this host, and what a Kubernetes node still lacks; print what to install",
    module: "host_tools",
  },
  {
    name: "version",
    description: "rkl's version and commit, Deno's, and the runtime, conmon and CNI plugins found",
    module: "host_tools",
  },
  {
    name: "completion",
    description:
      "print a completion script: commands, flags, and names of containers, pods and projects",
    module: "host_tools",
  },
  { name: "__complete", description: "", hidden: true, module: "host_tools" },
];

const MODULES = {
  docker: async (): Promise<Register[]> => [
    (await import("./commands/docker.ts")).registerDocker,
  ],
  container: async (): Promise<Register[]> => [
    (await import("./commands/container.ts")).registerContainer,
  ],
  pod: async (): Promise<Register[]> => [(await import("./commands/pod.ts")).registerPod],
  kube: async (): Promise<Register[]> => {
    const m = await import("./commands/kube.ts");
    return [m.registerKube, m.registerJobMonitor];
  },
  compose: async (): Promise<Register[]> => [
    (await import("./commands/compose.ts")).registerCompose,
  ],
  daemon: async (): Promise<Register[]> => [
    (await import("./commands/daemon.ts")).registerDaemon,
  ],
  node: async (): Promise<Register[]> => [(await import("./commands/node.ts")).registerNode],
  bundle: async (): Promise<Register[]> => [
    (await import("./commands/bundle.ts")).registerBundle,
  ],
  gc: async (): Promise<Register[]> => {
    const m = await import("./commands/gc.ts");
    return [m.registerGc, m.registerHealthMonitor, m.registerPodProbes];
  },
  volume: async (): Promise<Register[]> => [
    (await import("./commands/volume.ts")).registerVolume,
  ],
  image: async (): Promise<Register[]> => [(await import("./commands/image.ts")).registerImage],
  generate: async (): Promise<Register[]> => [
    (await import("./commands/generate.ts")).registerGenerate,
  ],
  stats: async (): Promise<Register[]> => [(await import("./commands/stats.ts")).registerStats],
  events: async (): Promise<Register[]> => [(await import("./commands/events.ts")).registerEvents],
  host_tools: async (): Promise<Register[]> => [
    (await import("./commands/host_tools.ts")).registerHostTools,
  ],
};

/** Global options that take a value (so the word after them is not the command). */
const VALUE_OPTIONS = new Set(["--root", "--run-root", "--runtime"]);

/** The command word of argv, or undefined when help is asked for before one. */
export function commandWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") return argv[i + 1];
    if (a === "-h" || a === "--help") return undefined;
    if (VALUE_OPTIONS.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith("-")) continue;
    return a;
  }
  return undefined;
}

/** Registers every command: the real definitions of `word`'s module, a stub for the rest. */
export async function registerCommands(
  program: Command,
  ctx: Context,
  word: string | undefined,
): Promise<void> {
  const hit = word === undefined
    ? undefined
    : COMMANDS.find((c) => c.name === word || c.alias === word);
  const all = !hit || hit.name === "completion" || hit.name === "__complete";
  const done = new Set<string>();
  for (const c of COMMANDS) {
    if (done.has(c.module)) continue;
    if (all || c.module === hit.module) {
      done.add(c.module);
      for (const register of await MODULES[c.module]()) register(program, ctx);
      continue;
    }
    const stub = program.command(c.name, c.hidden ? { hidden: true } : {}).description(
      c.description,
    );
    if (c.alias) stub.alias(c.alias);
  }
}

export interface MainOptions {
  /** The Host to use instead of building one (a daemon serving a thin client). */
  host?: (warn: (m: string) => void) => Host;
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const program = new Command("rkl")
    .description("run containers, Kubernetes pods and compose apps on one Linux host")
    .version(`rkl ${VERSION}`, "-V, --version")
    .option("--root <dir>", "persistent state (env RKL_ROOT)", undefined)
    .option("--run-root <dir>", "volatile state (env RKL_RUN_ROOT)", undefined)
    .option("--runtime <name>", "OCI runtime: youki, runc, crun or a path (env RKL_RUNTIME)")
    .option("--debug", "print the cause chain of errors")
    .showHelpAfterError()
    // Options belong to the command they follow: `compose -f FILE logs -f` means two things.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: stderr, writeOut: stdout });

  let cached: Host | undefined;
  const ctx: Context = {
    host: () =>
      cached ??= options.host?.(ctx.warn) ?? buildHost(program.opts<GlobalOptions>(), ctx.warn),
    warn: (m) => stderr(`warning: ${m}\n`),
    options: () => program.opts<GlobalOptions>(),
    exitCode: 0,
  };
  await registerCommands(program, ctx, commandWord(argv));
  for (const sub of program.commands) sub.exitOverride();

  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version print and exit 0; usage errors are bad input (2).
      return e.exitCode === 0 ? 0 : 2;
    }
    const debug = program.opts<GlobalOptions>().debug || Deno.env.get("RKL_DEBUG") === "1";
    return reportError(e, !!debug);
  }
}
