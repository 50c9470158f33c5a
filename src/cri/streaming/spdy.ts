/**
 * SPDY/3.1 as the Kubernetes streaming clients speak it (client-go through
 * moby/spdystream): after an HTTP/1.1 upgrade, the client opens streams with
 * SYN_STREAM frames whose headers say what each carries (`streamtype`), the
 * server answers each with SYN_REPLY, and both send DATA frames, a FIN
 * ending one direction. Header blocks are zlib streams, one per direction
 * for the whole session, primed with the dictionary of the SPDY/3 draft
 * (section 2.6.10.1). Frame layouts follow that draft.
 *
 * Only the server side is here; what rkl needs of it: streams the client
 * opens, PING answered, GOAWAY, RST_STREAM, and WINDOW_UPDATE sent for what
 * it reads (spdystream does no flow control, a stricter peer would).
 */
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { ChunkQueue, concat, type Duplex, ExactReader, SerialWriter } from "./bytes.ts";

const VERSION = 3;
const SYN_STREAM = 1;
const SYN_REPLY = 2;
const RST_STREAM = 3;
const PING = 6;
const GOAWAY = 7;
const HEADERS = 8;
const WINDOW_UPDATE = 9;
const FLAG_FIN = 0x01;

/** RST_STREAM status codes. */
export const RST = { PROTOCOL_ERROR: 1, INVALID_STREAM: 2, REFUSED_STREAM: 3, CANCEL: 5 };

/** Largest control frame accepted: header blocks of streaming requests are tiny. */
const MAX_CONTROL = 64 * 1024;
/** Largest decompressed header block. */
const MAX_HEADERS = 256 * 1024;
/** DATA frames rkl sends are at most this long. */
const DATA_CHUNK = 32 * 1024;

const WORDS = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
]; // deno-fmt-ignore
const TAIL = "100101201202205206300302303304305306307402405406407408409410411412413414415416417" +
  "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently" +
  "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error" +
  "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec" +
  " 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg," +
  "image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate" +
  "max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/** The SPDY/3 header dictionary: each word with a 32-bit length before it, then TAIL. */
export function spdyDictionary(): Uint8Array {
  const enc = new TextEncoder();
  const parts: number[] = [];
  for (const w of WORDS) {
    const b = enc.encode(w);
    parts.push(0, 0, 0, b.length, ...b);
  }
  parts.push(...enc.encode(TAIL));
  return new Uint8Array(parts);
}

/** One direction's header compression: a zlib stream kept open for the session. */
export class HeaderZ {
  #z: zlib.Inflate | zlib.Deflate;
  #out: Buffer[] = [];
  #err?: Error;
  #total = 0;
  constructor(kind: "inflate" | "deflate", dictionary: Uint8Array) {
    this.#z = kind === "inflate"
      ? zlib.createInflate({ dictionary })
      : zlib.createDeflate({ dictionary, level: 6 });
    this.#z.on("data", (c: Buffer) => {
      this.#total += c.length;
      if (this.#total <= MAX_HEADERS) this.#out.push(c);
    });
    this.#z.on("error", (e: Error) => this.#err = e);
  }

  /** The bytes `input` turns into, up to a sync flush. */
  run(input: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#out = [];
      this.#total = 0;
      this.#z.write(input);
      this.#z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.#err) return reject(this.#err);
        if (this.#total > MAX_HEADERS) return reject(new Error("header block too large"));
        resolve(new Uint8Array(Buffer.concat(this.#out)));
      });
    });
  }

  close(): void {
    this.#z.close();
  }
}

export type SpdyHeaders = Map<string, string[]>;

