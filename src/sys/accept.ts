/**
 * An accept loop that outlives a full descriptor table. accept(2) fails with
 * EMFILE or ENFILE while the process (or the host) has no descriptor left
 * for the new connection; the connection stays queued in the kernel, and the
 * listener is fine. Giving up there (as a plain `for await (… of listener)`
 * does) leaves a socket that the kernel still queues connections on but
 * nobody accepts, until the process restarts. This loop waits instead, 10 ms
 * doubling to 1 s (Go's net/http server does the same: 5 ms doubling to 1 s),
 * and tries again, so it serves again as soon as a descriptor is free. Only
 * a closed listener ends it.
 */

export const ACCEPT_BACKOFF_MIN_MS = 10;
export const ACCEPT_BACKOFF_MAX_MS = 1_000;

export interface AcceptOptions {
  /** What the listener serves, for the log ("CRI", "CLI", "CRI streaming"). */
  label: string;
  /** One line when accepting starts failing, one when it works again. */
  log?: (line: string) => void;
  /** Longest wait between tries (tests shorten it). */
  maxDelayMs?: number;
}

/** The delay after `failures` failed accepts in a row (1 or more). */
export function acceptBackoffMs(failures: number, maxMs = ACCEPT_BACKOFF_MAX_MS): number {
  return Math.min(maxMs, ACCEPT_BACKOFF_MIN_MS * 2 ** Math.min(failures - 1, 20));
}

/** Whether an accept error means the listener itself is gone. */
function closed(e: unknown): boolean {
  return e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}

/**
 * Hands every connection `listener` accepts to `serve` until the listener is
 * closed; failed accepts are retried after a back-off, never fatal. When
 * `serve` returns a promise, the next accept waits for it: a server that
 * closed a connection to make room yields to the event loop that way, so
 * that the closed socket's descriptor is really released (Deno frees it
 * once the read pending on it is cancelled) before another one is taken.
 */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  serve: (conn: C) => void | Promise<void>,
  options: AcceptOptions,
): Promise<void> {
  let failures = 0;
  let first = 0;
  for (;;) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (e) {
      if (closed(e)) return;
      if (failures++ === 0) {
        first = Date.now();
        options.log?.(
          `${options.label}: cannot accept a connection: ${(e as Error).message}; retrying`,
        );
      }
      await new Promise((r) => setTimeout(r, acceptBackoffMs(failures, options.maxDelayMs)));
      continue;
    }
    if (failures > 0) {
      options.log?.(
        `${options.label}: accepting again after ${failures} failed tries in ${
          Date.now() - first
        } ms`,
      );
      failures = 0;
    }
    const paced = serve(conn);
    if (paced) await paced;
  }
}
