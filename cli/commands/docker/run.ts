/** `rkl run` and `rkl create`: docker's flags, built into the YAML front end's spec. */
import { volumeDataDir } from "../../../src/workloads/volumes.ts";
import { type Command, Option } from "commander";
import type { Context } from "../../app.ts";
import {
  type ContainerRecord,
  createContainer,
  getContainer,
  refresh,
  runContainer,
  startContainer,
} from "../../../src/workloads/container.ts";
import type { Host } from "../../../src/workloads/host.ts";
import { which } from "../../../src/oci/runtime.ts";
import { write } from "../../format.ts";
import { trace } from "../../../src/trace.ts";
import { cwd, environment, stderr } from "../../io.ts";
import { readInput, whileCreating } from "../_shared.ts";
import {
  generateName,
  networkChoice,
  RUN_DEFAULTS,
  type RunFlags,
  runSpec,
} from "../docker_spec.ts";
import { attachTo, collect, removeQuietly, type Verb } from "./shared.ts";

/** The flags `run` and `create` share (docker's spelling and meaning). */
function specOptions(c: Command): Command {
  return c
    .option("--name <name>", "container name (default: a generated adjective-surname)")
    .option("-i, --interactive", "keep stdin open (attached when not -d)")
    .option("-t, --tty", "allocate a terminal")
    .option("-p, --publish <[ip:]host:ctr[/udp]>", "publish a port (repeatable)", collect, [])
    .option("-e, --env <K=V>", "set an environment variable; K alone copies yours", collect, [])
    .option("--env-file <file>", "read K=V lines from a file (repeatable)", collect, [])
    .option(
      "-v, --volume <src:dst[:ro]>",
      "bind-mount a host path, or mount a named volume (made when missing) (repeatable)",
      collect,
      [],
    )
    .option(
      "--mount <type=bind|volume|tmpfs,source=…,target=…>",
      "mount a host path, a named volume or a tmpfs, docker's --mount (repeatable)",
      collect,
      [],
    )
    .option("--tmpfs <path[:opts]>", "mount a tmpfs (repeatable)", collect, [])
    .option("-w, --workdir <dir>", "working directory in the container")
    .option("-u, --user <user[:group]>", "user and group, names or numbers")
    .option("--entrypoint <cmd>", "replace the image's ENTRYPOINT (and its CMD)")
    .option("--cpus <n>", "CPU limit, e.g. 0.5")
    .option("-m, --memory <bytes>", "memory limit, e.g. 512m")
    .option("--pids-limit <n>", "process limit (0 or -1: none)")
    .option("--network <name>", "CNI network, none or host (default rkl0)")
    .option("--hostname <name>", "hostname in the container (default its name)")
    .option("--restart <policy>", "no, always, on-failure, unless-stopped (applied by rkl daemon)")
    .option("--read-only", "mount the root file system read-only")
    .option("--cap-add <cap>", "add a capability (repeatable)", collect, [])
    .option("--cap-drop <cap>", "drop a capability (repeatable)", collect, [])
    .option("--security-opt <opt>", "seccomp=…, no-new-privileges, … (repeatable)", collect, [])
    .option("-l, --label <K=V>", "set a label (repeatable)", collect, [])
    .option("--init", "run catatonit as PID 1 in front of the command")
    .option("--privileged", "all capabilities, no seccomp, devices of the host")
    .addOption(
      new Option("--pull <policy>", "when to pull the image").choices([
        "always",
        "missing",
        "never",
      ])
        .default("missing"),
    )
    .argument("<image>", "image reference or bundle directory")
    .argument("[command...]", "command and arguments (replace the image's CMD)")
    .passThroughOptions();
}

