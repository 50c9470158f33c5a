/**
 * docker's commands at the top level (`rkl run`, `ps`, `logs`, `exec`, …),
 * with docker's flags, on the same core as `rkl container`: a run builds the
 * container spec the YAML front end builds (docker_spec.ts) and calls the
 * same create and start; the other verbs call the functions `container` and
 * `image` call. docs/cli.md compares them with docker's and podman's.
 */
import { type Command, Option } from "commander";
import type { Context } from "../app.ts";
import { ConflictError, NotFoundError, UsageError } from "../../src/errors.ts";
import {
  type ContainerRecord,
  createContainer,
  getContainer,
  listExitFiles,
  quickRefresh,
  refresh,
  removeContainer,
  restartContainer,
  runContainer,
  startContainer,
  stopContainer,
} from "../../src/workloads/container.ts";
import type { Host } from "../../src/workloads/host.ts";
import { readExitCode } from "../../src/oci/conmon.ts";
import { which } from "../../src/oci/runtime.ts";
import { cloexecInheritedFds } from "../../src/sys/cloexec.ts";
import { escapeControl } from "../../src/spec/names.ts";
import { trace } from "../../src/trace.ts";
import { table, write } from "../format.ts";
import { cwd, environment, stderr } from "../io.ts";
import { execIn, parseSeconds, printLogs, readInput, whileCreating } from "./_shared.ts";
import { containerState } from "./container.ts";
import {
  generateName,
  networkChoice,
  RUN_DEFAULTS,
  type RunFlags,
  runSpec,
} from "./docker_spec.ts";

const collect = (v: string, prev: string[]) => prev.concat([v]);

/** The flags `run` and `create` share (docker's spelling and meaning). */
function specOptions(c: Command): Command {
  return c
    .option("--name <name>", "container name (default: a generated adjective-surname)")
    .option("-i, --interactive", "keep stdin open (attached when not -d)")
    .option("-t, --tty", "allocate a terminal")
    .option("-p, --publish <[ip:]host:ctr[/udp]>", "publish a port (repeatable)", collect, [])
    .option("-e, --env <K=V>", "set an environment variable; K alone copies yours", collect, [])
    .option("--env-file <file>", "read K=V lines from a file (repeatable)", collect, [])
    .option("-v, --volume <src:dst[:ro]>", "bind-mount a host path (repeatable)", collect, [])
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
  });
}

/** The container's exit code, once conmon has written it. */
async function waitExit(host: Host, name: string): Promise<number> {
  let rec = getContainer(host, name);
  for (let i = 0;; i++) {
    const code = readExitCode(rec.dirs.exitDir, rec.id);
    if (code !== undefined) return code;
    if (i % 20 === 19) {
      // Every second: the runtime's word, for a container that ended without an exit file.
      rec = await refresh(host, getContainer(host, name));
      if (rec.status === "exited" || rec.status === "unknown") return rec.exitCode ?? 255;
    }
    await new Promise((r) => setTimeout(r, i < 20 ? 25 : 50));
  }
}

