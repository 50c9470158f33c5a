/** The HTTP/2 connection fed bytes: preface, SETTINGS, PING, flow control, bounds, malformed frames. */
import assert from "node:assert/strict";
import {
  Flag,
  frame,
  FrameType,
  H2Code,
  PREFACE,
  Setting,
  settingsPayload,
  u32,
} from "../../net/h2/frames.ts";
import type { ServerStream } from "./connection.ts";
import { hpackEncode } from "../../net/h2/hpack.ts";
import { type Frame, goawayCode, TestPeer, u32At } from "./_test_peer.ts";

const of = (frames: Frame[], type: number) => frames.filter((f) => f.type === type);

Deno.test("Connection: SETTINGS both ways with ACKs, the window raised, PING answered", async () => {
  const p = new TestPeer(() => {}).start([[Setting.MAX_FRAME_SIZE, 32768]]);
  const out = await p.read();
  const settings = of(out, FrameType.SETTINGS);
  assert.equal(settings.length, 2);
  assert.equal(settings[0].flags, 0); // ours
  assert.equal(settings[1].flags, Flag.ACK); // theirs acknowledged
  const wu = of(out, FrameType.WINDOW_UPDATE);
  assert.equal(wu[0].stream, 0);
  assert.equal(u32At(wu[0]), 4 * 1024 * 1024 - 65535);
  p.frame(FrameType.PING, 0, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  p.frame(FrameType.PING, Flag.ACK, 0, new Uint8Array(8)); // an ACK is not answered
  const pong = await p.read();
  assert.equal(pong.length, 1);
  assert.equal(pong[0].type, FrameType.PING);
  assert.equal(pong[0].flags, Flag.ACK);
  assert.deepEqual([...pong[0].payload], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(p.closed, false);
});

Deno.test("Connection: a request split over HEADERS and CONTINUATION, bytes fed one at a time", async () => {
  let got: ServerStream | undefined;
  const body: number[] = [];
  let ended = false;
  const p = new TestPeer((s) => {
    got = s;
    s.ondata = (c, end) => {
      body.push(...c);
      ended ||= end;
    };
  });
  const block = hpackEncode([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", "/a/b"],
    ["x-long", "v".repeat(100)],
  ]);
  const all = new Uint8Array([
    ...PREFACE,
    ...frame(FrameType.SETTINGS, 0, 0),
    ...frame(FrameType.HEADERS, 0, 1, block.subarray(0, 10)),
    ...frame(FrameType.CONTINUATION, 0, 1, block.subarray(10, 50)),
    ...frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(50)),
    ...frame(FrameType.DATA, Flag.PADDED, 1, new Uint8Array([3, 9, 8, 0, 0, 0])),
    ...frame(FrameType.DATA, Flag.END_STREAM, 1, new Uint8Array([7])),
  ]);
  for (const b of all) p.send(new Uint8Array([b]));
  assert.equal(got?.headers.get(":path"), "/a/b");
  assert.equal(got?.headers.get("x-long"), "v".repeat(100));
  assert.deepEqual(body, [9, 8, 7]);
  assert.ok(ended);
  got!.respond([[":status", "200"]]);
  got!.end([["grpc-status", "0"]]);
  const out = await p.read();
  const hs = of(out, FrameType.HEADERS);
  assert.equal(hs.length, 2);
  assert.equal(p.headers(hs[0]).get(":status"), "200");
  assert.equal(hs[1].flags & Flag.END_STREAM, Flag.END_STREAM);
  assert.equal(p.conn.activeStreams, 0);
});

/** A peer with one open stream that the test answers with `size` octets of DATA. */
async function bigAnswer(size: number, settings: [number, number][] = []) {
  let stream: ServerStream | undefined;
  const p = new TestPeer((s) => stream = s).start(settings);
  p.request(1, "/x", [], true);
  await p.read();
  stream!.respond([[":status", "200"]]);
  stream!.write(new Uint8Array(size).fill(7));
  stream!.end([["grpc-status", "0"]]);
  return { p, stream: stream! };
}

const dataBytes = (frames: Frame[]) =>
  of(frames, FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);

Deno.test("Connection: DATA stays within the peer's 64 KiB windows and frame size, resumes on WINDOW_UPDATE", async () => {
  const { p } = await bigAnswer(200_000);
  let out = await p.read();
  assert.equal(dataBytes(out), 65535);
  assert.ok(of(out, FrameType.DATA).every((f) => f.payload.length <= 16384));
  assert.equal(of(out, FrameType.HEADERS).length, 1); // no trailers yet
  // The stream's window alone is not enough: the connection's is spent too.
  p.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(100_000));
  assert.equal(dataBytes(await p.read()), 0);
  p.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(50_000));
  assert.equal(dataBytes(await p.read()), 50_000);
  p.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(1_000_000));
  out = await p.read();
  assert.equal(dataBytes(out), 100_000 - 50_000 + 0); // the stream's window: 165535 - 115535
  p.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(1_000_000));
  out = await p.read();
  assert.equal(dataBytes(out), 200_000 - 165_535);
  const trailers = of(out, FrameType.HEADERS);
  assert.equal(trailers.length, 1);
  assert.equal(trailers[0].flags & Flag.END_STREAM, Flag.END_STREAM);
  assert.equal(p.closed, false);
});

