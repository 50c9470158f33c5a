/**
 * Port forward: SPDY stream pairs (`streamtype` data and error, `port`,
 * `requestid`), each pair a connection to the port inside the sandbox.
 */
import type { Duplex } from "./bytes.ts";
import { RST, SpdySession, type SpdyStream } from "./spdy.ts";
import { type PortForwardParams, STREAM_CREATION_MS, type StreamBackend } from "./types.ts";

export const PORTFORWARD = "portforward.k8s.io";
export const PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io";

/** Serves port forward streams on `d` until the session ends. */
export async function portForward(
  backend: StreamBackend,
  d: Duplex,
  params: PortForwardParams,
): Promise<void> {
  const pairs = new Map<
    string,
    { data?: SpdyStream; error?: SpdyStream; timer: ReturnType<typeof setTimeout> }
  >();
  const work: Promise<void>[] = [];
  const session = new SpdySession(d, (s) => {
    const type = s.header("streamtype");
    if (type !== "data" && type !== "error") return void s.resetStream(RST.REFUSED_STREAM);
    // Pairs are matched by requestid; a client without one pairs by stream id.
    const rid = s.header("requestid") ?? String(type === "data" ? s.id - 2 : s.id);
    let pair = pairs.get(rid);
    if (!pair) {
      const timer = setTimeout(() => {
        const p = pairs.get(rid);
        pairs.delete(rid);
        void p?.data?.resetStream();
        void p?.error?.resetStream();
      }, STREAM_CREATION_MS);
      pair = { timer };
      pairs.set(rid, pair);
    }
    pair[type] = s;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(rid);
      work.push(forwardPair(backend, params, pair.data, pair.error));
    }
  });
  await session.serve();
  for (const p of pairs.values()) clearTimeout(p.timer);
  await Promise.allSettled(work);
}

async function forwardPair(
  backend: StreamBackend,
  params: PortForwardParams,
  data: SpdyStream,
  error: SpdyStream,
) {
  const text = data.header("port") ?? "";
  const port = Number(text);
  const fail = async (msg: string) => {
    await error.write(new TextEncoder().encode(msg)).catch(() => {});
    await error.close();
    await data.close();
  };
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
    return await fail(`invalid port ${JSON.stringify(text)}`);
  }
  if (params.ports.length > 0 && !params.ports.includes(port)) {
    return await fail(`port ${port} is not one this request forwards`);
  }
  let target: Awaited<ReturnType<StreamBackend["dial"]>>;
  try {
    target = await backend.dial(params.sandboxId, port);
  } catch (e) {
    return await fail(
      `error forwarding port ${port} to pod ${params.sandboxId}: ${(e as Error).message}`,
    );
  }
  const up = (async () => {
    for (;;) {
      const b = await data.incoming.next();
      if (b === null) break;
      await target.write(b);
    }
    await target.closeWrite().catch(() => {});
  })().catch(() => target.close());
  const down = (async () => {
    for (;;) {
      const b = await target.read();
      if (b === null) break;
      await data.write(b);
    }
  })().catch(() => {});
  await down;
  await data.close();
  await Promise.race([up, new Promise((r) => setTimeout(r, 1_000))]);
  target.close();
  await error.close();
}
