/**
 * The OCI runtime through its runc-compatible CLI. youki, runc and crun all
 * take `--root DIR` before the subcommand and share create/start/state/kill/
 * delete/exec.
 */
import { callTimeoutMs } from "../timeouts.ts";
import { NotFoundError, RuntimeError } from "../errors.ts";
import type { CommandRunner } from "../sys/command.ts";
import type { OciProcess, OciState } from "./spec.ts";
import { sealedExecutable, sealedReady } from "./sealed.ts";

export const RUNTIME_PREFERENCE = ["youki", "runc", "crun"] as const;

/** youki's errors as one line, not ended by a Rust backtrace. */
const QUIET = { RUST_BACKTRACE: "0" };

/** How youki, runc and crun say that they do not know a container. */
const NOT_FOUND = /not exist|not found|no such/i;

/**
 * youki rewrites state.json in place (truncate, then write) at create, start
 * and kill: a `state` that reads it in between fails to parse it. Such a
 * failure is retried; it was seen failing a whole CRI ListContainers (the
 * kubelet's "Failed cleaning pods") while a Deployment scaled up.
 */
const TORN_STATE = /could not load state|EOF while parsing/i;
const TORN_STATE_RETRIES = 4;

export interface OciRuntime {
  readonly name: string;
  readonly binary: string;
  /** What to execute for `binary`: its sealed copy when there is one (sealed.ts). */
  readonly exe: string;
  /** The runtime's state directory (`--root`). */
  readonly root: string;
  /** Arguments that go before every subcommand. */
  globalArgs(): string[];
  /** The container's state, or undefined when the runtime does not know it. */
  state(id: string): Promise<OciState | undefined>;
  start(id: string): Promise<void>;
  kill(id: string, signal: string, options?: { all?: boolean }): Promise<void>;
  /** With `missingOk`, a container the runtime does not know counts as deleted. */
  delete(id: string, options?: { force?: boolean; missingOk?: boolean }): Promise<void>;

  /** Runs `process` in the container with this process's stdio; returns its exit code. */
  exec(
    id: string,
    process: OciProcess,
    options: { interactive: boolean; fileDir: string },
  ): Promise<number>;
  /** Runs `process` in the container capturing its output (probes, healthchecks). */
  execCapture(
    id: string,
    process: OciProcess,
    options: { timeoutMs: number; fileDir: string },
  ): Promise<ExecCaptured>;
}

export interface ExecCaptured {
  code: number;
  /** stdout and stderr together, trimmed (probes, healthchecks). */
  output: string;
  stdout: string;
  stderr: string;
  /** Killed at the time limit. */
  timedOut: boolean;
}

/** SIGKILL to the process a pid file names and to its descendants (/proc/PID/task/PID/children). */
export function killTree(pidFile: string): void {
  let pid: number;
  try {
    pid = Number(Deno.readTextFileSync(pidFile).trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  const all: number[] = [];
  const walk = (p: number) => {
    all.push(p);
    try {
      const kids = Deno.readTextFileSync(`/proc/${p}/task/${p}/children`).trim();
      for (const k of kids.split(/\s+/).filter(Boolean)) walk(Number(k));
    } catch { /* gone */ }
  };
  walk(pid);
  for (const p of all) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
}

/**
 * The process to exec in a container: the container's own (user, groups,
 * capabilities, no_new_privs, rlimits, env, cwd) from its config.json, with
 * `argv` as its command line, as docker and podman exec do.
 */
export function execProcess(
  configPath: string,
  argv: string[],
  options: { tty?: boolean; env?: string[]; cwd?: string } = {},
): OciProcess {
  const cfg = JSON.parse(Deno.readTextFileSync(configPath)) as { process: OciProcess };
  const env = new Map(cfg.process.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv]));
  for (const kv of options.env ?? []) env.set(kv.slice(0, kv.indexOf("=")), kv);
  return {
    ...cfg.process,
    terminal: options.tty ?? false,
    args: argv,
    env: [...env.values()],
    cwd: options.cwd ?? cfg.process.cwd,
  };
}

export class RuncCliRuntime implements OciRuntime {
  constructor(
    readonly name: string,
    readonly binary: string,
    readonly root: string,
    private readonly cmd: CommandRunner,
  ) {}

  get exe(): string {
    return sealedExecutable(this.binary);
  }

  globalArgs(): string[] {
    return ["--root", this.root];
  }

