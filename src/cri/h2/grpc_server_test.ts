/** gRPC over the HTTP/2 connection, fed bytes: answers, statuses, limits, deadlines, cancel. */
import assert from "node:assert/strict";
import { Flag, FrameType, H2Code, u32 } from "../../net/h2/frames.ts";
import {
  type GrpcMethod,
  lengthPrefixed,
  parseTimeout,
  percentEncode,
  serveGrpcStream,
  Status,
} from "./grpc_server.ts";
import { type Frame, TestPeer } from "./_test_peer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function server(methods: Record<string, GrpcMethod>, max = 1024) {
  const done: [string, Status][] = [];
  const p = new TestPeer((s) =>
    serveGrpcStream(s, {
      lookup: (path) => methods[path],
      maxMessageBytes: max,
      onDone: (path, code) => done.push([path, code]),
    })
  ).start();
  return { p, done };
}

/** The answer on `stream`: headers, messages and the status (from trailers or trailers-only headers). */
function answer(p: TestPeer, frames: Frame[], stream: number) {
  const mine = frames.filter((f) => f.stream === stream);
  const hs = mine.filter((f) => f.type === FrameType.HEADERS).map((f) => p.headers(f));
  const data = mine.filter((f) => f.type === FrameType.DATA).flatMap((f) => [...f.payload]);
  const messages: string[] = [];
  for (let i = 0; i < data.length;) {
    const len = (data[i + 1] << 24) | (data[i + 2] << 16) | (data[i + 3] << 8) | data[i + 4];
    messages.push(dec.decode(new Uint8Array(data.slice(i + 5, i + 5 + len))));
    i += 5 + len;
  }
  const last = hs.at(-1);
  return {
    headers: hs[0],
    messages,
    status: last?.get("grpc-status"),
    message: last?.get("grpc-message"),
    ended: mine.some((f) => f.flags & Flag.END_STREAM && f.type !== FrameType.RST_STREAM),
  };
}

const echo: GrpcMethod = {
  streaming: false,
  handle: (b) => Promise.resolve(enc.encode(`hello ${dec.decode(b)}`)),
};

Deno.test("gRPC: a unary call is answered with headers, one message and grpc-status 0", async () => {
  const { p, done } = server({ "/s/Echo": echo });
  p.request(1, "/s/Echo");
  p.frame(FrameType.DATA, Flag.END_STREAM, 1, lengthPrefixed(enc.encode("you")));
  const a = answer(p, await p.read(), 1);
  assert.equal(a.headers.get(":status"), "200");
  assert.equal(a.headers.get("content-type"), "application/grpc");
  assert.deepEqual(a.messages, ["hello you"]);
  assert.equal(a.status, "0");
  assert.ok(a.ended);
  assert.deepEqual(done, [["/s/Echo", Status.OK]]);
});

Deno.test("gRPC: unknown method UNIMPLEMENTED, compressed UNIMPLEMENTED, oversized RESOURCE_EXHAUSTED", async () => {
  const { p } = server({ "/s/Echo": echo }, 100);
  p.request(1, "/s/Nope");
  p.frame(FrameType.DATA, Flag.END_STREAM, 1, lengthPrefixed(new Uint8Array(0)));
  p.request(3, "/s/Echo", [["grpc-encoding", "gzip"]]);
  const compressed = lengthPrefixed(enc.encode("zz"));
  compressed[0] = 1;
  p.frame(FrameType.DATA, Flag.END_STREAM, 3, compressed);
  p.request(5, "/s/Echo");
  p.frame(FrameType.DATA, 0, 5, lengthPrefixed(new Uint8Array(101)).subarray(0, 50));
  const out = await p.read();
  assert.equal(answer(p, out, 1).status, String(Status.UNIMPLEMENTED));
  assert.equal(answer(p, out, 3).status, String(Status.UNIMPLEMENTED));
  const big = answer(p, out, 5);
  assert.equal(big.status, String(Status.RESOURCE_EXHAUSTED));
  // The client had not ended its side: it is told to stop sending (RST_STREAM NO_ERROR).
  const rst = out.find((f) => f.stream === 5 && f.type === FrameType.RST_STREAM);
  assert.equal(new DataView(rst!.payload.buffer).getUint32(0), H2Code.NO_ERROR);
  p.frame(FrameType.DATA, Flag.END_STREAM, 5, new Uint8Array(51)); // the rest: dropped
  p.request(7, "/s/Echo");
  p.frame(FrameType.DATA, Flag.END_STREAM, 7, lengthPrefixed(enc.encode("again")));
  assert.deepEqual(answer(p, await p.read(), 7).messages, ["hello again"]);
});