Deno.test("Connection: the peer's INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE are honoured, also when changed mid-stream", async () => {
  const { p } = await bigAnswer(100_000, [[Setting.INITIAL_WINDOW_SIZE, 1000], [
    Setting.MAX_FRAME_SIZE,
    65536,
  ]]);
  let out = await p.read();
  assert.equal(dataBytes(out), 1000);
  // A larger initial window: the open stream's window grows by the difference.
  p.frame(FrameType.SETTINGS, 0, 0, settingsPayload([[Setting.INITIAL_WINDOW_SIZE, 41_000]]));
  out = await p.read();
  assert.equal(dataBytes(out), 40_000);
  assert.ok(of(out, FrameType.DATA).some((f) => f.payload.length > 16384)); // frames up to 64 KiB
  p.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(100_000));
  out = await p.read();
  assert.equal(dataBytes(out), 65535 - 41_000); // now the connection's window limits
});

Deno.test("Connection: received DATA is credited back with WINDOW_UPDATE; overrunning a stream's window resets it", async () => {
  const p = new TestPeer((s) => s.ondata = () => {}, {
    streamWindow: 32768,
    connectionWindow: 65535,
  }).start();
  p.request(1, "/x");
  await p.read();
  for (let i = 0; i < 2; i++) p.frame(FrameType.DATA, 0, 1, new Uint8Array(16384));
  const wu = of(await p.read(), FrameType.WINDOW_UPDATE);
  // The stream's at half its window (each frame), the connection's at half of its own.
  assert.deepEqual(wu.map((f) => [f.stream, u32At(f)]), [[1, 16384], [0, 32768], [1, 16384]]);
  const q = new TestPeer((s) => s.ondata = () => {}, { streamWindow: 1000 }).start();
  q.request(1, "/x");
  q.frame(FrameType.DATA, 0, 1, new Uint8Array(1001));
  const rst = of(await q.read(), FrameType.RST_STREAM);
  assert.deepEqual(rst.map((f) => [f.stream, u32At(f)]), [[1, H2Code.FLOW_CONTROL_ERROR]]);
  assert.equal(q.closed, false);
});

