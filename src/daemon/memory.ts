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
        dropCodePages();
      } catch { /* no FFI: the collection alone */ }
    },
  };
}

/**
 * The executable's code (its r-xp mappings) is most of an idle daemon's RSS:
 * deno's binary is 100+ MB, and loading modules, the CRI's first call or a
 * pull run through some 25 MB of it that the daemon then rarely runs again
 * (smaps: 37.6 of 61.7 MB once the CRI's modules are loaded, against 23.3
 * MB of anonymous memory). Those pages are clean copies of the file: when
 * quiet the daemon unmaps them (madvise MADV_DONTNEED), the kernel keeps
 * them in the page cache (shared with every other deno process, and
 * reclaimable as before), and the code that runs again faults its pages
 * back in (a minor fault each). A mapping with any private or anonymous
 * page (nothing of a PIE binary's code should have one) is left alone.
 */
export function codeRanges(smaps: string, exe: string): { start: bigint; length: bigint }[] {
  const out: { start: bigint; length: bigint }[] = [];
  let cur: { start: bigint; length: bigint; ok: boolean } | undefined;
  const flush = () => {
    if (cur?.ok) out.push({ start: cur.start, length: cur.length });
    cur = undefined;
  };
  for (const line of smaps.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (m) {
      flush();
      if (m[3] === "r-xp" && m[4] === exe) {
        const start = BigInt(`0x${m[1]}`);
        cur = { start, length: BigInt(`0x${m[2]}`) - start, ok: true };
      }
      continue;
    }
    if (!cur) continue;
    const f = /^(Private_Dirty|Anonymous|Swap):\s+(\d+) kB/.exec(line);
    if (f && f[2] !== "0") cur.ok = false;
  }
  flush();
  return out;
}

const MADV_DONTNEED = 4;
let madvise: ((start: bigint, length: bigint) => number) | undefined;

/** Unmaps the executable's clean code pages (see `codeRanges`); the bytes advised. */
export function dropCodePages(): number {
  if (!madvise) {
    const lib = Deno.dlopen("libc.so.6", {
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
    });
    madvise = (start, length) =>
      lib.symbols.madvise(Deno.UnsafePointer.create(start), length, MADV_DONTNEED);
  }
  const exe = Deno.realPathSync("/proc/self/exe");
  let bytes = 0;
  for (const r of codeRanges(Deno.readTextFileSync("/proc/self/smaps"), exe)) {
    if (madvise(r.start, r.length) === 0) bytes += Number(r.length);
  }
  return bytes;
}
