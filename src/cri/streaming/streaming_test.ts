import assert from "node:assert/strict";
import { ChunkQueue, concat, connDuplex, type Duplex, ExactReader } from "./bytes.ts";
import {
  controlFrame,
  dataFrame,
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderZ,
  spdyDictionary,
  SpdySession,
  type SpdyStream,
  u32s,
} from "./spdy.ts";
import { acceptKey, encodeFrame, OP, WebSocketConn } from "./websocket.ts";
import {
  type ProcessIO,
  ResizeDecoder,
  statusJson,
  type StreamBackend,
  StreamError,
  StreamingServer,
} from "./server.ts";

/** Two Duplex ends joined in memory. */
function pipePair(): [Duplex, Duplex] {
  const a = new ChunkQueue(), b = new ChunkQueue();
  const end = (q: ChunkQueue, other: ChunkQueue): Duplex => ({
    read: () => q.next(),
    write: (
      x,
    ) => (other.ended
      ? Promise.reject(new Error("closed"))
      : (other.push(x.slice()), Promise.resolve())),
    close: () => {
      q.end();
      other.end();
    },
  });
  return [end(a, b), end(b, a)];
}

/** Reads SPDY frames as a client would. */
class FrameReader {
  readonly r: ExactReader;
  readonly inflate = new HeaderZ("inflate", spdyDictionary());
  constructor(d: Duplex) {
    this.r = new ExactReader(d);
  }
  async next(): Promise<
    { control: boolean; type: number; id: number; flags: number; payload: Uint8Array } | null
  > {
    const h = await this.r.take(8);
    if (!h) return null;
    const v = new DataView(h.buffer, h.byteOffset, 8);
    const len = v.getUint32(4) & 0xffffff;
    const payload = (await this.r.take(len))!;
    const control = (h[0] & 0x80) !== 0;
    return {
      control,
      type: control ? v.getUint16(2) : 0,
      id: control
        ? (len >= 4
          ? new DataView(payload.buffer, payload.byteOffset).getUint32(0) & 0x7fffffff
          : 0)
        : v.getUint32(0),
      flags: h[4],
      payload,
    };
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function synStream(z: HeaderZ, id: number, headers: Record<string, string>, flags = 0) {
  const block = await z.run(
    encodeHeaderBlock(new Map(Object.entries(headers).map(([k, v]) => [k, [v]]))),
  );
  return controlFrame(1, flags, concat([u32s(id, 0), new Uint8Array([0, 0]), block]));
}

Deno.test("the SPDY/3 dictionary has the draft's 1423 bytes, words length-prefixed", () => {
  const d = spdyDictionary();
  assert.equal(d.length, 1423);
  assert.deepEqual([...d.subarray(0, 11)], [0, 0, 0, 7, ...enc.encode("options")]);
  assert.equal(dec.decode(d.subarray(d.length - 6)), "enq=0.");
});

Deno.test("header blocks round-trip; upper-case names and truncation are refused", () => {
  const h = new Map([["streamtype", ["stdout"]], ["port", ["80", "81"]]]);
  assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock(h)), h);
  const bad = encodeHeaderBlock(new Map([["x", ["y"]]]));
  assert.throws(() => decodeHeaderBlock(bad.subarray(0, bad.length - 1)), /truncated/);
  const upper = bad.slice();
  upper[8] = "X".charCodeAt(0);
  assert.throws(() => decodeHeaderBlock(upper), /bad header name/);
});

Deno.test("a SPDY session replies to streams, carries data both ways, answers PING, ends at GOAWAY", async () => {
  const [client, server] = pipePair();
  const seen: SpdyStream[] = [];
  const session = new SpdySession(server, (s) => {
    seen.push(s);
    void (async () => {
      const got: Uint8Array[] = [];
      for (let b = await s.incoming.next(); b; b = await s.incoming.next()) got.push(b);
      await s.write(enc.encode(`echo:${dec.decode(concat(got))}`));
      await s.close();
    })().catch(() => {}); // streams still open when the session ends cannot write
  });
  const serving = session.serve();
  const z = new HeaderZ("deflate", spdyDictionary());
  const frames = new FrameReader(client);
  await client.write(await synStream(z, 1, { streamtype: "stdin" }));
  await client.write(await synStream(z, 3, { streamtype: "stdout" }));
  await client.write(dataFrame(1, 0, enc.encode("hel")));
  await client.write(dataFrame(1, 1, enc.encode("lo")));
  await client.write(controlFrame(6, 0, u32s(7)));
  const replies: number[] = [];
  let echoed = "";
  let pinged = false;
  while (!echoed || !pinged || replies.length < 2) {
    const f = (await frames.next())!;
    if (f.control && f.type === 2) {
      replies.push(f.id);
      // Each reply's header block continues the server's one zlib stream.
      assert.deepEqual(
        decodeHeaderBlock(await frames.inflate.run(f.payload.subarray(4))),
        new Map(),
      );
    } else if (f.control && f.type === 6) {
      pinged = new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) === 7;
    } else if (!f.control && f.id === 1 && f.payload.length > 0) echoed = dec.decode(f.payload);
  }
  assert.deepEqual(replies, [1, 3]);
  assert.equal(echoed, "echo:hello");
  assert.deepEqual(seen.map((s) => s.header("streamtype")), ["stdin", "stdout"]);
  await client.write(controlFrame(7, 0, u32s(0, 0)));
  await serving;
  assert.equal(session.closed, true);
  assert.equal(seen[1].incoming.ended, true);
  z.close();
  frames.inflate.close();
});