Deno.test("Connection: streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused", async () => {
  const p = new TestPeer(() => {}, { maxConcurrentStreams: 2 }).start();
  p.request(1, "/x");
  p.request(3, "/x");
  p.request(5, "/x");
  const rst = of(await p.read(), FrameType.RST_STREAM);
  assert.deepEqual(rst.map((f) => [f.stream, u32At(f)]), [[5, H2Code.REFUSED_STREAM]]);
  assert.equal(p.conn.activeStreams, 2);
  p.frame(FrameType.RST_STREAM, 0, 1, u32(H2Code.CANCEL)); // one ends: room for another
  p.request(7, "/x");
  assert.equal(of(await p.read(), FrameType.RST_STREAM).length, 0);
  assert.equal(p.conn.activeStreams, 2);
});

Deno.test("Connection: a header list over SETTINGS_MAX_HEADER_LIST_SIZE is answered 431", async () => {
  let streams = 0;
  const p = new TestPeer(() => streams++, { maxHeaderListSize: 1024 }).start();
  p.request(1, "/x", [["x-big", "a".repeat(1500)]], true);
  const hs = of(await p.read(), FrameType.HEADERS);
  assert.equal(p.headers(hs[0]).get(":status"), "431");
  assert.equal(streams, 0);
  p.request(3, "/x", [], true); // the connection still serves
  assert.equal(streams, 1);
  assert.equal(p.closed, false);
});

Deno.test("Connection: peer RST_STREAM tells the stream; GOAWAY on shutdown closes once streams end", async () => {
  let code = -1;
  let second: ServerStream | undefined;
  const p = new TestPeer((s) => {
    if (s.id === 1) s.onreset = (c) => code = c;
    else second = s;
  }).start();
  p.request(1, "/x");
  p.request(3, "/x", [], true);
  p.frame(FrameType.RST_STREAM, 0, 1, u32(H2Code.CANCEL));
  assert.equal(code, H2Code.CANCEL);
  await p.read();
  p.conn.shutdown();
  const ga = of(await p.read(), FrameType.GOAWAY);
  assert.equal(goawayCode(ga[0]), H2Code.NO_ERROR);
  assert.equal(u32At(ga[0]), 3); // last stream taken
  assert.equal(p.closed, false); // stream 3 still open
  p.request(5, "/x", [], true); // after GOAWAY: ignored
  assert.equal(p.conn.activeStreams, 1);
  second!.respond([[":status", "200"]], true);
  await p.read();
  assert.ok(p.closed);
});

