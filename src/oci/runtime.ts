/**
 * The OCI runtime through its runc-compatible CLI. youki, runc and crun all
 * take `--root DIR` before the subcommand and share create/start/state/kill/
 * delete/exec.
 */
import { NotFoundError, RuntimeError } from "../errors.ts";
import type { CommandRunner } from "../sys/command.ts";
import type { OciState } from "./spec.ts";

export const RUNTIME_PREFERENCE = ["youki", "runc", "crun"] as const;

/** How youki, runc and crun say that they do not know a container. */
const NOT_FOUND = /not exist|not found|no such/i;

export interface OciRuntime {
  readonly name: string;
  readonly binary: string;
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

  /** Runs a process in the container with this process's stdio; returns its exit code. */
  exec(id: string, argv: string[], options: ExecOptions): Promise<number>;
  /** Runs a process in the container capturing its output (healthchecks). */
  execCapture(
    id: string,
    argv: string[],
    options: { cwd?: string; env?: string[]; timeoutMs: number },
  ): Promise<{ code: number; output: string }>;
}

export interface ExecOptions {
  tty: boolean;
  interactive: boolean;
  /** Working directory; runtimes differ on the default, so rkl always passes it. */
  cwd?: string;
  /** Extra environment on top of the container's. */
  env?: string[];
}

export class RuncCliRuntime implements OciRuntime {
  constructor(
    readonly name: string,
    readonly binary: string,
    readonly root: string,
    private readonly cmd: CommandRunner,
  ) {}

  globalArgs(): string[] {
    return ["--root", this.root];
  }

  async #run(args: string[], what: string): Promise<string> {
    const argv = [...this.globalArgs(), ...args];
    const res = await this.cmd.run(this.binary, { args: argv, timeoutMs: 60_000 });
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
    const res = await this.cmd.run(this.binary, { args: argv, timeoutMs: 30_000 });
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

  async execCapture(
    id: string,
    argv: string[],
    options: { cwd?: string; env?: string[]; timeoutMs: number },
  ): Promise<{ code: number; output: string }> {
    const args = [...this.globalArgs(), "exec"];
    if (options.cwd) args.push("--cwd", options.cwd);
    for (const e of options.env ?? []) args.push("--env", e);
    args.push(id, ...argv);
    const res = await this.cmd.run(this.binary, { args, timeoutMs: options.timeoutMs });
    return { code: res.code, output: (res.stdout + res.stderr).trim() };
  }

  exec(id: string, argv: string[], options: ExecOptions): Promise<number> {
    const args = [...this.globalArgs(), "exec", ...(options.tty ? ["--tty"] : [])];
    if (options.cwd) args.push("--cwd", options.cwd);
    for (const e of options.env ?? []) args.push("--env", e);
    args.push(id, ...argv);

    return this.cmd.runInteractive(this.binary, {
      args,
      stdin: options.interactive ? "inherit" : "null",
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
