/**
 * The server side of RFC 6455 WebSockets, as much as the Kubernetes channel
 * protocols need: the opening handshake's accept key, messages (possibly
 * fragmented) read from masked client frames, unmasked binary frames
 * written, ping answered with pong, and the close handshake.
 */
import { createHash } from "node:crypto";
import { concat, type Duplex, ExactReader, SerialWriter } from "./bytes.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest message accepted from a client. */
const MAX_MESSAGE = 16 * 1024 * 1024;

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** A frame as the server writes it: FIN set, no mask. */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const f = new Uint8Array(head + n);
  f[0] = 0x80 | opcode;
  if (n < 126) f[1] = n;
  else if (n < 65536) {
    f[1] = 126;
    new DataView(f.buffer).setUint16(2, n);
  } else {
    f[1] = 127;
    new DataView(f.buffer).setBigUint64(2, BigInt(n));
  }
  f.set(payload, head);
  return f;
}

export interface Message {
  binary: boolean;
  data: Uint8Array;
}

export class WebSocketConn {
  readonly #reader: ExactReader;
  readonly #writer: SerialWriter;
  #closeSent = false;
  #closed = false;

  constructor(private readonly conn: Duplex) {
    this.#reader = new ExactReader(conn);
    this.#writer = new SerialWriter(conn);
  }

  /** The next data message, or null once the client closed or broke the protocol. */
  async receive(): Promise<Message | null> {
    const parts: Uint8Array[] = [];
    let size = 0;
    let first: number | undefined;
    try {
      while (!this.#closed) {
        const h = await this.#reader.take(2);
        if (!h) return this.#end();
        const fin = (h[0] & 0x80) !== 0;
        const op = h[0] & 0x0f;
        if ((h[1] & 0x80) === 0) return this.#end(1002); // clients must mask
        let len = h[1] & 0x7f;
        if (len === 126) {
          const e = await this.#reader.take(2);
          if (!e) return this.#end();
          len = new DataView(e.buffer, e.byteOffset, 2).getUint16(0);
        } else if (len === 127) {
          const e = await this.#reader.take(8);
          if (!e) return this.#end();
          const big = new DataView(e.buffer, e.byteOffset, 8).getBigUint64(0);
          if (big > BigInt(MAX_MESSAGE)) return this.#end(1009);
          len = Number(big);
        }
        if (size + len > MAX_MESSAGE) return this.#end(1009);
        const mask = await this.#reader.take(4);
        if (!mask) return this.#end();
        const payload = len > 0 ? await this.#reader.take(len) : new Uint8Array(0);
        if (!payload) return this.#end();
        for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
        if (op >= 8) {
          if (!fin || payload.length > 125) return this.#end(1002);
          if (op === OP.CLOSE) return this.#end(1000);
          if (op === OP.PING) await this.#send(OP.PONG, payload);
          continue; // pong: nothing to do
        }
        if (op === OP.CONT ? first === undefined : first !== undefined) return this.#end(1002);
        if (op !== OP.CONT) {
          if (op !== OP.TEXT && op !== OP.BINARY) return this.#end(1003);
          first = op;
        }
        parts.push(payload);
        size += payload.length;
        if (fin) return { binary: first === OP.BINARY, data: concat(parts) };
      }
      return null;
    } catch {
      return this.#end();
    }
  }

  #send(opcode: number, payload: Uint8Array): Promise<void> {
    return this.#writer.write(encodeFrame(opcode, payload));
  }

  sendBinary(data: Uint8Array): Promise<void> {
    if (this.#closeSent) return Promise.reject(new Error("websocket closed"));
    return this.#send(OP.BINARY, data);
  }

  /** Sends a close frame (once) and closes the connection. */
  async close(code = 1000, reason = ""): Promise<void> {
    if (!this.#closeSent) {
      this.#closeSent = true;
      const r = new TextEncoder().encode(reason.slice(0, 120));
      const p = new Uint8Array(2 + r.length);
      new DataView(p.buffer).setUint16(0, code);
      p.set(r, 2);
      await this.#send(OP.CLOSE, p).catch(() => {});
    }
    this.#closed = true;
    this.conn.close();
  }

  async #end(code?: number): Promise<null> {
    if (code !== undefined) await this.close(code);
    else {
      this.#closed = true;
      this.conn.close();
    }
    return null;
  }
}

/** The response headers that accept a WebSocket upgrade with `protocol`. */
export function upgradeResponse(key: string, protocol: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
    (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : "") + "\r\n";
}

/** The payloads of a WebSocket's binary messages as one byte stream (SPDY tunnelled in it). */
export function messageDuplex(ws: WebSocketConn): Duplex {
  return {
    async read() {
      for (;;) {
        const m = await ws.receive();
        if (!m) return null;
        if (m.data.length > 0) return m.data;
      }
    },
    write: (b) => ws.sendBinary(b),
    close: () => void ws.close(),
  };
}