Deno.test("a SPDY stream id that is even or goes backwards is reset; an oversized control frame ends the session", async () => {
  const [client, server] = pipePair();
  const opened: number[] = [];
  const session = new SpdySession(server, (s) => opened.push(s.id));
  const serving = session.serve();
  const z = new HeaderZ("deflate", spdyDictionary());
  const frames = new FrameReader(client);
  await client.write(await synStream(z, 5, { streamtype: "error" }));
  await client.write(await synStream(z, 2, { streamtype: "error" }));
  await client.write(await synStream(z, 3, { streamtype: "error" }));
  const resets: number[] = [];
  while (resets.length < 2) {
    const f = (await frames.next())!;
    if (f.control && f.type === 3) resets.push(f.id);
  }
  assert.deepEqual(resets, [2, 3]);
  assert.deepEqual(opened, [5]);
  const big = new Uint8Array(8);
  new DataView(big.buffer).setUint32(0, 0x80030001);
  new DataView(big.buffer).setUint32(4, 1 << 20);
  await client.write(big);
  await serving;
  assert.equal(session.closed, true);
  z.close();
  frames.inflate.close();
});

function masked(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const mask = new Uint8Array([1, 2, 3, 4]);
  const head = payload.length < 126 ? [(fin ? 0x80 : 0) | opcode, 0x80 | payload.length] : [
    (fin ? 0x80 : 0) | opcode,
    0x80 | 126,
    payload.length >> 8,
    payload.length & 255,
  ];
  return concat([new Uint8Array(head), mask, payload.map((b, i) => b ^ mask[i & 3])]);
}

Deno.test("WebSocket: RFC 6455's accept key, masked and fragmented messages, ping answered, close", async () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const [client, server] = pipePair();
  const ws = new WebSocketConn(server);
  const big = new Uint8Array(300).fill(7);
  await client.write(concat([
    masked(OP.BINARY, enc.encode("ab"), false),
    masked(OP.PING, enc.encode("p")),
    masked(OP.CONT, enc.encode("cd")),
    masked(OP.BINARY, big),
    masked(OP.CLOSE, new Uint8Array([3, 232])),
  ]));
  const m1 = (await ws.receive())!;
  assert.equal(dec.decode(m1.data), "abcd");
  assert.equal(m1.binary, true);
  assert.deepEqual((await ws.receive())!.data, big);
  assert.equal(await ws.receive(), null);
  const r = new ExactReader(client);
  assert.deepEqual(await r.take(3), encodeFrame(OP.PONG, enc.encode("p")));
  assert.deepEqual([...(await r.take(2))!], [0x80 | OP.CLOSE, 2]);
});

Deno.test("WebSocket: an unmasked client frame is a protocol error (close 1002)", async () => {
  const [client, server] = pipePair();
  const ws = new WebSocketConn(server);
  await client.write(encodeFrame(OP.BINARY, enc.encode("x")));
  assert.equal(await ws.receive(), null);
  const f = (await new ExactReader(client).take(4))!;
  assert.deepEqual([...f], [0x80 | OP.CLOSE, 2, 0x03, 0xea]);
});

Deno.test("terminal sizes are read from concatenated JSON, bad ones skipped", () => {
  const got: unknown[] = [];
  const d = new ResizeDecoder();
  d.push(enc.encode('{"Width":80,"Height":24}{"Wid'), (s) => got.push(s));
  d.push(enc.encode('th":100,"Height":30}{"Width":-1,"Height":2}'), (s) => got.push(s));
  assert.deepEqual(got, [{ width: 80, height: 24 }, { width: 100, height: 30 }]);
});

Deno.test("the outcome is a metav1.Status: Success, or NonZeroExitCode with the code as a cause", () => {
  assert.deepEqual(JSON.parse(statusJson()), { metadata: {}, status: "Success" });
  const s = JSON.parse(statusJson(new StreamError("boom", "NonZeroExitCode", 3)));
  assert.equal(s.reason, "NonZeroExitCode");
  assert.deepEqual(s.details.causes, [{ reason: "ExitCode", message: "3" }]);
});