Deno.test("gRPC: a handler's status and percent-encoded message go in trailers-only headers", async () => {
  const { p } = server({
    "/s/Fail": {
      streaming: false,
      handle: () => Promise.reject({ code: Status.NOT_FOUND, details: "no pod «x» 100%\n" }),
    },
    "/s/Throw": { streaming: false, handle: () => Promise.reject(new Error("boom")) },
  });
  p.request(1, "/s/Fail");
  p.frame(FrameType.DATA, Flag.END_STREAM, 1, lengthPrefixed(new Uint8Array(0)));
  p.request(3, "/s/Throw", [], false);
  p.frame(FrameType.DATA, Flag.END_STREAM, 3, lengthPrefixed(new Uint8Array(0)));
  const out = await p.read();
  const a = answer(p, out, 1);
  assert.equal(a.status, String(Status.NOT_FOUND));
  assert.equal(a.message, "no pod %C2%ABx%C2%BB 100%25%0A");
  assert.equal(a.headers.get(":status"), "200"); // one HEADERS frame: trailers-only
  assert.equal(out.filter((f) => f.stream === 1).length, 1);
  assert.equal(answer(p, out, 3).status, String(Status.INTERNAL));
});

Deno.test("gRPC: grpc-timeout cancels the call with DEADLINE_EXCEEDED; RST_STREAM cancels too", async () => {
  const signals: AbortSignal[] = [];
  const slow: GrpcMethod = {
    streaming: false,
    handle: (_b, ctx) => {
      signals.push(ctx.signal);
      return new Promise((r) => ctx.signal.addEventListener("abort", () => r(undefined)));
    },
  };
  const { p, done } = server({ "/s/Slow": slow });
  p.request(1, "/s/Slow", [["grpc-timeout", "20m"]]);
  p.frame(FrameType.DATA, Flag.END_STREAM, 1, lengthPrefixed(new Uint8Array(0)));
  p.request(3, "/s/Slow");
  p.frame(FrameType.DATA, Flag.END_STREAM, 3, lengthPrefixed(new Uint8Array(0)));
  await new Promise((r) => setTimeout(r, 60));
  const out = await p.read();
  assert.equal(answer(p, out, 1).status, String(Status.DEADLINE_EXCEEDED));
  assert.ok(signals[0].aborted);
  assert.equal(signals[1].aborted, false);
  p.frame(FrameType.RST_STREAM, 0, 3, u32(H2Code.CANCEL));
  assert.ok(signals[1].aborted);
  assert.deepEqual(done, [["/s/Slow", Status.DEADLINE_EXCEEDED], ["/s/Slow", Status.CANCELLED]]);
});

Deno.test("gRPC: a server-streaming call sends headers, each message, then trailers", async () => {
  let release = () => {};
  const { p } = server({
    "/s/Watch": {
      streaming: true,
      handle: async (_b, ctx) => {
        ctx.send(enc.encode("one"));
        await new Promise<void>((r) => release = r);
        ctx.send(enc.encode("two"));
      },
    },
  });
  p.request(1, "/s/Watch");
  p.frame(FrameType.DATA, Flag.END_STREAM, 1, lengthPrefixed(new Uint8Array(0)));
  let a = answer(p, await p.read(), 1);
  assert.deepEqual(a.messages, ["one"]);
  assert.equal(a.ended, false);
  release();
  a = answer(p, await p.read(), 1);
  assert.deepEqual(a.messages, ["two"]);
  assert.equal(a.status, "0");
  assert.ok(a.ended);
});

Deno.test("gRPC: not POST is 405, not application/grpc is 415", async () => {
  const { p } = server({ "/s/Echo": echo });
  p.request(1, "/s/Echo", [["content-type", "text/plain"]], true);
  const out = await p.read();
  assert.equal(answer(p, out, 1).headers.get(":status"), "415");
});

Deno.test("parseTimeout() and percentEncode()", () => {
  assert.equal(parseTimeout("2S"), 2000);
  assert.equal(parseTimeout("1H"), 3_600_000);
  assert.equal(parseTimeout("500u"), 0.5);
  assert.equal(parseTimeout("123456789S"), undefined); // 9 digits
  assert.equal(parseTimeout("5s"), undefined);
  assert.equal(percentEncode("a b%c"), "a b%25c");
});
