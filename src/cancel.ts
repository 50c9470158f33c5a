/**
 * SIGINT/SIGTERM while something is being created: the create stops at its
 * next step and rolls back what it made, instead of the process dying with a
 * "creating" record, a mount, a netns and a lease left behind. A second
 * signal, or a signal while nothing is being created, exits at once (and
 * whatever a dead process left is found by its owner pid: `rkl gc`).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { RklError } from "./errors.ts";

let inFlight = 0;
let cancelled: string | undefined;

export class CancelledError extends RklError {
  constructor(signal: string) {
    super("ECANCELED", `Cancelled by ${signal}: what was made has been removed`);
  }
}

/** The abort signal of the operation this async task belongs to (the daemon's per-pod work). */
const scope = new AsyncLocalStorage<AbortSignal>();

/** Throws once a signal (or the operation's own abort) asked to stop; create paths call it between steps. */
export function checkCancelled(): void {
  if (cancelled) throw new CancelledError(cancelled);
  const own = scope.getStore();
  if (own?.aborted) throw new CancelledError(String(own.reason ?? "abort"));
}

/** Runs `fn` as a create that a signal cancels (nested calls count once each). */
export async function cancellable<T>(fn: () => Promise<T>): Promise<T> {
  inFlight++;
  try {
    checkCancelled();
    return await fn();
  } finally {
    inFlight--;
  }
}

/** Runs `fn` so that aborting `signal` cancels the creates inside it, and only those. */
export function withAbort<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return scope.run(signal, fn);
}

/**
 * Installs the handlers for one command that creates things; returns their
 * removal (compose's attached mode hands SIGINT to its own handler after up).
 */
export function installCancelHandlers(exit: (code: number) => void = Deno.exit): () => void {
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => {
      if (inFlight === 0 || cancelled) exit(sig === "SIGINT" ? 130 : 143);
      cancelled = sig;
    };
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  };
}

/** For tests: forget a previous cancellation. */
export function resetCancelled(): void {
  cancelled = undefined;
}

/** For tests: behave as if `sig` had arrived. */
export function simulateSignal(sig: "SIGINT" | "SIGTERM"): void {
  cancelled = sig;
}