/** `--rm` of a container rkl does not watch: a helper in its own session removes it at exit. */
function removeOnExit(host: Host, rec: ContainerRecord): void {
  const argv = host.selfArgv;
  if (!argv) return;
  cloexecInheritedFds();
  const child = new Deno.Command("setsid", {
    args: [
      ...argv,
      "--root",
      host.paths.root,
      "--run-root",
      host.paths.runRoot,
      "__rm-on-exit",
      rec.name,
      rec.createdAt,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  child.unref();
  child.status.catch(() => {});
}

async function removeQuietly(host: Host, name: string): Promise<void> {
  try {
    await removeContainer(host, name, { force: true });
  } catch (e) {
    stderr(`warning: could not remove ${name}: ${(e as Error).message}\n`);
  }
}

/** Joins this terminal to a container's main process; "detached" or its exit code. */
async function attachTo(
  host: Host,
  rec: ContainerRecord,
  o: { stdin: boolean; then?: () => Promise<unknown> },
): Promise<number | "detached"> {
  const { Attachment } = await import("../tty.ts");
  const tty = !!rec.terminal;
  if (tty && o.stdin && !Deno.stdin.isTerminal()) {
    throw new UsageError("the input device is not a TTY: run it from a terminal, or without -t");
  }
  const att = Attachment.open({
    socket: `${rec.dirs.bundle}/attach`,
    ctl: `${rec.dirs.bundle}/ctl`,
    tty,
    stdin: o.stdin,
    detachKeys: o.stdin && tty,
  });
  try {
    await o.then?.();
  } catch (e) {
    att.close();
    throw e;
  }
  const how = await att.session();
  if (how === "detached") {
    stderr("\r\nread escape sequence\r\n");
    return "detached";
  }
  return await waitExit(host, rec.name);
}

function names(args: string[]): string[] {
  if (args.length === 0) throw new UsageError("give at least one container name");
  return args;
}

/** Runs `fn` for each name; errors are printed per name and make the exit code 1 (docker's way). */
async function each(
  ctx: Context,
  list: string[],
  fn: (name: string) => Promise<void>,
): Promise<void> {
  const errors: unknown[] = [];
  for (const n of list) {
    try {
      await fn(n);
    } catch (e) {
      if (list.length === 1) throw e;
      errors.push(e);
      stderr(`rkl: ${(e as Error).message}\n`);
    }
  }
  if (errors.length > 0) ctx.exitCode = 1;
}

/** docker's STATUS: "Up 3 minutes", "Exited (0) 2 seconds ago", "Created". */
export function dockerStatus(r: ContainerRecord, now = Date.now()): string {
  const since = (iso?: string) => {
    if (!iso) return "";
    const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (s < 1) return "Less than a second";
    if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
    const h = Math.round(m / 60);
    if (h < 48) return `${h} hour${h === 1 ? "" : "s"}`;
    return `${Math.round(h / 24)} days`;
  };
  switch (r.status) {
    case "running":
      return `Up ${since(r.startedAt)}`;
    case "exited":
      return `Exited (${r.exitCode ?? "?"}) ${since(r.finishedAt ?? r.startedAt)} ago`;
    case "created":
      return "Created";
    default:
      return r.status[0].toUpperCase() + r.status.slice(1);
  }
}

function portsOf(r: ContainerRecord): string {
  return (r.network?.portMappings ?? []).map((m) =>
    `${m.hostIP ?? "0.0.0.0"}:${m.hostPort}->${m.containerPort}/${m.protocol}`
  ).join(", ");
}

function commandOf(r: ContainerRecord): string {
  try {
    const cfg = JSON.parse(Deno.readTextFileSync(r.dirs.config)) as {
      process?: { args?: string[] };
    };
    return (cfg.process?.args ?? []).join(" ");
  } catch {
    return "";
  }
}

/** The fields `ps --format` knows, by docker's names. */
export function psFields(
  r: ContainerRecord,
  now = Date.now(),
  options: { command?: boolean } = {},
): Record<string, string> {
  return {
    ID: r.id,
    Names: r.name,
    Image: r.image,
    // config.json read only when shown (a file per container).
    Command: options.command === false ? "" : commandOf(r),
    CreatedAt: r.createdAt,
    RunningFor: dockerStatus({ ...r, status: "running", startedAt: r.createdAt }, now).slice(3) +
      " ago",
    Ports: portsOf(r),
    State: r.status,
    Status: dockerStatus(r, now),
    Labels: Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(","),
    Networks: r.hostNetwork ? "host" : r.network?.name ?? "none",
    Pod: r.pod ?? "",
  };
}

/**
 * docker's `--format` templates, the part people use: `{{.Field}}`,
 * `{{.Label "key"}}`, `\t`, a leading `table` (adds the header), `json`.
 */
export function renderFormat(
  format: string,
  rows: Record<string, string>[],
  labels: Record<string, string>[],
): string {
  if (format === "json") return rows.map((r) => JSON.stringify(r) + "\n").join("");
  let tpl = format.replaceAll("\\t", "\t").replaceAll("\\n", "\n");
  const isTable = /^table\s/.test(tpl) || tpl === "table";
  if (isTable) tpl = tpl.replace(/^table\s*/, "");
  const known = Object.keys(rows[0] ?? psFields({} as ContainerRecord));
  const parts: ({ text: string } | { field: string } | { label: string })[] = [];
  let last = 0;
  for (const m of tpl.matchAll(/\{\{(.*?)\}\}/g)) {
    parts.push({ text: tpl.slice(last, m.index) });
    const inner = m[1].trim();
    const f = /^\.(\w+)$/.exec(inner);
    const l = /^\.Label\s+"([^"]*)"$/.exec(inner);
    if (f && known.includes(f[1])) parts.push({ field: f[1] });
    else if (l) parts.push({ label: l[1] });
    else {
      throw new UsageError(
        `--format: ${JSON.stringify(m[0])} is not supported: use {{.${
          known.join("}}, {{.")
        }}}, {{.Label "KEY"}}, table or json`,
      );
    }
    last = m.index + m[0].length;
  }
  parts.push({ text: tpl.slice(last) });
  const render = (r: Record<string, string>, lab: Record<string, string>) =>
    parts.map((p) =>
      "text" in p
        ? p.text
        : "field" in p
        ? escapeControl(r[p.field])
        : escapeControl(lab[p.label] ?? "")
    ).join("");
  if (!isTable) return rows.map((r, i) => render(r, labels[i]) + "\n").join("");
  // A table: the header is the field names in upper case, columns aligned on tabs.
  const header = parts.map((p) =>
    "text" in p
      ? p.text
      : "field" in p
      ? p.field.replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase()
      : p.label.toUpperCase()
  ).join("");
  const lines = [header, ...rows.map((r, i) => render(r, labels[i]))];
  const cells = lines.map((l) => l.split("\t"));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => (c[i] ?? "").length)));
  return cells.map((c) =>
    c.map((x, i) => i === c.length - 1 ? x : x.padEnd(widths[i])).join("   ").trimEnd() + "\n"
  ).join("");
}

