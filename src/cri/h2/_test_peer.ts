/** A scripted HTTP/2 client for the unit tests: frames in, the server's frames out, no socket. */
import { Connection, type ConnectionOptions, type ServerStream } from "./connection.ts";
import {
  Flag,
  frame,
  FrameType,
  PREFACE,
  readFrameHeader,
  settingsPayload,
  u32,
} from "../../net/h2/frames.ts";
import { type Header, HpackDecoder, hpackEncode } from "../../net/h2/hpack.ts";

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Uint8Array;
}

export class TestPeer {
  readonly conn: Connection;
  private bytes: Uint8Array[] = [];
  closed = false;
  readonly decoder = new HpackDecoder();

  constructor(
    onStream: (s: ServerStream) => void,
    options: Partial<ConnectionOptions> = {},
  ) {
    this.conn = new Connection({
      ...options,
      onStream,
      write: (b) => this.bytes.push(b.slice()),
      close: () => this.closed = true,
    });
  }

  /** Preface and an empty (or given) SETTINGS. */
  start(settings: [number, number][] = []): this {
    this.send(PREFACE);
    this.frame(FrameType.SETTINGS, 0, 0, settingsPayload(settings));
    return this;
  }

  send(b: Uint8Array): void {
    this.conn.feed(b);
  }

  frame(type: number, flags: number, stream: number, payload?: Uint8Array): void {
    this.send(frame(type, flags, stream, payload));
  }

  /** A request's HEADERS (END_STREAM with `end`). */
  request(stream: number, path: string, extra: Header[] = [], end = false): void {
    const block = hpackEncode([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", path],
      [":authority", "localhost"],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ...extra,
    ]);
    this.frame(FrameType.HEADERS, Flag.END_HEADERS | (end ? Flag.END_STREAM : 0), stream, block);
  }

  /** Everything the server wrote since the last call, as frames (after microtasks ran). */
  async read(): Promise<Frame[]> {
    await new Promise((r) => setTimeout(r, 0));
    this.conn.flush();
    const all = this.bytes;
    this.bytes = [];
    const buf = new Uint8Array(all.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of all) {
      buf.set(b, at);
      at += b.length;
    }
    const out: Frame[] = [];
    for (let i = 0; i + 9 <= buf.length;) {
      const h = readFrameHeader(buf, i);
      out.push({ ...h, payload: buf.slice(i + 9, i + 9 + h.length) });
      i += 9 + h.length;
    }
    return out;
  }

  headers(f: Frame): Map<string, string> {
    return new Map(this.decoder.decode(f.payload));
  }
}

export const goawayCode = (f: Frame) => new DataView(f.payload.buffer).getUint32(4);
export const u32At = (f: Frame) => new DataView(f.payload.buffer).getUint32(0);
export { u32 };
