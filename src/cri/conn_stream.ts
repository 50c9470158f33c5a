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

export function connStream(conn: Deno.Conn): Duplex {
  let reading = false;
  const writeAll = async (b: Uint8Array) => {
    for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
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
      writeAll(chunk).then(() => done(), done);
    },
    // What HTTP/2 queued while a write was out (frames), in one write.
    writev(chunks: { chunk: Uint8Array }[], done) {
      writeAll(Buffer.concat(chunks.map((c) => c.chunk))).then(() => done(), done);
    },
    final(done) {
      conn.closeWrite().then(() => done(), () => done());
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