/** A backend whose exec echoes stdin to stdout upper-cased and exits with the command's length. */
const fakeBackend: StreamBackend = {
  async exec(p, io: ProcessIO) {
    await io.stdout?.(enc.encode(`ran ${p.cmd.join(" ")}\n`));
    if (io.stdin) {
      for (let b = await io.stdin.next(); b; b = await io.stdin.next()) {
        await io.stdout?.(enc.encode(dec.decode(b).toUpperCase()));
      }
    }
    await io.stderr?.(enc.encode("warn\n"));
    return p.cmd.length - 1;
  },
  attach: () => Promise.reject(new StreamError("no attach here")),
  dial: () => Promise.reject(new Error("no dialing here")),
};

async function request(url: string, headers: Record<string, string>, method = "POST") {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  const lines = [`${method} ${u.pathname} HTTP/1.1`, `Host: ${u.host}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  await conn.write(enc.encode(lines.join("\r\n") + "\r\n\r\n"));
  return conn;
}

async function readHead(conn: Deno.Conn): Promise<[string, Uint8Array]> {
  let text = "";
  let rest: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    const all = concat([rest, buf.subarray(0, n)]);
    const s = new TextDecoder("latin1").decode(all);
    const i = s.indexOf("\r\n\r\n");
    if (i >= 0) {
      text = s.slice(0, i + 4);
      rest = all.slice(i + 4);
    } else rest = all;
  }
  return [text, rest];
}

Deno.test("exec over SPDY: streams by streamtype, stdin to the process, a v4 status with the exit code", async () => {
  const server = StreamingServer.start(fakeBackend);
  try {
    const url = server.exec({
      containerId: "c",
      cmd: ["sh", "-c", "x"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    const conn = await request(url, {
      Connection: "Upgrade",
      Upgrade: "SPDY/3.1",
      "X-Stream-Protocol-Version": "v4.channel.k8s.io",
    });
    const [head, rest] = await readHead(conn);
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /X-Stream-Protocol-Version: v4\.channel\.k8s\.io/);
    const d = connDuplex(conn, rest);
    const z = new HeaderZ("deflate", spdyDictionary());
    const frames = new FrameReader(d);
    let id = 1;
    const ids: Record<string, number> = {};
    for (const t of ["error", "stdin", "stdout", "stderr"]) {
      ids[t] = id;
      await d.write(await synStream(z, id, { streamtype: t }));
      id += 2;
    }
    await d.write(dataFrame(ids.stdin, 1, enc.encode("abc")));
    const out: Record<number, string> = {};
    for (let f = await frames.next(); f; f = await frames.next()) {
      if (!f.control) out[f.id] = (out[f.id] ?? "") + dec.decode(f.payload);
      if (f.control && f.type === 7) break;
    }
    assert.equal(out[ids.stdout], "ran sh -c x\nABC");
    assert.equal(out[ids.stderr], "warn\n");
    const status = JSON.parse(out[ids.error]);
    assert.equal(status.reason, "NonZeroExitCode");
    assert.deepEqual(status.details.causes, [{ reason: "ExitCode", message: "2" }]);
    conn.close();
    z.close();
    frames.inflate.close();
    // A token is good once.
    const again = await request(url, { Connection: "Upgrade", Upgrade: "SPDY/3.1" });
    assert.match((await readHead(again))[0], /^HTTP\/1\.1 404 /);
    again.close();
  } finally {
    await server.close();
  }
});

Deno.test("exec over a WebSocket (v5): channels, the close signal ends stdin, status on channel 3", async () => {
  const server = StreamingServer.start(fakeBackend);
  try {
    const url = server.exec({
      containerId: "c",
      cmd: ["true"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: false,
    });
    const conn = await request(url, {
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io",
    }, "GET");
    const [head, rest] = await readHead(conn);
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
    assert.match(head, /Sec-WebSocket-Protocol: v5\.channel\.k8s\.io/);
    const d = connDuplex(conn, rest);
    await d.write(masked(OP.BINARY, new Uint8Array([0, ...enc.encode("hi")])));
    await d.write(masked(OP.BINARY, new Uint8Array([255, 0])));
    const r = new ExactReader(d);
    const msgs: [number, string][] = [];
    for (;;) {
      const h = (await r.take(2))!;
      const body = (await r.take(h[1] & 0x7f))!;
      if ((h[0] & 0x0f) === OP.CLOSE) break;
      msgs.push([body[0], dec.decode(body.subarray(1))]);
    }
    assert.deepEqual(msgs, [
      [1, ""],
      [1, "ran true\n"],
      [1, "HI"],
      [3, JSON.stringify({ metadata: {}, status: "Success" })],
    ]);
    conn.close();
  } finally {
    await server.close();
  }
});