/** `--filter KEY=VALUE`: same keys OR, different keys AND (docker's rule). */
export function psFilter(filters: string[]): (r: ContainerRecord) => boolean {
  const by = new Map<string, string[]>();
  for (const f of filters) {
    const i = f.indexOf("=");
    const [k, v] = i < 0 ? [f, ""] : [f.slice(0, i), f.slice(i + 1)];
    if (!["name", "status", "label", "id", "ancestor"].includes(k)) {
      throw new UsageError(
        `--filter ${JSON.stringify(f)}: rkl filters by name, id, status, label and ancestor`,
      );
    }
    if (k === "status" && !["created", "running", "exited", "unknown"].includes(v)) {
      throw new UsageError(`--filter ${JSON.stringify(f)}: status is created, running or exited`);
    }
    by.set(k, [...by.get(k) ?? [], v]);
  }
  return (r) =>
    [...by].every(([k, vs]) =>
      vs.some((v) => {
        switch (k) {
          case "name":
            return r.name.includes(v);
          case "id":
            return r.id.startsWith(v);
          case "status":
            return r.status === v;
          case "ancestor":
            return r.image === v || r.image.startsWith(`${v}:`) || r.imageId === v;
          default: {
            const j = v.indexOf("=");
            return j < 0 ? v in r.labels : r.labels[v.slice(0, j)] === v.slice(j + 1);
          }
        }
      })
    );
}

const SIGNALS = [
  "HUP",
  "INT",
  "QUIT",
  "ILL",
  "TRAP",
  "ABRT",
  "BUS",
  "FPE",
  "KILL",
  "USR1",
  "SEGV",
  "USR2",
  "PIPE",
  "ALRM",
  "TERM",
  "STKFLT",
  "CHLD",
  "CONT",
  "STOP",
  "TSTP",
  "TTIN",
  "TTOU",
  "URG",
  "XCPU",
  "XFSZ",
  "VTALRM",
  "PROF",
  "WINCH",
  "IO",
  "PWR",
  "SYS",
]; // deno-fmt-ignore