/** A free TCP port on the host for `-p CTR` (the kernel's pick, as docker's ephemeral port). */
function freePort(): number {
  const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function buildSpec(host: Host, f: RunFlags, image: string, command: string[]) {
  const envFiles: Record<string, string> = {};
  for (const file of f.envFile) envFiles[file] = readInput(file);
  const taken = (n: string) => host.store.get("containers", n) !== undefined;
  const name = f.name ?? generateName(taken);
  return runSpec({ ...RUN_DEFAULTS, ...f }, image, command, {
    name,
    envFiles,
    environ: environment(),
    cwd: cwd(),
    initBinary: f.init ? which("catatonit") : undefined,
    freePort,
    volumeDir: (n) => volumeDataDir(host, n),
  });
}

/** `--rm` of a container rkl does not watch: a helper in its own session removes it at exit. */
function removeOnExit(host: Host, rec: ContainerRecord): void {
  const argv = host.selfArgv;
  if (!argv || !host.proc.spawnDetached) return;
  host.proc.spawnDetached([
    ...argv,
    "--root",
    host.paths.root,
    "--run-root",
    host.paths.runRoot,
    "__rm-on-exit",
    rec.name,
    rec.createdAt,
    rec.id,
  ]);
}

/** `run`, `create`, and the hidden helper behind `run --rm -d`, by name. */
export const RUN_VERBS: Record<string, Verb> = {
  run(program: Command, ctx: Context): void {
    specOptions(
      program.command("run").description(
        "create and start a container from an image, docker's way (rkl container run FILE takes YAML)",
      ).option("-d, --detach", "run in the background and print the name")
        .option("--rm", "remove the container when it exits"),
    ).action(async (image: string, command: string[], f: RunFlags) => {
      trace("run: parsed");
      const host = ctx.host();
      const loaded = buildSpec(host, f, image, command);
      trace("run: spec");
      const net = networkChoice(f.network);
      const name = loaded.spec.name;
      if (f.detach) {
        const rec = await whileCreating(async () => {
          if (!net.hostNetwork) return await runContainer(host, loaded, { network: net.network });
          await createContainer(host, loaded, net);
          try {
            return await startContainer(host, name);
          } catch (e) {
            await removeQuietly(host, name);
            throw e;
          }
        });
        if (f.rm) removeOnExit(host, rec);
        write(`${rec.name}\n`);
        return;
      }
      const rec = await whileCreating(() => createContainer(host, loaded, net));
      let result: number | "detached";
      try {
        result = await attachTo(host, rec, {
          stdin: !!f.interactive,
          then: () => startContainer(host, name),
        });
      } catch (e) {
        await removeQuietly(host, name);
        throw e;
      }
      if (result === "detached") {
        if (f.rm) removeOnExit(host, getContainer(host, name));
        return;
      }
      if (f.rm) await removeQuietly(host, name);
      ctx.exitCode = result;
    });
  },
  create(program: Command, ctx: Context): void {
    specOptions(
      program.command("create").description("create a container from an image without starting it")
        .option("--rm", "remove the container when it exits (once started)"),
    ).action(async (image: string, command: string[], f: RunFlags & { rm?: boolean }) => {
      const host = ctx.host();
      const loaded = buildSpec(host, f, image, command);
      const rec = await whileCreating(() =>
        createContainer(host, loaded, networkChoice(f.network))
      );
      if (f.rm) {
        // Labelled: `start` arranges the removal.
        stderr("warning: --rm with create: remove it with rkl rm once it exits\n");
      }
      write(`${rec.name}\n`);
    });
  },
  "__rm-on-exit"(program: Command, ctx: Context): void {
    program.command("__rm-on-exit", { hidden: true }).argument("<name>").argument("<created>")
      .argument("[id]", "its id: found by it once renamed")
      .action(async (first: string, created: string, id?: string) => {
        const host = ctx.host();
        let name = first;
        for (;;) {
          let rec = host.store.get<ContainerRecord>("containers", name);
          if ((!rec || rec.createdAt !== created) && id !== undefined) {
            // Renamed since: the same container (id and creation time) under its new name.
            rec = host.store.list<ContainerRecord>("containers").find((r) =>
              r.id === id && r.createdAt === created
            );
            if (rec) name = rec.name;
          }
          // Gone, or a new container with the name: not ours to remove.
          if (!rec || rec.createdAt !== created) return;
          if (rec.status !== "creating") {
            const live = await refresh(host, rec);
            if (live.status === "exited" || live.status === "unknown") break;
          }
          await new Promise((r) => setTimeout(r, 500));
        }
        await removeQuietly(host, name);
      });
  },
};