  async #run(args: string[], what: string): Promise<string> {
    await sealedReady();
    const argv = [...this.globalArgs(), ...args];
    const res = await this.cmd.run(this.exe, {
      args: argv,
      env: QUIET,
      timeoutMs: callTimeoutMs(60_000),
    });
    if (res.code !== 0) {
      throw new RuntimeError(`Cannot ${what}: ${this.name} exited with ${res.code}`, {
        argv: [this.binary, ...argv],
        stderr: res.stderr || res.stdout,
        status: res.code,
      });
    }
    return res.stdout;
  }

  async state(id: string): Promise<OciState | undefined> {
    const argv = [...this.globalArgs(), "state", id];
    let res;
    for (let attempt = 0;; attempt++) {
      await sealedReady();
      res = await this.cmd.run(this.exe, {
        args: argv,
        env: QUIET,
        timeoutMs: callTimeoutMs(30_000),
      });
      const text = res.stderr + res.stdout;
      if (res.code === 0 || NOT_FOUND.test(text) || !TORN_STATE.test(text)) break;
      if (attempt >= TORN_STATE_RETRIES) break;
      await new Promise((r) => setTimeout(r, 10 * (attempt + 1)));
    }
    if (res.code !== 0) {
      if (NOT_FOUND.test(res.stderr + res.stdout)) return undefined;
      throw new RuntimeError(
        `Cannot read state of ${JSON.stringify(id)}: ${this.name} exited with ${res.code}`,
        {
          argv: [this.binary, ...argv],
          stderr: res.stderr,
          status: res.code,
        },
      );
    }
    return JSON.parse(res.stdout) as OciState;
  }

  async start(id: string): Promise<void> {
    await this.#run(["start", id], `start ${JSON.stringify(id)}`);
  }

  async kill(id: string, signal: string, options: { all?: boolean } = {}): Promise<void> {
    await this.#run(
      ["kill", ...(options.all ? ["--all"] : []), id, signal],
      `signal ${JSON.stringify(id)}`,
    );
  }

  async delete(id: string, options: { force?: boolean; missingOk?: boolean } = {}): Promise<void> {
    try {
      await this.#run(
        ["delete", ...(options.force ? ["--force"] : []), id],
        `delete ${JSON.stringify(id)}`,
      );
    } catch (e) {
      // "No such file" can have other causes: believe it only if state agrees.
      if (
        options.missingOk && e instanceof RuntimeError && NOT_FOUND.test(e.stderr) &&
        (await this.state(id)) === undefined
      ) return;

      throw e;
    }
  }

  /**
   * The process goes to the runtime as a 0600 file (`exec --process`), never
   * as `--env K=V` arguments that every local user could read in `ps`. It
   * lives in `dir`, the container's own 0700 run directory, for the call.
   */
  async #withProcessFile<T>(
    process: OciProcess,
    dir: string,
    fn: (path: string) => Promise<T>,
  ): Promise<T> {
    const path = `${dir}/exec-${crypto.randomUUID()}.json`;
    Deno.writeTextFileSync(path, JSON.stringify(process), { createNew: true, mode: 0o600 });
    try {
      return await fn(path);
    } finally {
      try {
        Deno.removeSync(path);
      } catch { /* gone already */ }
    }
  }

  async execCapture(
    id: string,
    process: OciProcess,
    options: { timeoutMs: number; fileDir: string },
  ): Promise<ExecCaptured> {
    return await this.#withProcessFile(process, options.fileDir, async (file) => {
      // The exec'd process holds our pipes: killing the runtime alone would
      // leave us waiting for it. At the time limit it is killed by its pid
      // (the runtime writes it), with what it started.
      const pidFile = `${file}.pid`;
      const args = [...this.globalArgs(), "exec", "--pid-file", pidFile, "--process", file, id];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        killTree(pidFile);
      }, options.timeoutMs);
      try {
        await sealedReady();
        const res = await this.cmd.run(this.exe, {
          args,
          env: QUIET,
          timeoutMs: options.timeoutMs + 1_000,
        });
        return {
          code: res.code,
          output: (res.stdout + res.stderr).trim(),
          stdout: res.stdout,
          stderr: res.stderr,
          timedOut,
        };
      } finally {
        clearTimeout(timer);
        try {
          Deno.removeSync(pidFile);
        } catch { /* never written */ }
      }
    });
  }

  async exec(
    id: string,
    process: OciProcess,
    options: { interactive: boolean; fileDir: string },
  ): Promise<number> {
    return await this.#withProcessFile(process, options.fileDir, (file) => {
      const args = [
        ...this.globalArgs(),
        "exec",
        ...(process.terminal ? ["--tty"] : []),
        "--process",
        file,
        id,
      ];
      return this.cmd.runInteractive(this.exe, {
        args,
        env: QUIET,
        stdin: options.interactive ? "inherit" : "null",
      });
    });
  }
}

/** Finds an executable by name on PATH (or takes an absolute path as is). */
export function which(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  const isExec = (p: string) => {
    try {
      const st = Deno.statSync(p);
      return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
    } catch {
      return false;
    }
  };
  if (name.includes("/")) return isExec(name) ? name : undefined;
  const dirs = [
    ...path.split(":").filter(Boolean),
    "/usr/local/bin",
    "/usr/bin",
    "/usr/sbin",
    "/sbin",
    "/bin",
  ];
  for (const d of dirs) if (isExec(`${d}/${name}`)) return `${d}/${name}`;
  return undefined;
}

/**
 * The runtime to use: `requested` (flag or RKL_RUNTIME) when given, else the
 * first of youki, runc, crun that is installed.
 */
export function resolveRuntime(requested: string | undefined): { name: string; binary: string } {
  if (requested) {
    const bin = which(requested);
    if (!bin) {
      throw new NotFoundError(`Cannot find OCI runtime ${JSON.stringify(requested)}`, {
        hint: "install it (scripts/setup.sh) or pick another with --runtime",
      });
    }
    return { name: requested.split("/").pop()!, binary: bin };
  }
  for (const name of RUNTIME_PREFERENCE) {
    const bin = which(name);
    if (bin) return { name, binary: bin };
  }
  throw new NotFoundError("Cannot find an OCI runtime: none of youki, runc, crun is installed", {
    hint: "run scripts/setup.sh",
  });
}
