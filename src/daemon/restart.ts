/**
 * Whether and when an exited container is restarted, as a pure function.
 * Kubernetes policies (Always, OnFailure, Never) and compose ones (always,
 * on-failure, unless-stopped, no) side by side; back-off doubles with every
 * restart from `baseMs` up to `maxMs`, like the kubelet's (10 s → 5 min).
 */

export type RestartPolicy =
  | "Always"
  | "OnFailure"
  | "Never"
  | "always"
  | "on-failure"
  | "unless-stopped"
  | "no";

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const KUBELET_BACKOFF: Backoff = { baseMs: 10_000, maxMs: 300_000 };

export interface ExitedContainer {
  policy: RestartPolicy;
  exitCode: number | undefined;
  restarts: number;
  /** When it exited, ms since the epoch. */
  finishedAt: number;
  stoppedByUser: boolean;
  /** on-failure:N: no restart once `restarts` reached N (docker's maximum retry count). */
  maxRetries?: number;
}

/** A restart label's policy and retry count (`on-failure:3`); undefined for one rkl does not know. */
export function parseRestartLabel(
  label: string,
): { policy: RestartPolicy; maxRetries?: number } | undefined {
  const [policy, count, extra] = label.split(":");
  const known = ["Always", "OnFailure", "Never", "always", "on-failure", "unless-stopped", "no"];
  if (!known.includes(policy) || extra !== undefined) return undefined;
  if (count === undefined) return { policy: policy as RestartPolicy };
  if (policy !== "on-failure" || !/^\d{1,9}$/.test(count)) return undefined;
  return Number(count) === 0 ? { policy } : { policy, maxRetries: Number(count) };
}

/** The time to restart at (ms since the epoch), or null: not to be restarted. */
export function restartAt(c: ExitedContainer, backoff: Backoff): number | null {
  if (c.stoppedByUser) return null; // `stop` means stop, for every policy
  const failed = c.exitCode !== 0;
  const restart = c.policy === "Always" || c.policy === "always" || c.policy === "unless-stopped" ||
    ((c.policy === "OnFailure" || c.policy === "on-failure") && failed);
  if (!restart) return null;
  if (c.maxRetries !== undefined && c.restarts >= c.maxRetries) return null;
  const delay = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(c.restarts, 30));
  return c.finishedAt + delay;
}

/** Failed attempts per pod or container, for back-off between retries. */
export type Failures = Map<string, { count: number; retryAt: number; hash?: string }>;

/** Counts one more failure of `key`; returns when it may be tried again. */
export function failed(failures: Failures, key: string, now: number, backoff: Backoff): number {
  const f = failures.get(key) ?? { count: 0, retryAt: 0 };
  f.count++;
  f.retryAt = now + Math.min(backoff.baseMs * 2 ** (f.count - 1), backoff.maxMs);
  failures.set(key, f);
  return f.retryAt;
}
