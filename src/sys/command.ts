/** Running helper programs (the OCI runtime, conmon, CNI plugins). */

export interface CommandOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Replace the environment instead of adding to it. */
  clearEnv?: boolean;
  stdin?: string | Uint8Array;
  cwd?: string;
  /** Kill the process after this many milliseconds. */
  timeoutMs?: number;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  /** Runs `cmd` to completion, capturing output. Never throws on a non-zero exit. */
  run(cmd: string, options?: CommandOptions): Promise<CommandResult>;
  /** Runs `cmd` with this process's stdio, returning its exit code. */
  runInteractive(
    cmd: string,
    options: CommandOptions & { stdin: "inherit" | "null" },
  ): Promise<number>;
}

const decoder = new TextDecoder();

export class DenoCommandRunner implements CommandRunner {
  async run(cmd: string, options: CommandOptions = {}): Promise<CommandResult> {
    const child = new Deno.Command(cmd, {
      args: options.args ?? [],
      env: options.env,
      clearEnv: options.clearEnv,
      cwd: options.cwd,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, options.timeoutMs);
    }
    try {
      if (options.stdin !== undefined) {
        const w = child.stdin.getWriter();
        try {
          await w.write(
            typeof options.stdin === "string"
              ? new TextEncoder().encode(options.stdin)
              : options.stdin,
          );
          await w.close();
        } catch (e) {
          // A program that exits without reading its input: its exit code
          // and output say what happened, not our EPIPE.
          if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
        }
      }
      const out = await child.output();
      return {
        code: out.code,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
      };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  async runInteractive(
    cmd: string,
    options: CommandOptions & { stdin: "inherit" | "null" },
  ): Promise<number> {
    const child = new Deno.Command(cmd, {
      args: options.args ?? [],
      env: options.env,
      cwd: options.cwd,
      stdin: options.stdin,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = await child.status;
    return status.signal ? 128 + signalNumber(status.signal) : status.code;
  }
}

function signalNumber(sig: Deno.Signal): number {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return table[sig] ?? 1;
}

export interface RecordedCommand {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  stdin?: string;
}

/** Answers each command from a handler and records what was asked. */
export class FakeCommandRunner implements CommandRunner {
  readonly calls: RecordedCommand[] = [];
  constructor(
    private readonly handler: (c: RecordedCommand) => CommandResult | Promise<CommandResult> =
      () => ({
        code: 0,
        stdout: "",
        stderr: "",
      }),
  ) {}

  run(cmd: string, options: CommandOptions = {}): Promise<CommandResult> {
    const rec: RecordedCommand = {
      cmd,
      args: options.args ?? [],
      env: options.env,
      stdin: typeof options.stdin === "string"
        ? options.stdin
        : options.stdin && decoder.decode(options.stdin),
    };
    this.calls.push(rec);
    return Promise.resolve(this.handler(rec));
  }

  async runInteractive(
    cmd: string,
    options: CommandOptions & { stdin: "inherit" | "null" },
  ): Promise<number> {
    return (await this.run(cmd, { ...options, stdin: undefined })).code;
  }
}