/** Decodes an uncompressed header block (count, then length-prefixed names and values). */
export function decodeHeaderBlock(b: Uint8Array): SpdyHeaders {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let off = 0;
  const u32 = () => {
    if (off + 4 > b.length) throw new Error("truncated header block");
    const n = v.getUint32(off);
    off += 4;
    return n;
  };
  const str = () => {
    const n = u32();
    if (off + n > b.length) throw new Error("truncated header block");
    const s = dec.decode(b.subarray(off, off + n));
    off += n;
    return s;
  };
  const count = u32();
  if (count > 1000) throw new Error("too many headers");
  const out: SpdyHeaders = new Map();
  for (let i = 0; i < count; i++) {
    const name = str();
    if (name.length === 0 || name !== name.toLowerCase()) throw new Error("bad header name");
    out.set(name, str().split("\0"));
  }
  return out;
}

export function encodeHeaderBlock(h: SpdyHeaders): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    parts.push(b);
  };
  u32(h.size);
  for (const [name, values] of h) {
    const n = enc.encode(name.toLowerCase());
    const val = enc.encode(values.join("\0"));
    u32(n.length);
    parts.push(n);
    u32(val.length);
    parts.push(val);
  }
  return concat(parts);
}

export function controlFrame(type: number, flags: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(8 + payload.length);
  const v = new DataView(f.buffer);
  v.setUint16(0, 0x8000 | VERSION);
  v.setUint16(2, type);
  v.setUint32(4, (flags << 24) | payload.length);
  f.set(payload, 8);
  return f;
}

export function dataFrame(streamId: number, flags: number, data: Uint8Array): Uint8Array {
  const f = new Uint8Array(8 + data.length);
  const v = new DataView(f.buffer);
  v.setUint32(0, streamId & 0x7fffffff);
  v.setUint32(4, (flags << 24) | data.length);
  f.set(data, 8);
  return f;
}

export function u32s(...ns: number[]): Uint8Array {
  const b = new Uint8Array(4 * ns.length);
  const v = new DataView(b.buffer);
  ns.forEach((n, i) => v.setUint32(4 * i, n >>> 0));
  return b;
}

/** A stream the client opened. */
export class SpdyStream {
  /** What the client sends on it, in order; ends at its FIN or a reset. */
  readonly incoming = new ChunkQueue();
  #localClosed = false;
  reset = false;
  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
  ) {}

  header(name: string): string | undefined {
    return this.headers.get(name)?.[0];
  }

  /** Sends `data` to the client (in DATA frames of at most 32 KiB). */
  async write(data: Uint8Array): Promise<void> {
    if (this.#localClosed || this.reset) throw new Error("stream closed");
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      await this.session.send(dataFrame(this.id, 0, data.subarray(off, off + DATA_CHUNK)));
    }
  }

  /** Ends rkl's direction (FIN). */
  async close(): Promise<void> {
    if (this.#localClosed || this.reset) return;
    this.#localClosed = true;
    await this.session.send(dataFrame(this.id, FLAG_FIN, new Uint8Array(0))).catch(() => {});
  }

  async resetStream(status = RST.CANCEL): Promise<void> {
    if (this.reset) return;
    this.reset = true;
    this.incoming.end();
    await this.session.send(controlFrame(RST_STREAM, 0, u32s(this.id, status))).catch(() => {});
  }
}

/**
 * The server end of a SPDY session over `conn`. `onStream` is called for
 * every stream the client opens, after rkl's SYN_REPLY went out.
 */
export class SpdySession {
  readonly #reader: ExactReader;
  readonly #writer: SerialWriter;
  readonly #streams = new Map<number, SpdyStream>();
  readonly #inflate: HeaderZ;
  readonly #deflate: HeaderZ;
  #lastId = 0;
  #closed = false;

  constructor(
    private readonly conn: Duplex,
    private readonly onStream: (s: SpdyStream) => void,
  ) {
    this.#reader = new ExactReader(conn);
    this.#writer = new SerialWriter(conn);
    const dict = spdyDictionary();
    this.#inflate = new HeaderZ("inflate", dict);
    this.#deflate = new HeaderZ("deflate", dict);
  }