/** A signal by name (`KILL`, `SIGKILL`, `RTMIN+1`) or number 1-64, as the runtime takes it. */
export function signalArg(s: string): string {
  if (/^\d{1,2}$/.test(s) && Number(s) >= 1 && Number(s) <= 64) return s;
  const name = s.toUpperCase().replace(/^SIG/, "");
  const rt = /^RTM(IN|AX)([+-]\d{1,2})?$/.exec(name);
  if (!SIGNALS.includes(name) && !(rt && Math.abs(Number(rt[2] ?? 0)) <= 30)) {
    throw new UsageError(`-s ${JSON.stringify(s)} is not a signal (a name such as TERM, or 1-64)`);
  }
  return `SIG${name}`;
}

/** `rkl top`: the rows of `ps ARGS` whose PID is in the container's cgroup (docker's way). */
export function filterPs(psOut: string, pids: Set<number>): string {
  const lines = psOut.split("\n").filter((l) => l !== "");
  if (lines.length === 0) return "";
  const head = lines[0].trim().split(/\s+/);
  const col = head.indexOf("PID");
  if (col < 0) throw new UsageError("ps options must keep the PID column (try -ef or -o pid,args)");
  const rows = lines.slice(1).filter((l) => pids.has(Number(l.trim().split(/\s+/)[col])));
  return [lines[0], ...rows].join("\n") + "\n";
}

