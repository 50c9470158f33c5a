/**
 * A Deno connection as the node:stream Duplex grpc-js's connection injector
 * takes. The CRI socket is listened on and accepted with Deno's own API
 * (src/cri/lazy.ts, src/sys/accept.ts), not node:net: under Deno 2.9 a
 * node:net server that once fails an accept (EMFILE: no descriptor left) is
 * never polled for connections again, and the socket queues every later
 * client unanswered until the daemon restarts. Deno's HTTP/2 server reads a
 * socket through its 'data' events and writes through write(), so a plain
 * Duplex is all it needs.
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";

const READ_SIZE = 64 * 1024;

/** Bytes taken into the write batch before a write's callback waits for the flush. */
const BATCH_BYTES = 64 * 1024;

export function connStream(conn: Deno.Conn): Duplex {
  let reading = false;
  const writeAll = async (b: Uint8Array) => {
    for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
  };
  // HTTP/2 writes each frame on its own, a few ticks apart: a unary answer
  // is its HEADERS, DATA and trailers, three writes and three wake-ups of
  // the client. Frames written within one turn of the event loop go out
  // together, in one write, once the turn is over (setImmediate). Each
  // write's callback is called at once while the batch is small, so the
  // next frame can join it, and after the flush once it is large
  // (backpressure as before). A failed flush destroys the stream.
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let waiting: ((e?: Error | null) => void)[] = [];
  let flushing: Promise<void> | undefined;
  const flush = () => {
    const chunks = batch;
    const callbacks = waiting;
    batch = [];
    batchBytes = 0;
    waiting = [];
    const previous = flushing ?? Promise.resolve();
    const done = flushing = previous.then(() =>
      writeAll(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
    ).then(
      () => {
        for (const cb of callbacks) cb();
      },
      (e: Error) => {
        for (const cb of callbacks) cb(e);
        stream.destroy(e);
      },
    ).finally(() => {
      if (flushing === done) flushing = undefined;
    });
    return done;
  };
  const enqueue = (chunk: Uint8Array, cb: (e?: Error | null) => void) => {
    if (batch.length === 0) setImmediate(flush);
    batch.push(chunk);
    batchBytes += chunk.length;
    if (batchBytes >= BATCH_BYTES) waiting.push(cb);
    else cb();
  };
  const stream: Duplex = new Duplex({
    // As a net.Socket: the client's end ends ours too.
    allowHalfOpen: false,
    read() {
      if (reading) return; // one read loop at a time; it stops when the buffer is full
      reading = true;
      (async () => {
        const buf = new Uint8Array(READ_SIZE);
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) {
            reading = false;
            stream.push(null);
            return;
          }
          // A copy: `buf` is read into again.
          if (!stream.push(Buffer.from(buf.subarray(0, n)))) {
            reading = false; // before node asks again
            return;
          }
        }
      })().catch((e) => {
        reading = false;
        stream.destroy(e);
      });
    },
    write(chunk: Uint8Array, _encoding, done) {
      enqueue(chunk, done);
    },
    // What HTTP/2 queued while a batch was out, in the next batch.
    writev(chunks: { chunk: Uint8Array }[], done) {
      enqueue(Buffer.concat(chunks.map((c) => c.chunk)), done);
    },
    final(done) {
      // What is batched goes out before the end.
      const pending = batch.length > 0 ? flush() : flushing ?? Promise.resolve();
      pending.then(() => conn.closeWrite()).then(() => done(), () => done());
    },
    destroy(err, done) {
      try {
        conn.close();
      } catch { /* closed */ }
      done(err);
    },
  });
  return stream;
}
