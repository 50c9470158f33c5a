/**
 * The streaming server's defences against connections that never show a
 * valid request (issue 29): the header deadline, the cap on waiting
 * connections, and the idle timeout of upgraded ones, with short limits.
 */
import assert from "node:assert/strict";
import { controlFrame, u32s } from "./spdy.ts";
import { type StreamBackend, STREAMING_LIMITS, StreamingServer } from "./server.ts";

const enc = new TextEncoder();

const backend: StreamBackend = {
  exec: () => Promise.resolve(0),
  attach: () => Promise.resolve(),
  dial: () => Promise.reject(new Error("no dialing here")),
};

function portOf(server: StreamingServer): number {
  return Number(new URL(server.address).port);
}

const connect = (server: StreamingServer) =>
  Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });

/** Follows `conn` until the server ends it (EOF or reset): `endedAfter` is then the ms it took. */
function follow(conn: Deno.Conn): { endedAfter?: number; ended: Promise<number> } {
  const t0 = Date.now();
  const f: { endedAfter?: number; ended: Promise<number> } = { ended: Promise.resolve(0) };
  f.ended = (async () => {
    const b = new Uint8Array(4096);
    try {
      while ((await conn.read(b)) !== null) { /* what the server says */ }
    } catch { /* reset, or closed here */ }
    return f.endedAfter = Date.now() - t0;
  })();
  return f;
}

/** The ms until the server ends `conn`, or "open" after `limitMs`. */
async function endsWithin(conn: Deno.Conn, limitMs: number): Promise<number | "open"> {
  const f = follow(conn);
  await Promise.race([f.ended, sleep(limitMs)]);
  return f.endedAfter ?? "open";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A request head for `url` asking for SPDY/3.1 (exec's v4 protocol). */
function spdyHead(url: string): Uint8Array {
  const u = new URL(url);
  return enc.encode(
    `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\n` +
      `Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
  );
}

const EXEC = {
  containerId: "c",
  cmd: ["true"],
  tty: false,
  stdin: false,
  stdout: true,
  stderr: false,
};

Deno.test("the daemon's limits: a 10 s header deadline, 128 waiting connections, a 4 h idle timeout", () => {
  assert.deepEqual(STREAMING_LIMITS, {
    headerTimeoutMs: 10_000,
    maxUnauthenticated: 128,
    idleTimeoutMs: 4 * 3600_000,
  });
});

Deno.test("a connection that sends no whole request head is closed at the deadline, trickling or not", async () => {
  const server = StreamingServer.start(backend, { headerTimeoutMs: 200 });
  try {
    const idle = await connect(server);
    const slow = await connect(server);
    const partial = await connect(server);
    await partial.write(enc.encode("POST /exec/abc HTTP/1.1\r\nHost: x\r\n"));
    // One byte every 40 ms: each read is quick, the head never ends.
    const trickle = setInterval(() => slow.write(enc.encode("G")).catch(() => {}), 40);
    const [a, b, c] = await Promise.all(
      [idle, slow, partial].map((conn) => endsWithin(conn, 2_000)),
    );
    clearInterval(trickle);
    for (const ms of [a, b, c]) {
      assert.ok(typeof ms === "number" && ms >= 150 && ms < 1_000, `closed after ${ms}`);
    }
    assert.equal(server.stats().headerTimeouts, 3);
    assert.equal(server.stats().waiting, 0);
    for (const conn of [idle, slow, partial]) conn.close();
  } finally {
    await server.close();
  }
});

Deno.test("a request with a valid token is no longer under the header deadline", async () => {
  const server = StreamingServer.start(backend, { headerTimeoutMs: 150 });
  try {
    const conn = await connect(server);
    await conn.write(spdyHead(server.exec(EXEC)));
    // Upgraded, and no stream opened yet: the session waits (30 s) for the client's streams.
    assert.equal(await endsWithin(conn, 500), "open");
    assert.equal(server.stats().headerTimeouts, 0);
    conn.close();
  } finally {
    await server.close();
  }
});

Deno.test("over the cap, a new connection closes the oldest waiting one; a prompt request still gets through", async () => {
  const server = StreamingServer.start(backend, { maxUnauthenticated: 3, headerTimeoutMs: 5_000 });
  try {
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < 5; i++) {
      conns.push(await connect(server));
      // The server has accepted it before the next one comes.
      while (server.stats().accepted < i + 1) await sleep(2);
    }
    const followed = conns.map(follow);
    await sleep(300);
    assert.deepEqual(followed.map((f) => f.endedAfter === undefined), [
      false,
      false,
      true,
      true,
      true,
    ]);
    assert.deepEqual(server.stats(), {
      accepted: 5,
      waiting: 3,
      evicted: 2,
      headerTimeouts: 0,
      idleTimeouts: 0,
    });
    // A client that sends its request as soon as it connects: admitted (the oldest idle one goes).
    const ok = await connect(server);
    await ok.write(spdyHead(server.exec(EXEC)));
    const b = new Uint8Array(512);
    const n = await ok.read(b);
    assert.match(new TextDecoder().decode(b.subarray(0, n ?? 0)), /^HTTP\/1\.1 101 /);
    await followed[2].ended;
    assert.deepEqual(followed.map((f) => f.endedAfter === undefined), [
      false,
      false,
      false,
      true,
      true,
    ]);
    assert.equal(server.stats().evicted, 3);
    assert.equal(server.stats().waiting, 2);
    ok.close();
    for (const c of conns) c.close();
    await Promise.all(followed.map((f) => f.ended));
  } finally {
    await server.close();
  }
});

Deno.test("an upgraded connection is closed after the idle timeout; traffic keeps it open", async () => {
  const server = StreamingServer.start(backend, { idleTimeoutMs: 200 });
  try {
    const busy = await connect(server);
    const quiet = await connect(server);
    await busy.write(spdyHead(server.exec(EXEC)));
    await quiet.write(spdyHead(server.exec(EXEC)));
    // SPDY PINGs every 50 ms for 600 ms on one, nothing on the other.
    let pinging = true;
    const pings = (async () => {
      for (let id = 1; pinging; id += 2) {
        await busy.write(controlFrame(6, 0, u32s(id))).catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const quietEnd = endsWithin(quiet, 2_000);
    const busyEnd = endsWithin(busy, 600);
    assert.equal(await busyEnd, "open");
    pinging = false;
    await pings;
    const q = await quietEnd;
    assert.ok(typeof q === "number" && q >= 150 && q < 1_000, `quiet one closed after ${q}`);
    const b = await endsWithin(busy, 2_000);
    assert.ok(typeof b === "number" && b < 1_000, `busy one closed ${b} ms after its last ping`);
    assert.equal(server.stats().idleTimeouts, 2);
    busy.close();
    quiet.close();
  } finally {
    await server.close();
  }
});
