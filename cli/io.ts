/**
 * Where a command's output goes and what its working directory is. A command
 * run in-process writes to this process's stdout/stderr and resolves paths
 * against Deno.cwd(); one that `rkl daemon` runs for a thin client (see
 * cli/remote.ts) writes into that client's connection and resolves against the
 * client's directory. The choice travels with the async call chain
 * (AsyncLocalStorage), so requests served at the same time never mix.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { writeAll } from "./remote.ts";

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The directory relative paths in argv are relative to (absolute). */
  cwd: string;
  /** The client's whole environment, where a command reads it (compose's interpolation). */
  env?: Record<string, string>;
  /**
   * Set once the request is answered. A context can outlive its request
   * (Deno carries it into async work the request happened to start, such as
   * a socket's next read); from then on that work writes to this process.
   */
  closed?: boolean;
}

const store = new AsyncLocalStorage<Io>();
const current = {
  getStore(): Io | undefined {
    const io = store.getStore();
    return io && !io.closed ? io : undefined;
  },
};

/** Runs `fn` with its output and cwd taken from `io`. */
export function withIo<T>(io: Io, fn: () => Promise<T>): Promise<T> {
  return store.run(io, fn);
}

/** True while serving a thin client: no signal handlers, no TTY of our own. */
export function served(): boolean {
  return current.getStore() !== undefined;
}

export function stdout(text: string): void {
  const io = current.getStore();
  if (io) io.stdout(text);
  else writeAll(Deno.stdout, text);
}

export function stderr(text: string): void {
  const io = current.getStore();
  if (io) io.stderr(text);
  else writeAll(Deno.stderr, text);
}

export function cwd(): string {
  return current.getStore()?.cwd ?? Deno.cwd();
}

/** The environment a command reads: the client's when served, else this process's. */
export function environment(): Record<string, string> {
  return current.getStore()?.env ?? Deno.env.toObject();
}

/** `p` made absolute against {@linkcode cwd}. */
export function absolute(p: string): string {
  return p.startsWith("/") ? p : `${cwd()}/${p}`;
}