  send(frame: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("session closed"));
    return this.#writer.write(frame);
  }

  /** Reads frames until the client ends the session; then every stream ends. */
  async serve(): Promise<void> {
    try {
      while (!this.#closed) {
        const head = await this.#reader.take(8);
        if (!head) break;
        const v = new DataView(head.buffer, head.byteOffset, 8);
        const flags = head[4];
        const len = v.getUint32(4) & 0xffffff;
        if (head[0] & 0x80) {
          if (len > MAX_CONTROL) throw new Error(`control frame of ${len} bytes`);
          const payload = await this.#reader.take(len);
          if (!payload) break;
          if ((v.getUint16(0) & 0x7fff) !== VERSION) throw new Error("not SPDY/3");
          if (!await this.#control(v.getUint16(2), flags, payload)) break;
        } else {
          const id = v.getUint32(0) & 0x7fffffff;
          const payload = await this.#reader.take(len);
          if (!payload) break;
          await this.#data(id, flags, payload);
        }
      }
    } catch {
      // A protocol error ends the session; the streams end with it.
    } finally {
      this.close();
    }
  }

  async #control(type: number, flags: number, p: Uint8Array): Promise<boolean> {
    const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
    switch (type) {
      case SYN_STREAM: {
        if (p.length < 10) throw new Error("short SYN_STREAM");
        const id = v.getUint32(0) & 0x7fffffff;
        // The zlib stream must see every block, even one rkl refuses.
        const headers = decodeHeaderBlock(await this.#inflate.run(p.subarray(10)));
        if (id === 0 || id % 2 === 0 || id <= this.#lastId) {
          await this.send(controlFrame(RST_STREAM, 0, u32s(id, RST.PROTOCOL_ERROR)));
          return true;
        }
        this.#lastId = id;
        const s = new SpdyStream(this, id, headers);
        this.#streams.set(id, s);
        const block = await this.#deflate.run(encodeHeaderBlock(new Map()));
        const payload = new Uint8Array(4 + block.length);
        payload.set(u32s(id));
        payload.set(block, 4);
        await this.send(controlFrame(SYN_REPLY, 0, payload));
        if (flags & FLAG_FIN) s.incoming.end();
        this.onStream(s);
        return true;
      }
      case HEADERS:
        if (p.length >= 4) await this.#inflate.run(p.subarray(4));
        return true;
      case RST_STREAM: {
        const s = this.#streams.get(v.getUint32(0) & 0x7fffffff);
        if (s) {
          s.reset = true;
          s.incoming.end();
        }
        return true;
      }
      case PING:
        // Client pings are odd; answer them with the same frame.
        if (p.length === 4 && v.getUint32(0) % 2 === 1) await this.send(controlFrame(PING, 0, p));
        return true;
      case GOAWAY:
        return false;
      default:
        // SETTINGS, WINDOW_UPDATE, CREDENTIAL: nothing rkl needs to act on.
        return true;
    }
  }

  async #data(id: number, flags: number, data: Uint8Array): Promise<void> {
    const s = this.#streams.get(id);
    if (!s) {
      await this.send(controlFrame(RST_STREAM, 0, u32s(id, RST.INVALID_STREAM)));
      return;
    }
    if (data.length > 0) {
      s.incoming.push(data);
      await this.send(controlFrame(WINDOW_UPDATE, 0, u32s(id, data.length)));
      await this.send(controlFrame(WINDOW_UPDATE, 0, u32s(0, data.length)));
    }
    if (flags & FLAG_FIN) s.incoming.end();
  }

  /** GOAWAY, then the connection closes. */
  async goAway(): Promise<void> {
    if (this.#closed) return;
    await this.send(controlFrame(GOAWAY, 0, u32s(this.#lastId, 0))).catch(() => {});
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#streams.values()) s.incoming.end();
    this.#inflate.close();
    this.#deflate.close();
    this.conn.close();
  }

  get closed(): boolean {
    return this.#closed;
  }
}
