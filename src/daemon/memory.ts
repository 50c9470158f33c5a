/**
 * Garbage a long-lived daemon should not keep. V8 collects its old
 * generation under heap pressure, and the daemon's heap stays small, so dead
 * objects that own native memory (child-process handles and their pipes,
 * buffers of runtime and plugin output, decoders) can hold on to malloc
 * memory for minutes. Measured with 5 static pods made and removed per round:
 * malloc's in-use bytes climbed 6.9 → 25 MB over 7 rounds (RSS 86 → 102 MB)
 * before V8 happened to collect; with a collection when quiet they stayed at
 * 8.4 MB (RSS 81–83 MB).
 *
 * So when the process has grown by `growthBytes` since the last collection,
 * and the daemon is quiet (a relist came by its timer, not by a change), the
 * old generation is collected and malloc's free pages go back to the kernel
 * (malloc_trim). `gc` exists when V8 runs with --expose-gc (DAEMON_V8_FLAGS:
 * the unit and the bench start the daemon so); without it nothing is done.
 */
import { libc } from "../sys/libc.ts";

export const GROWTH_BYTES = 1 << 20;

export interface CollectorDeps {
  rss: () => number;
  gc?: () => void;
  trim?: () => void;
}

export class IdleCollector {
  #after: number;
  #trimDue = false;
  collections = 0;

  constructor(
    private readonly deps: CollectorDeps = defaultDeps(),
    private readonly growthBytes = GROWTH_BYTES,
  ) {
    this.#after = deps.rss();
  }

  /** Collects when grown enough since the last time; true when it did. */
  maybeCollect(): boolean {
    if (!this.deps.gc) return false;
    if (this.#trimDue) {
      // What the collection freed: backing stores and native objects go
      // while V8 sweeps, after gc() returns, so the trim waits for the next call.
      this.#trimDue = false;
      this.deps.trim?.();
      this.#after = Math.min(this.#after, this.deps.rss());
    }
    const now = this.deps.rss();
    if (now - this.#after < this.growthBytes) {
      // Shrunk on its own (V8 collected): measure growth from there.
      this.#after = Math.min(this.#after, now);
      return false;
    }
    this.deps.gc();
    this.#trimDue = true;
    this.#after = this.deps.rss();
    this.collections++;
    return true;
  }
}

function defaultDeps(): CollectorDeps {
  const gc = (globalThis as { gc?: () => void }).gc;
  return {
    rss: () => Deno.memoryUsage().rss,
    gc: typeof gc === "function" ? () => gc() : undefined,
    trim: () => {
      try {
        libc().malloc_trim(0n);
      } catch { /* no FFI: the collection alone */ }
    },
  };
}
