/**
 * The server side of one HTTP/2 connection (RFC 9113), fed bytes and writing
 * bytes through callbacks, so it can be driven without a socket (the unit
 * tests) or over a Deno connection (src/cri/h2/serve.ts).
 *
 * What it does: the connection preface, SETTINGS and their ACK, PING ACKs,
 * HEADERS with CONTINUATION decoded by HPACK, flow control both ways
 * (WINDOW_UPDATE sent for what was received; DATA sent only within the
 * connection's and the stream's windows, in frames no larger than the
 * peer's SETTINGS_MAX_FRAME_SIZE), RST_STREAM, and GOAWAY: with NO_ERROR on
 * shutdown, with the error's code on a malformed frame, after which the
 * connection is closed. Requests are bounded in frame size, header block and
 * list size and in concurrent streams.
 */
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  Flag,
  frame,
  FrameType,
  H2Code,
  MAX_WINDOW,
  PREFACE,
  readFrameHeader,
  Setting,
  settingsPayload,
  u32,
} from "../../net/h2/frames.ts";
import {
  type Header,
  HeaderListTooLarge,
  HpackDecoder,
  hpackEncode,
  HpackError,
} from "../../net/h2/hpack.ts";

export interface ConnectionOptions {
  /** Output: bytes to send, in order. */
  write(bytes: Uint8Array): void;
  /** Closes the transport (after a GOAWAY, or once a graceful shutdown has no stream left). */
  close(): void;
  /** A new request's stream, its headers decoded; set its callbacks here. */
  onStream(stream: ServerStream): void;
  /** One line about a connection error (GOAWAY sent for it). */
  log?(line: string): void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced and enforced (default 100). */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE announced and enforced (default 64 KiB). */
  maxHeaderListSize?: number;
  /** Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE; default 1 MiB). */
  streamWindow?: number;
  /** Receive window of the connection (default 4 MiB). */
  connectionWindow?: number;
}

/** A connection error: GOAWAY with `code`, then the connection closes. */
export class H2Error extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const EMPTY = new Uint8Array(0);
const CONNECTION_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);
const REQUEST_PSEUDO = new Set([":method", ":scheme", ":authority", ":path"]);

export class ServerStream {
  /** Request headers, pseudo-headers included (a repeated name keeps its last value). */
  readonly headers = new Map<string, string>();
  /** Called with each DATA payload (valid during the call only) and once with end = true. */
  ondata: (chunk: Uint8Array, end: boolean) => void = () => {};
  /** Called once when the stream ends early: the peer's RST_STREAM, or the connection gone. */
  onreset: (code: number) => void = () => {};
  remoteEnded = false;
  localEnded = false;
  closed = false;
  sendWindow: number;
  /** DATA waiting for window, then the trailers (or an empty END_STREAM). */
  queue: Uint8Array[] = [];
  queued = 0;
  trailers: Header[] | null | undefined; // undefined: not ended yet; null: end without trailers
  recvWindow: number;
  recvUnacked = 0;

