/**
 * Byte plumbing the streaming protocols share: a reader that hands out exact
 * byte counts from a connection, a writer that never interleaves two frames,
 * and an unbounded in-order queue of chunks with an end.
 */
import { concat } from "../../bytes.ts";

/** A byte connection: a TCP socket, or the payloads of a WebSocket's messages. */
export interface Duplex {
  /** Next bytes, or null at the end. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
}

/** A Deno connection as a Duplex. */
export function connDuplex(conn: Deno.Conn, first?: Uint8Array): Duplex {
  let pending = first && first.length > 0 ? first : undefined;
  let closed = false;
  return {
    async read() {
      if (pending) {
        const b = pending;
        pending = undefined;
        return b;
      }
      const buf = new Uint8Array(32 * 1024);
      try {
        const n = await conn.read(buf);
        return n === null ? null : buf.subarray(0, n);
      } catch {
        return null;
      }
    },
    async write(bytes) {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

/** Reads exact byte counts from a Duplex. */
export class ExactReader {
  #buf: Uint8Array = new Uint8Array(0);
  constructor(private readonly src: Duplex) {}

  /** `n` bytes, or null when the source ends first (a partial tail is dropped). */
  async take(n: number): Promise<Uint8Array | null> {
    while (this.#buf.length < n) {
      const more = await this.src.read();
      if (more === null) return null;
      this.#buf = concat([this.#buf, more]);
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
}

/** Writes whole buffers one after another, in call order. */
export class SerialWriter {
  #tail: Promise<void> = Promise.resolve();
  #failed = false;
  constructor(private readonly dst: Duplex) {}

  write(bytes: Uint8Array): Promise<void> {
    const next = this.#tail.then(async () => {
      if (this.#failed) throw new Error("connection closed");
      try {
        await this.dst.write(bytes);
      } catch (e) {
        this.#failed = true;
        throw e;
      }
    });
    this.#tail = next.catch(() => {});
    return next;
  }
}

export { concat };

/** Chunks in arrival order; `next()` waits for one, null after `end()`. */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #ended = false;
  #waiter?: () => void;
  #whenEnded = Promise.withResolvers<void>();

  push(b: Uint8Array): void {
    if (this.#ended || b.length === 0) return;
    this.#chunks.push(b);
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#whenEnded.resolve();
    this.#wake();
  }

  /** Settles at `end()`. */
  get whenEnded(): Promise<void> {
    return this.#whenEnded.promise;
  }

  get ended(): boolean {
    return this.#ended;
  }

  async next(): Promise<Uint8Array | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#waiter = r);
    }
    return this.#chunks.shift()!;
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
