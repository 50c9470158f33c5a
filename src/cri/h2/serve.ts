/**
 * One accepted Deno connection served by rkl's HTTP/2 server: a read loop
 * feeding src/cri/h2/connection.ts and its output written in order. Reading
 * pauses while more than READ_PAUSE_BYTES of output wait to be written, so a
 * peer that sends (PINGs, SETTINGS) without reading cannot grow our queue.
 */
import { Connection, type ConnectionOptions, type ServerStream } from "./connection.ts";

const READ_SIZE = 64 * 1024;
const READ_PAUSE_BYTES = 1024 * 1024;

export interface ServedConnection {
  /** GOAWAY NO_ERROR; the connection closes once its streams are done. */
  shutdown(): void;
  /** Closes at once (open streams are cancelled). */
  destroy(): void;
  /** Settles once the connection is closed. */
  closed: Promise<void>;
}

export function serveH2Connection(
  conn: Deno.Conn,
  onStream: (s: ServerStream) => void,
  options: Omit<ConnectionOptions, "write" | "close" | "onStream"> = {},
): ServedConnection {
  let pending = 0;
  let writing: Promise<void> = Promise.resolve();
  let transportClosed = false;
  const closeTransport = () => {
    if (transportClosed) return;
    transportClosed = true;
    try {
      conn.close();
    } catch { /* closed */ }
  };
  const writeAll = async (b: Uint8Array) => {
    for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
  };
  const h2 = new Connection({
    ...options,
    onStream,
    write: (b) => {
      pending += b.length;
      writing = writing.then(() => transportClosed ? undefined : writeAll(b)).then(
        () => {
          pending -= b.length;
        },
        () => {
          pending -= b.length;
          h2.destroy();
        },
      );
    },
    // What is queued goes out first (a GOAWAY's debug data, the last trailers).
    close: () => void writing.finally(closeTransport),
  });
  const closed = (async () => {
    const buf = new Uint8Array(READ_SIZE);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        h2.feed(buf.subarray(0, n));
        if (h2.dead) break;
        if (pending > READ_PAUSE_BYTES) await writing;
      }
    } catch { /* reset by the peer, or closed by us */ }
    h2.destroy();
    await writing;
    closeTransport();
  })();
  return { shutdown: () => h2.shutdown(), destroy: () => h2.destroy(), closed };
}