  constructor(
    readonly id: number,
    private readonly conn: Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends the response headers (END_STREAM with `end`: a trailers-only answer). */
  respond(headers: Header[], end = false): void {
    if (this.closed || this.localEnded) return;
    this.conn.sendHeaders(this.id, headers, end);
    if (end) {
      this.localEnded = true;
      this.conn.localEnd(this);
    }
  }

  /** Queues DATA; it goes out as the windows allow. */
  write(data: Uint8Array): void {
    if (this.closed || this.localEnded || this.trailers !== undefined) return;
    if (data.length === 0) return;
    this.queue.push(data);
    this.queued += data.length;
    this.conn.pump(this);
  }

  /** Ends the stream after the queued DATA: with trailers, or an empty DATA frame. */
  end(trailers?: Header[]): void {
    if (this.closed || this.localEnded || this.trailers !== undefined) return;
    this.trailers = trailers ?? null;
    this.conn.pump(this);
  }

  /** RST_STREAM with `code`; the stream is closed. */
  reset(code: number): void {
    if (this.closed) return;
    this.conn.resetStream(this, code, false);
  }
}

export class Connection {
  private readonly decoder = new HpackDecoder(4096);
  private readonly streams = new Map<number, ServerStream>();
  private buf: Uint8Array = EMPTY;
  private prefaceSeen = false;
  private settingsSeen = false;
  /** Highest stream id the peer opened. */
  private lastStream = 0;
  /** A header block being continued: its stream, flags and fragments. */
  private continuing: { stream: number; flags: number; parts: Uint8Array[]; size: number } | null =
    null;
  private peerWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private connSendWindow = DEFAULT_WINDOW;
  private connRecvWindow: number;
  private connRecvUnacked = 0;
  /** Streams with DATA or trailers waiting for window. */
  private readonly blocked = new Set<ServerStream>();
  private out: Uint8Array[] = [];
  private flushScheduled = false;
  /** GOAWAY sent (shutdown or error): no new stream is taken. */
  private goingAway = false;
  /** Closed: nothing more is read or written. */
  dead = false;

  readonly maxConcurrent: number;
  readonly maxHeaderList: number;
  readonly streamWindow: number;
  readonly connectionWindow: number;

  constructor(private readonly options: ConnectionOptions) {
    this.maxConcurrent = options.maxConcurrentStreams ?? 100;
    this.maxHeaderList = options.maxHeaderListSize ?? 64 * 1024;
    this.streamWindow = options.streamWindow ?? 1024 * 1024;
    this.connectionWindow = options.connectionWindow ?? 4 * 1024 * 1024;
    this.connRecvWindow = this.connectionWindow;
    // Our preface: SETTINGS, then the connection's window beyond the default.
    this.emit(frame(
      FrameType.SETTINGS,
      0,
      0,
      settingsPayload([
        [Setting.MAX_CONCURRENT_STREAMS, this.maxConcurrent],
        [Setting.INITIAL_WINDOW_SIZE, this.streamWindow],
        [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderList],
      ]),
    ));
    if (this.connectionWindow > DEFAULT_WINDOW) {
      this.emit(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(this.connectionWindow - DEFAULT_WINDOW)));
    }
  }

  /** Streams open or half-closed. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Takes bytes read from the peer. */
  feed(bytes: Uint8Array): void {
    if (this.dead) return;
    try {
      this.parse(bytes);
    } catch (e) {
      if (!(e instanceof H2Error)) throw e;
      this.options.log?.(`http2: connection error ${e.code}: ${e.message}`);
      this.fail(e.code, e.message);
    }
  }

  /** GOAWAY with `code` and the connection closed at once (the error path). */
  fail(code: number, debug = ""): void {
    if (this.dead) return;
    this.emit(frame(
      FrameType.GOAWAY,
      0,
      0,
      new Uint8Array([
        ...u32(this.lastStream, code),
        ...new TextEncoder().encode(debug.slice(0, 200)),
      ]),
    ));
    this.goingAway = true;
    this.flush();
    this.destroy();
  }

  /** Graceful shutdown: GOAWAY NO_ERROR; the connection closes once its streams are done. */
  shutdown(): void {
    if (this.dead || this.goingAway) return;
    this.goingAway = true;
    this.emit(frame(FrameType.GOAWAY, 0, 0, u32(this.lastStream, H2Code.NO_ERROR)));
    if (this.streams.size === 0) {
      this.flush();
      this.destroy();
    }
  }