export function registerDocker(program: Command, ctx: Context): void {
  // `run IMAGE CMD -x`: flags after the image belong to the command (main sets this too).
  program.enablePositionalOptions();
  specOptions(
    program.command("run").description(
      "create and start a container from an image, docker's way (rkl container run FILE takes YAML)",
    ).option("-d, --detach", "run in the background and print the name")
      .option("--rm", "remove the container when it exits"),
  ).action(async (image: string, command: string[], f: RunFlags) => {
    const host = ctx.host();
    const loaded = buildSpec(host, f, image, command);
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

  specOptions(
    program.command("create").description("create a container from an image without starting it")
      .option("--rm", "remove the container when it exits (once started)"),
  ).action(async (image: string, command: string[], f: RunFlags & { rm?: boolean }) => {
    const host = ctx.host();
    const loaded = buildSpec(host, f, image, command);
    const rec = await whileCreating(() => createContainer(host, loaded, networkChoice(f.network)));
    if (f.rm) {
      // Labelled: `start` arranges the removal.
      stderr("warning: --rm with create: remove it with rkl rm once it exits\n");
    }
    write(`${rec.name}\n`);
  });

  program.command("start").argument("<names...>").description(
    "start created or exited containers",
  ).option("-a, --attach", "attach to its output (one container)")
    .option("-i, --interactive", "attach stdin too")
    .action(async (list: string[], o: { attach?: boolean; interactive?: boolean }) => {
      const host = ctx.host();
      const startOne = async (n: string) => {
        const rec = await refresh(host, getContainer(host, n));
        if (rec.status === "running") return rec;
        if (rec.status === "exited" || rec.status === "unknown") {
          return await restartContainer(host, n);
        }
        return await startContainer(host, n);
      };
      if ((o.attach || o.interactive) && list.length === 1) {
        const rec = await refresh(host, getContainer(host, list[0]));
        if (rec.status === "created") {
          const r = await attachTo(host, rec, {
            stdin: !!o.interactive && rec.stdin !== undefined,
            then: () => startContainer(host, rec.name),
          });
          if (r !== "detached") ctx.exitCode = r;
          return;
        }
        const started = await startOne(list[0]);
        const r = await attachTo(host, started, {
          stdin: !!o.interactive && started.stdin !== undefined,
        });
        if (r !== "detached") ctx.exitCode = r;
        return;
      }
      await each(ctx, names(list), async (n) => {
        await startOne(n);
        write(`${n}\n`);
      });
    });

  program.command("stop").argument("<names...>").description(
    "stop containers: the stop signal, then SIGKILL after -t seconds",
  ).option("-t, --time <seconds>", "grace period", "10")
    .action(async (list: string[], o: { time: string }) => {
      const t = parseSeconds("--time", o.time);
      await each(ctx, names(list), async (n) => {
        await stopContainer(ctx.host(), n, t, { byUser: true });
        write(`${n}\n`);
      });
    });

  program.command("restart").argument("<names...>").description(
    "stop (if running) and start containers again",
  ).option("-t, --time <seconds>", "grace period", "10")
    .action(async (list: string[], o: { time: string }) => {
      const t = parseSeconds("--time", o.time);
      const host = ctx.host();
      await each(ctx, names(list), async (n) => {
        const rec = await refresh(host, getContainer(host, n));
        if (rec.status === "created") await startContainer(host, n);
        else {
          if (rec.status === "running") await stopContainer(host, n, t, { byUser: true });
          await restartContainer(host, n);
        }
        write(`${n}\n`);
      });
    });

  program.command("rm").argument("<names...>").description("remove containers")
    .option("-f, --force", "kill and remove running ones too")
    .action(async (list: string[], o: { force?: boolean }) => {
      await each(ctx, names(list), async (n) => {
        await removeContainer(ctx.host(), n, { force: o.force });
        write(`${n}\n`);
      });
    });

  program.command("ps").description("list containers (running ones; -a all)")
    .option("-a, --all", "also created and exited containers")
    .option("-q, --quiet", "names only")
    .option(
      "-f, --filter <key=value>",
      "name=, status=, label=, id=, ancestor= (repeatable)",
      collect,
      [],
    )
    .option("--format <template>", "a template ({{.Names}}\\t{{.Status}}), 'table …' or json")
    .option("--no-trunc", "do not cut the COMMAND column")
    .option("-n, --last <n>", "the n most recently created")
    .action(async (o: {
      all?: boolean;
      quiet?: boolean;
      filter: string[];
      format?: string;
      trunc?: boolean;
      last?: string;
    }) => {
      const host = ctx.host();
      const keep = psFilter(o.filter);
      const explicitStatus = o.filter.some((f) => f.startsWith("status="));
      trace("ps: host");
      // One listing of the exit directory for all records (listContainers reads a file each).
      const stored = host.store.list<ContainerRecord>("containers");
      const exits = listExitFiles(host, stored.map((r) => r.dirs.exitDir));
      trace("ps: records read");
      let recs = (await Promise.all(stored.map((r) => quickRefresh(host, r, exits))))
        .filter((r) => o.all || explicitStatus || r.status === "running")
        .filter(keep)
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      if (o.last !== undefined) recs = recs.slice(0, Number(o.last) || 0);
      trace("ps: refreshed");
      if (o.quiet) {
        write(recs.map((r) => `${r.name}\n`).join(""));
        return;
      }
      const now = Date.now();
      if (o.format) {
        const command = o.format === "json" || o.format.includes(".Command");
        write(renderFormat(
          o.format,
          recs.map((r) => psFields(r, now, { command })),
          recs.map((r) => r.labels),
        ));
        return;
      }
      write(table(
        ["NAMES", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"],
        recs.map((r) => {
          const f = psFields(r, now);
          const cmd = o.trunc === false || f.Command.length <= 22
            ? f.Command
            : `${f.Command.slice(0, 19)}…`;
          return [f.Names, f.Image, JSON.stringify(cmd), f.RunningFor, f.Status, f.Ports];
        }),
      ));
    });

  program.command("logs").argument("<name>").description("print a container's output")
    .option("-f, --follow", "keep printing until the container exits")
    .option("-n, --tail <n>", "only the last n lines ('all' for every line)")
    .option("-t, --timestamps", "show each line's time")
    .action(async (name: string, o: { follow?: boolean; tail?: string; timestamps?: boolean }) => {
      const host = ctx.host();
      await printLogs(host, getContainer(host, name), {
        ...o,
        tail: o.tail === "all" ? undefined : o.tail,
      });
    });

  program.command("exec").argument("<name>").argument("<command...>").description(
    "run a command in a running container",
  ).option("-i, --interactive", "keep stdin open")
    .option("-t, --tty", "allocate a terminal (ctrl-p ctrl-q ends the session)")
    .option("-e, --env <K=V>", "set an environment variable (repeatable)", collect, [])
    .option("-w, --workdir <dir>", "working directory")
    .option("-u, --user <uid[:gid]>", "user and group ids")
    .passThroughOptions()
    .action(async (name: string, command: string[], o: {
      interactive?: boolean;
      tty?: boolean;
      env: string[];
      workdir?: string;
      user?: string;
    }) => {
      const host = ctx.host();
      const rec = getContainer(host, name);
      for (const kv of o.env) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(kv)) {
          throw new UsageError(`-e ${JSON.stringify(kv)}: use NAME=VALUE`);
        }
      }
      if (o.workdir !== undefined && !o.workdir.startsWith("/")) {
        throw new UsageError(`-w ${JSON.stringify(o.workdir)}: must be an absolute path`);
      }
      let user: { uid: number; gid: number } | undefined;
      if (o.user !== undefined) {
        const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(o.user);
        if (!m) throw new UsageError(`-u ${JSON.stringify(o.user)}: use UID[:GID] (numbers)`);
        user = { uid: Number(m[1]), gid: Number(m[2] ?? 0) };
      }
      if (!o.tty) {
        ctx.exitCode = await execIn(host, rec, command, {
          interactive: o.interactive,
          env: o.env,
          cwd: o.workdir,
          user,
        });
        return;
      }
      if (o.env.length > 0 || o.workdir || user) {
        throw new UsageError("exec -t with -e, -w or -u is not supported yet: run them without -t");
      }
      const live = await refresh(host, rec);
      if (live.status !== "running") {
        throw new ConflictError(
          `Cannot exec in container ${JSON.stringify(name)}: it is ${live.status}`,
        );
      }
      if (command[0] === "--") command = command.slice(1);
      if (command.length === 0) throw new UsageError("exec needs a command");
      if (o.interactive && !Deno.stdin.isTerminal()) {
        throw new UsageError(
          "the input device is not a TTY: run it from a terminal, or without -t",
        );
      }
      const [{ execStream }, { terminalIO }] = await Promise.all([
        import("../../src/workloads/exec.ts"),
        import("../tty.ts"),
      ]);
      const t = terminalIO({ tty: true, stdin: !!o.interactive });
      try {
        // The core's one exec path, as `container exec` and the CRI's Exec take it.
        ctx.exitCode = await execStream(host, {
          container: live,
          argv: command,
          tty: true,
          stdin: !!o.interactive,
        }, t.io);
      } finally {
        t.done();
      }
      if (t.detached()) {
        stderr("\r\nread escape sequence\r\n");
        ctx.exitCode = 0;
      }
    });

  program.command("attach").argument("<name>").description(
    "join a running container's terminal or output (detach: ctrl-p ctrl-q)",
  ).option("--no-stdin", "do not send what you type")
    .action(async (name: string, o: { stdin: boolean }) => {
      const host = ctx.host();
      const rec = await refresh(host, getContainer(host, name));
      if (rec.status !== "running") {
        throw new ConflictError(
          `Cannot attach to container ${JSON.stringify(name)}: it is ${rec.status}`,
        );
      }
      const r = await attachTo(host, rec, { stdin: o.stdin && rec.stdin !== undefined });
      if (r !== "detached") ctx.exitCode = r;
    });

  program.command("inspect").argument("<names...>").description(
    "a container's state as JSON (images: rkl image inspect)",
  ).action(async (list: string[]) => {
    const host = ctx.host();
    const out = [];
    for (const n of list) {
      out.push(containerState(host, await refresh(host, getContainer(host, n))));
    }
    write(JSON.stringify(out, null, 2) + "\n");
  });

  program.command("kill").argument("<names...>").description(
    "send a signal (default SIGKILL) to containers' main process",
  ).option("-s, --signal <sig>", "signal name or number", "KILL")
    .action(async (list: string[], o: { signal: string }) => {
      const host = ctx.host();
      const sig = signalArg(o.signal);
      await each(ctx, names(list), async (n) => {
        const rec = await refresh(host, getContainer(host, n));
        if (rec.status !== "running") {
          throw new ConflictError(`Cannot kill container ${JSON.stringify(n)}: it is not running`);
        }
        await host.runtimeFor(rec.runtime).kill(rec.id, sig);
        write(`${n}\n`);
      });
    });

  program.command("wait").argument("<names...>").description(
    "wait for containers to exit; print each exit code",
  ).action(async (list: string[]) => {
    const host = ctx.host();
    await each(ctx, names(list), async (n) => {
      const rec = await refresh(host, getContainer(host, n));
      if (rec.status === "created") {
        // docker waits for a created container to run and exit; so does this.
        while ((await refresh(host, getContainer(host, n))).status === "created") {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      write(`${await waitExit(host, n)}\n`);
    });
  });

  program.command("port").argument("<name>").argument("[port]", "CONTAINER_PORT[/proto]")
    .description("list a container's published ports")
    .action((name: string, port?: string) => {
      const host = ctx.host();
      const rec = getContainer(host, name);
      const maps = rec.network?.portMappings ?? [];
      if (port === undefined) {
        write(
          maps.map((m) =>
            `${m.containerPort}/${m.protocol} -> ${m.hostIP ?? "0.0.0.0"}:${m.hostPort}\n`
          ).join(""),
        );
        return;
      }
      const [p, proto = "tcp"] = port.split("/");
      const hit = maps.filter((m) =>
        String(m.containerPort) === p && m.protocol.toLowerCase() === proto.toLowerCase()
      );
      if (hit.length === 0) {
        throw new NotFoundError(
          `No public port ${JSON.stringify(`${p}/${proto}`)} published for ${name}`,
        );
      }
      write(hit.map((m) => `${m.hostIP ?? "0.0.0.0"}:${m.hostPort}\n`).join(""));
    });

  program.command("rename").argument("<old>").argument("<new>").description(
    "rename a container (refused: see the message)",
  ).action(async (old: string, next: string) => {
    const host = ctx.host();
    const rec = await refresh(host, getContainer(host, old));
    const { checkName } = await import("./docker_spec.ts");
    checkName(next);
    if (host.store.get("containers", next)) {
      throw new ConflictError(
        `Cannot rename container ${JSON.stringify(old)}: name ${JSON.stringify(next)} is in use`,
      );
    }
    throw new ConflictError(
      `Cannot rename container ${
        JSON.stringify(old)
      } (${rec.status}): rkl keys a container's directories, runtime id, cgroup, network namespace and log by its name, and cannot move them safely`,
      { hint: `remove it and run it again with --name ${next}` },
    );
  });

  program.command("top").argument("<name>").argument(
    "[ps-options...]",
    "options for ps (default -ef)",
  )
    .description("the processes of a container (its cgroup), as ps shows them")
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (name: string, psArgs: string[]) => {
      const host = ctx.host();
      const rec = await refresh(host, getContainer(host, name));
      if (rec.status !== "running") {
        throw new ConflictError(
          `Cannot list processes of container ${JSON.stringify(name)}: it is ${rec.status}`,
        );
      }
      const pids = new Set(host.cgroups.pids(rec.cgroupPath));
      const out = await new Deno.Command("ps", {
        args: psArgs.length > 0 ? psArgs : ["-ef"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new UsageError(
          `ps ${psArgs.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
        );
      }
      write(filterPs(new TextDecoder().decode(out.stdout), pids));
    });

  program.command("cp").argument("<src>", "NAME:PATH or a host path").argument(
    "<dest>",
    "NAME:PATH or a host path",
  ).description(
    "copy files between a container and the host (container paths resolved inside its root)",
  ).option("-L, --follow-link", "follow a symlink at the source (inside the container's root)")
    .action(async (src: string, dest: string, o: { followLink?: boolean }) => {
      const host = ctx.host();
      const { splitCpArg, copyFromContainer, copyToContainer } = await import(
        "../../src/workloads/copy.ts"
      );
      const a = splitCpArg(src), b = splitCpArg(dest);
      if ((a.container === undefined) === (b.container === undefined)) {
        throw new UsageError("cp copies between a container and the host: one side is NAME:PATH");
      }
      const abs = (p: string) => p.startsWith("/") ? p : `${cwd()}/${p}`;
      const r = a.container !== undefined
        ? copyFromContainer(host.sys, await refresh(host, getContainer(host, a.container)), {
          path: a.path,
          dest: abs(b.path),
          followLink: o.followLink,
        }, host.fs)
        : copyToContainer(host.sys, await refresh(host, getContainer(host, b.container!)), {
          src: abs(a.path),
          path: b.path,
        }, host.fs);
      for (const s of r.skipped) stderr(`warning: skipped ${s}: not a file, directory or link\n`);
    });

  program.command("images").description("list images (rkl image ls)")
    .option("-a, --all", "also images without a tag")
    .option("-q, --quiet", "ids only")
    .option("--format <format>", "json")
    .action(async (o: { all?: boolean; quiet?: boolean; format?: string }) => {
      if (o.quiet) {
        const { store } = ctx.host().images!;
        const ids = store.listImages().filter((r) => o.all || store.tagsOf(r.id).length > 0)
          .map((r) => r.id.slice(7, 19));
        write([...new Set(ids)].map((i) => `${i}\n`).join(""));
        return;
      }
      if (o.format !== undefined && o.format !== "json") {
        throw new UsageError("images --format: only json is supported");
      }
      await delegate(ctx, [
        "image",
        "ls",
        ...(o.all ? ["-a"] : []),
        ...(o.format ? ["-o", "json"] : []),
      ]);
    });

  program.command("pull").argument("<reference>").description("pull an image (rkl image pull)")
    .option("-q, --quiet", "print only the image id")
    .option("--platform <os/arch>", "platform of a multi-arch image")
    .action(async (ref: string, o: { quiet?: boolean; platform?: string }) => {
      await delegate(ctx, [
        "image",
        "pull",
        ...(o.quiet ? ["-q"] : []),
        ...(o.platform ? ["--platform", o.platform] : []),
        ref,
      ]);
    });

  program.command("rmi").argument("<images...>").description("remove images (rkl image rm)")
    .option("-f, --force", "remove even while containers use it")
    .action(async (list: string[], o: { force?: boolean }) => {
      await delegate(ctx, ["image", "rm", ...(o.force ? ["-f"] : []), ...list]);
    });

  program.command("__rm-on-exit", { hidden: true }).argument("<name>").argument("<created>")
    .action(async (name: string, created: string) => {
      const host = ctx.host();
      for (;;) {
        const rec = host.store.get<ContainerRecord>("containers", name);
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
}

/** Runs an `image` subcommand as it is defined there (the top-level name is an alias). */
async function delegate(ctx: Context, argv: string[]): Promise<void> {
  const [{ Command }, { registerImage }] = await Promise.all([
    import("commander"),
    import("./image.ts"),
  ]);
  const p = new Command("rkl").exitOverride().configureOutput({
    writeErr: stderr,
    writeOut: write,
  });
  registerImage(p, ctx);
  for (const sub of p.commands) {
    sub.exitOverride();
    for (const s of sub.commands) s.exitOverride();
  }
  await p.parseAsync(argv, { from: "user" });
}