/** Each malformed input closes the connection with GOAWAY and the code the RFC names. */
const MALFORMED: [string, number, (p: TestPeer) => void][] = [
  [
    "a bad preface",
    H2Code.PROTOCOL_ERROR,
    (p) => p.send(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n\r\n\r\n")),
  ],
  ["a first frame not SETTINGS", H2Code.PROTOCOL_ERROR, (p) => {
    p.send(PREFACE);
    p.frame(FrameType.PING, 0, 0, new Uint8Array(8));
  }],
  ["a frame over 16384 octets", H2Code.FRAME_SIZE_ERROR, (p) => {
    p.start();
    p.frame(FrameType.DATA, 0, 1, new Uint8Array(16385));
  }],
  ["a PING of 7 octets", H2Code.FRAME_SIZE_ERROR, (p) => {
    p.start();
    p.frame(FrameType.PING, 0, 0, new Uint8Array(7));
  }],
  ["SETTINGS not in 6-octet entries", H2Code.FRAME_SIZE_ERROR, (p) => {
    p.start();
    p.frame(FrameType.SETTINGS, 0, 0, new Uint8Array(5));
  }],
  ["SETTINGS on a stream", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.SETTINGS, 0, 1);
  }],
  [
    "MAX_FRAME_SIZE under 16384",
    H2Code.PROTOCOL_ERROR,
    (p) => p.start([[Setting.MAX_FRAME_SIZE, 100]]),
  ],
  [
    "INITIAL_WINDOW_SIZE over 2^31-1",
    H2Code.FLOW_CONTROL_ERROR,
    (p) => p.start([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]]),
  ],
  ["HEADERS on stream 0", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.request(0, "/x");
  }],
  ["HEADERS on an even stream", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.request(2, "/x");
  }],
  ["a stream id going down", H2Code.STREAM_CLOSED, (p) => {
    p.start();
    p.request(5, "/x", [], true);
    p.request(3, "/x", [], true);
  }],
  ["a header block interrupted", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.HEADERS, 0, 1, hpackEncode([[":method", "POST"]]));
    p.frame(FrameType.PING, 0, 0, new Uint8Array(8));
  }],
  ["CONTINUATION without HEADERS", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, new Uint8Array([0x82]));
  }],
  ["an undecodable header block", H2Code.COMPRESSION_ERROR, (p) => {
    p.start();
    p.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, new Uint8Array([0x80]));
  }],
  ["endless CONTINUATION", H2Code.ENHANCE_YOUR_CALM, (p) => {
    p.start();
    p.frame(FrameType.HEADERS, 0, 1, new Uint8Array(16384));
    for (let i = 0; i < 20; i++) p.frame(FrameType.CONTINUATION, 0, 1, new Uint8Array(16384));
  }],
  ["padding longer than the frame", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.request(1, "/x");
    p.frame(FrameType.DATA, Flag.PADDED, 1, new Uint8Array([10, 1, 2]));
  }],
  ["DATA on an idle stream", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.DATA, 0, 1, new Uint8Array(1));
  }],
  ["DATA on stream 0", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.DATA, 0, 0, new Uint8Array(1));
  }],
  ["WINDOW_UPDATE of 0 on the connection", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0));
  }],
  ["the connection's window over 2^31-1", H2Code.FLOW_CONTROL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1));
  }],
  ["RST_STREAM on an idle stream", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.RST_STREAM, 0, 9, u32(0));
  }],
  ["PUSH_PROMISE from the client", H2Code.PROTOCOL_ERROR, (p) => {
    p.start();
    p.frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, u32(2));
  }],
];

for (const [what, code, feed] of MALFORMED) {
  Deno.test(`Connection: ${what} closes the connection with GOAWAY ${code}`, async () => {
    const p = new TestPeer(() => {});
    feed(p);
    const out = await p.read();
    const ga = of(out, FrameType.GOAWAY);
    assert.equal(ga.length, 1, `GOAWAY in ${JSON.stringify(out.map((f) => f.type))}`);
    assert.equal(goawayCode(ga[0]), code);
    assert.ok(p.closed);
    p.frame(FrameType.PING, 0, 0, new Uint8Array(8)); // nothing more is read
    assert.equal((await p.read()).length, 0);
  });
}

Deno.test("Connection: unknown frame types and PRIORITY are ignored; malformed requests are reset", async () => {
  let streams = 0;
  const p = new TestPeer(() => streams++).start();
  p.frame(0x42, 0, 0, new Uint8Array(3));
  p.frame(FrameType.PRIORITY, 0, 1, new Uint8Array(5));
  // Upper-case name, and a connection header: malformed (stream error), the connection lives.
  p.frame(
    FrameType.HEADERS,
    Flag.END_HEADERS,
    3,
    hpackEncode([[":method", "POST"], [":path", "/"], [":scheme", "http"], ["X-Up", "1"]]),
  );
  p.frame(
    FrameType.HEADERS,
    Flag.END_HEADERS,
    5,
    hpackEncode([[":method", "POST"], [":path", "/"], [":scheme", "http"], [
      "connection",
      "close",
    ]]),
  );
  p.frame(
    FrameType.HEADERS,
    Flag.END_HEADERS,
    7,
    hpackEncode([[":method", "POST"], [":scheme", "http"]]),
  );
  const rst = of(await p.read(), FrameType.RST_STREAM);
  assert.deepEqual(rst.map((f) => [f.stream, u32At(f)]), [[3, 1], [5, 1], [7, 1]]);
  assert.equal(streams, 0);
  assert.equal(p.closed, false);
});