  /** The transport is gone (or we close it): every open stream is told. */
  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    const open = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const s of open) {
      s.closed = true;
      s.onreset(H2Code.CANCEL);
    }
    this.options.close();
  }

  // ---- input ----

  private parse(bytes: Uint8Array) {
    let b: Uint8Array;
    if (this.buf.length === 0) b = bytes;
    else {
      b = new Uint8Array(this.buf.length + bytes.length);
      b.set(this.buf);
      b.set(bytes, this.buf.length);
    }
    let at = 0;
    if (!this.prefaceSeen) {
      const n = Math.min(b.length, PREFACE.length);
      for (let i = 0; i < n; i++) {
        if (b[i] !== PREFACE[i]) throw new H2Error(H2Code.PROTOCOL_ERROR, "bad connection preface");
      }
      if (b.length < PREFACE.length) {
        this.buf = b.slice();
        return;
      }
      this.prefaceSeen = true;
      at = PREFACE.length;
    }
    while (!this.dead && b.length - at >= 9) {
      const h = readFrameHeader(b, at);
      if (h.length > DEFAULT_MAX_FRAME) {
        throw new H2Error(
          H2Code.FRAME_SIZE_ERROR,
          `frame of ${h.length} octets over ${DEFAULT_MAX_FRAME}`,
        );
      }
      if (b.length - at - 9 < h.length) break;
      const payload = b.subarray(at + 9, at + 9 + h.length);
      at += 9 + h.length;
      this.onFrame(h.type, h.flags, h.stream, payload);
    }
    this.buf = at >= b.length ? EMPTY : b.slice(at);
    this.flush();
  }

  private onFrame(type: number, flags: number, id: number, p: Uint8Array) {
    if (!this.settingsSeen) {
      if (type !== FrameType.SETTINGS || (flags & Flag.ACK)) {
        throw new H2Error(H2Code.PROTOCOL_ERROR, "the first frame is not SETTINGS");
      }
      this.settingsSeen = true;
    }
    if (this.continuing && (type !== FrameType.CONTINUATION || id !== this.continuing.stream)) {
      throw new H2Error(H2Code.PROTOCOL_ERROR, "header block interrupted");
    }
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, id, p);
      case FrameType.HEADERS:
        return this.onHeaders(flags, id, p);
      case FrameType.PRIORITY:
        if (id === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (p.length !== 5) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "PRIORITY not 5 octets");
        return;
      case FrameType.RST_STREAM:
        return this.onReset(id, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, id, p);
      case FrameType.PUSH_PROMISE:
        throw new H2Error(H2Code.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      case FrameType.PING:
        if (id !== 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "PING on a stream");
        if (p.length !== 8) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "PING not 8 octets");
        if (!(flags & Flag.ACK)) this.emit(frame(FrameType.PING, Flag.ACK, 0, p));
        return;
      case FrameType.GOAWAY:
        if (id !== 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "GOAWAY on a stream");
        if (p.length < 8) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "GOAWAY under 8 octets");
        // The client leaves: no new stream from it; close once the open ones are done.
        this.goingAway = true;
        if (this.streams.size === 0) {
          this.flush();
          this.destroy();
        }
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, p);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, p);
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  /** The payload without its padding (PADDED flag). */
  private unpad(flags: number, p: Uint8Array, extra = 0): Uint8Array {
    if (!(flags & Flag.PADDED)) {
      if (p.length < extra) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "frame too short");
      return p.subarray(extra);
    }
    if (p.length < 1 + extra) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "frame too short");
    const pad = p[0];
    if (1 + extra + pad > p.length) {
      throw new H2Error(H2Code.PROTOCOL_ERROR, "padding longer than the frame");
    }
    return p.subarray(1 + extra, p.length - pad);
  }

  private onData(flags: number, id: number, p: Uint8Array) {
    if (id === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "DATA on stream 0");
    if (id > this.lastStream) throw new H2Error(H2Code.PROTOCOL_ERROR, "DATA on an idle stream");
    // The whole frame counts against the windows, padding included (§6.9.1).
    this.connRecvWindow -= p.length;
    if (this.connRecvWindow < 0) {
      throw new H2Error(H2Code.FLOW_CONTROL_ERROR, "DATA beyond the connection's window");
    }
    this.credit(p.length);
    const data = this.unpad(flags, p);
    const s = this.streams.get(id);
    // A stream we closed (reset, or answered early): its DATA is dropped.
    if (!s) return;
    if (s.remoteEnded) return s.reset(H2Code.STREAM_CLOSED); // DATA after END_STREAM
    s.recvWindow -= p.length;
    if (s.recvWindow < 0) {
      s.reset(H2Code.FLOW_CONTROL_ERROR);
      return;
    }
    const end = (flags & Flag.END_STREAM) !== 0;
    if (end) s.remoteEnded = true;
    else {
      s.recvUnacked += p.length;
      if (s.recvUnacked >= this.streamWindow / 2) {
        this.emit(frame(FrameType.WINDOW_UPDATE, 0, id, u32(s.recvUnacked)));
        s.recvWindow += s.recvUnacked;
        s.recvUnacked = 0;
      }
    }
    if (data.length > 0 || end) s.ondata(data, end);
    if (end) this.maybeClose(s);
  }

  /** Connection-level WINDOW_UPDATE for `n` octets consumed (batched to half the window). */
  private credit(n: number) {
    this.connRecvUnacked += n;
    if (this.connRecvUnacked >= this.connectionWindow / 2) {
      this.emit(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(this.connRecvUnacked)));
      this.connRecvWindow += this.connRecvUnacked;
      this.connRecvUnacked = 0;
    }
  }

  private onHeaders(flags: number, id: number, p: Uint8Array) {
    if (id === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "HEADERS on stream 0");
    if (id % 2 === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "HEADERS on a server stream id");
    const fragment = this.unpad(flags, p, flags & Flag.PRIORITY ? 5 : 0);
    this.continuing = { stream: id, flags, parts: [fragment], size: fragment.length };
    this.checkBlockSize();
    if (flags & Flag.END_HEADERS) this.endBlock();
  }

  private onContinuation(flags: number, p: Uint8Array) {
    if (!this.continuing) throw new H2Error(H2Code.PROTOCOL_ERROR, "CONTINUATION without HEADERS");
    // `p` is a view of the read buffer: copied, as the block may span reads.
    this.continuing.parts.push(p.slice());
    this.continuing.size += p.length;
    this.checkBlockSize();
    if (flags & Flag.END_HEADERS) this.endBlock();
  }

  private checkBlockSize() {
    const c = this.continuing!;
    // HPACK never makes a list shorter than a quarter of its block... but a block
    // may be table updates only: the block itself is bounded at twice the list.
    if (c.size > 2 * this.maxHeaderList) {
      throw new H2Error(
        H2Code.ENHANCE_YOUR_CALM,
        `header block over ${2 * this.maxHeaderList} octets`,
      );
    }
    if (c.parts.length === 1 && !(c.flags & Flag.END_HEADERS)) {
      c.parts[0] = c.parts[0].slice(); // the first fragment outlives this read too
    }
  }

  private endBlock() {
    const c = this.continuing!;
    this.continuing = null;
    const block = c.parts.length === 1 ? c.parts[0] : concat(c.parts, c.size);
    const id = c.stream;
    let list: Header[] | null;
    try {
      list = this.decoder.decode(block, this.maxHeaderList);
    } catch (e) {
      if (e instanceof HeaderListTooLarge) list = null;
      else if (e instanceof HpackError) throw new H2Error(H2Code.COMPRESSION_ERROR, e.message);
      else throw e;
    }
    const end = (c.flags & Flag.END_STREAM) !== 0;
    const existing = this.streams.get(id);
    if (existing) {
      // Trailers: they must end the stream.
      if (existing.remoteEnded) throw new H2Error(H2Code.STREAM_CLOSED, "HEADERS after END_STREAM");
      if (!end) return existing.reset(H2Code.PROTOCOL_ERROR);
      existing.remoteEnded = true;
      existing.ondata(EMPTY, true);
      this.maybeClose(existing);
      return;
    }
    if (id <= this.lastStream) {
      throw new H2Error(H2Code.STREAM_CLOSED, "HEADERS on a closed stream");
    }
    this.lastStream = id;
    if (this.goingAway) return; // opened after our GOAWAY: ignored (§6.8)
    const s = new ServerStream(id, this, this.peerWindow, this.streamWindow);
    if (this.streams.size >= this.maxConcurrent) {
      this.emit(frame(FrameType.RST_STREAM, 0, id, u32(H2Code.REFUSED_STREAM)));
      return;
    }
    this.streams.set(id, s);
    s.remoteEnded = end;
    if (list === null) {
      s.respond([[":status", "431"]], true);
      return;
    }
    if (!this.validRequest(list, s)) {
      s.reset(H2Code.PROTOCOL_ERROR);
      return;
    }
    this.options.onStream(s);
    if (end && !s.closed) s.ondata(EMPTY, true);
  }

  /** §8.2-8.3: lower-case names, pseudo-headers first and known, no connection headers. */
  private validRequest(list: Header[], s: ServerStream): boolean {
    let regular = false;
    for (const [name, value] of list) {
      if (name !== name.toLowerCase() || name.length === 0) return false;
      if (name[0] === ":") {
        if (regular || !REQUEST_PSEUDO.has(name) || s.headers.has(name)) return false;
      } else {
        regular = true;
        if (CONNECTION_HEADERS.has(name)) return false;
        if (name === "te" && value !== "trailers") return false;
      }
      s.headers.set(name, value);
    }
    return s.headers.has(":method") && s.headers.has(":path") && s.headers.has(":scheme");
  }

  private onReset(id: number, p: Uint8Array) {
    if (id === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (p.length !== 4) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "RST_STREAM not 4 octets");
    if (id > this.lastStream) {
      throw new H2Error(H2Code.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    }
    const s = this.streams.get(id);
    if (!s) return;
    this.resetStream(s, new DataView(p.buffer, p.byteOffset).getUint32(0), true);
  }

  private onSettings(flags: number, id: number, p: Uint8Array) {
    if (id !== 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) {
      if (p.length !== 0) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      return;
    }
    if (p.length % 6 !== 0) {
      throw new H2Error(H2Code.FRAME_SIZE_ERROR, "SETTINGS not 6-octet entries");
    }
    const v = new DataView(p.buffer, p.byteOffset, p.length);
    for (let i = 0; i < p.length; i += 6) {
      const key = v.getUint16(i);
      const value = v.getUint32(i + 2);
      switch (key) {
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new H2Error(H2Code.PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1");
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) {
            throw new H2Error(H2Code.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE over 2^31-1");
          }
          const delta = value - this.peerWindow;
          this.peerWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) {
              throw new H2Error(H2Code.FLOW_CONTROL_ERROR, "a stream's window over 2^31-1");
            }
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME || value > 2 ** 24 - 1) {
            throw new H2Error(H2Code.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
          }
          this.peerMaxFrame = value;
          break;
          // HEADER_TABLE_SIZE: our encoder keeps no dynamic table. The rest are
          // limits on what we send that a server never reaches (or unknown: ignored).
      }
    }
    this.emit(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.pumpAll();
  }

  private onWindowUpdate(id: number, p: Uint8Array) {
    if (p.length !== 4) throw new H2Error(H2Code.FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 octets");
    const inc = new DataView(p.buffer, p.byteOffset).getUint32(0) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) throw new H2Error(H2Code.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.connSendWindow += inc;
      if (this.connSendWindow > MAX_WINDOW) {
        throw new H2Error(H2Code.FLOW_CONTROL_ERROR, "connection window over 2^31-1");
      }
      this.pumpAll();
      return;
    }
    if (id > this.lastStream) {
      throw new H2Error(H2Code.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    }
    const s = this.streams.get(id);
    if (!s) return;
    if (inc === 0) return s.reset(H2Code.PROTOCOL_ERROR);
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) return s.reset(H2Code.FLOW_CONTROL_ERROR);
    this.pump(s);
  }

  // ---- output ----

  /** HEADERS (and CONTINUATION) for `headers`, split at the peer's frame size. */
  sendHeaders(id: number, headers: Header[], end: boolean): void {
    const block = hpackEncode(headers);
    const max = this.peerMaxFrame;
    const endFlag = end ? Flag.END_STREAM : 0;
    if (block.length <= max) {
      this.emit(frame(FrameType.HEADERS, Flag.END_HEADERS | endFlag, id, block));
      return;
    }
    this.emit(frame(FrameType.HEADERS, endFlag, id, block.subarray(0, max)));
    for (let at = max; at < block.length; at += max) {
      const last = at + max >= block.length;
      this.emit(
        frame(
          FrameType.CONTINUATION,
          last ? Flag.END_HEADERS : 0,
          id,
          block.subarray(at, at + max),
        ),
      );
    }
  }

  /** Sends what `s` has queued, as far as the windows allow. */
  pump(s: ServerStream): void {
    if (this.dead || s.closed) return;
    while (s.queue.length > 0) {
      const room = Math.min(this.connSendWindow, s.sendWindow, this.peerMaxFrame);
      if (room <= 0) {
        this.blocked.add(s);
        this.scheduleFlush();
        return;
      }
      const head = s.queue[0];
      const n = Math.min(room, head.length);
      const chunk = head.subarray(0, n);
      if (n === head.length) s.queue.shift();
      else s.queue[0] = head.subarray(n);
      s.queued -= n;
      this.connSendWindow -= n;
      s.sendWindow -= n;
      this.emit(frame(FrameType.DATA, 0, s.id, chunk));
    }
    this.blocked.delete(s);
    if (s.trailers !== undefined && !s.localEnded) {
      if (s.trailers === null) this.emit(frame(FrameType.DATA, Flag.END_STREAM, s.id));
      else this.sendHeaders(s.id, s.trailers, true);
      s.localEnded = true;
      this.localEnd(s);
    }
    this.scheduleFlush();
  }

  private pumpAll() {
    for (const s of [...this.blocked]) {
      if (this.connSendWindow <= 0) return;
      this.pump(s);
    }
  }

  /** We ended `s`: closed if the peer has too; if not, told to stop sending (§8.1). */
  localEnd(s: ServerStream): void {
    if (!s.remoteEnded) {
      this.emit(frame(FrameType.RST_STREAM, 0, s.id, u32(H2Code.NO_ERROR)));
      s.remoteEnded = true;
    }
    this.maybeClose(s);
  }

  resetStream(s: ServerStream, code: number, byPeer: boolean): void {
    if (s.closed) return;
    if (!byPeer) this.emit(frame(FrameType.RST_STREAM, 0, s.id, u32(code)));
    s.closed = true;
    s.queue = [];
    this.blocked.delete(s);
    this.streams.delete(s.id);
    s.onreset(code);
    this.afterClose();
  }

  private maybeClose(s: ServerStream) {
    if (s.closed || !s.remoteEnded || !s.localEnded) return;
    s.closed = true;
    this.streams.delete(s.id);
    this.afterClose();
  }

  private afterClose() {
    this.scheduleFlush();
    if (this.goingAway && this.streams.size === 0) {
      this.flush();
      this.destroy();
    }
  }

  private emit(b: Uint8Array) {
    if (this.dead) return;
    this.out.push(b);
    this.scheduleFlush();
  }

  private scheduleFlush() {
    if (this.flushScheduled || this.out.length === 0) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Writes what is queued, in one piece. */
  flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0) return;
    const parts = this.out;
    this.out = [];
    this.options.write(parts.length === 1 ? parts[0] : concat(parts));
  }
}

function concat(parts: Uint8Array[], size = parts.reduce((n, p) => n + p.length, 0)): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
