/** exec and attach: the process's streams over SPDY streams or WebSocket channels. */
import { ChunkQueue, type Duplex } from "./bytes.ts";
import { RST, SpdySession, type SpdyStream } from "./spdy.ts";
import type { WebSocketConn } from "./websocket.ts";
import {
  type AttachParams,
  type ProcessIO,
  STREAM_CREATION_MS,
  StreamError,
  type TermSize,
} from "./types.ts";

export const REMOTECOMMAND_SPDY = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
export const REMOTECOMMAND_WS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

/** The metav1.Status JSON for an outcome (v4 and later). */
export function statusJson(err?: StreamError): string {
  if (!err) return JSON.stringify({ metadata: {}, status: "Success" });
  const s: Record<string, unknown> = {
    metadata: {},
    status: "Failure",
    message: err.message,
    reason: err.reason,
  };
  if (err.exitCode !== undefined) {
    s.details = { causes: [{ reason: "ExitCode", message: String(err.exitCode) }] };
  }
  return JSON.stringify(s);
}

/** Decodes a stream of concatenated JSON objects ({"Width":…,"Height":…}) as it arrives. */
export class ResizeDecoder {
  #text = "";
  push(bytes: Uint8Array, emit: (s: TermSize) => void): void {
    this.#text += new TextDecoder().decode(bytes);
    if (this.#text.length > 64 * 1024) this.#text = "";
    for (;;) {
      const end = this.#text.indexOf("}");
      if (end < 0) return;
      const obj = this.#text.slice(0, end + 1);
      this.#text = this.#text.slice(end + 1);
      try {
        const v = JSON.parse(obj.slice(obj.indexOf("{"))) as { Width?: unknown; Height?: unknown };
        const width = Number(v.Width), height = Number(v.Height);
        if (
          Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0 &&
          width < 65536 && height < 65536
        ) emit({ width, height });
      } catch { /* not a size: skipped */ }
    }
  }
}

class Resizes {
  #last?: TermSize;
  #listener?: (s: TermSize) => void;
  emit = (s: TermSize) => {
    this.#last = s;
    this.#listener?.(s);
  };
  on = (l: (s: TermSize) => void) => {
    this.#listener = l;
    if (this.#last) l(this.#last);
  };
}

/** exec/attach over SPDY streams. */
export async function spdyRemoteCommand(
  d: Duplex,
  version: string,
  p: AttachParams,
  run: (io: ProcessIO) => Promise<number>,
): Promise<void> {
  // A terminal has no separate stderr (kubelet drops it from v2 on).
  const stderrWanted = p.stderr && !(p.tty && version !== "channel.k8s.io");
  const want = new Set(["error"]);
  if (p.stdin) want.add("stdin");
  if (p.stdout) want.add("stdout");
  if (stderrWanted) want.add("stderr");
  if (p.tty && (version === "v3.channel.k8s.io" || version === "v4.channel.k8s.io")) {
    want.add("resize");
  }
  const got = new Map<string, SpdyStream>();
  let ready!: () => void;
  const allThere = new Promise<void>((r) => ready = r);
  const session = new SpdySession(d, (s) => {
    const type = s.header("streamtype") ?? "";
    if (!want.has(type) || got.has(type)) return void s.resetStream(RST.REFUSED_STREAM);
    got.set(type, s);
    if (got.size === want.size) ready();
  });
  const serving = session.serve();
  const timedOut = await Promise.race([
    allThere.then(() => false),
    serving.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(true), STREAM_CREATION_MS)),
  ]);
  if (timedOut) {
    session.close();
    return;
  }
  const resizes = new Resizes();
  const resize = got.get("resize");
  if (resize) {
    const dec = new ResizeDecoder();
    void (async () => {
      for (;;) {
        const b = await resize.incoming.next();
        if (b === null) return;
        dec.push(b, resizes.emit);
      }
    })();
  }
  const writer = (s?: SpdyStream) => s ? (b: Uint8Array) => s.write(b).catch(() => {}) : undefined;
  const io: ProcessIO = {
    stdin: got.get("stdin")?.incoming,
    stdout: writer(got.get("stdout")),
    stderr: writer(got.get("stderr")),
    tty: p.tty,
    onResize: resizes.on,
    gone: serving,
  };
  const outcome = await outcomeOf(run(io));
  const errStream = got.get("error")!;
  if (version === "v4.channel.k8s.io") {
    await errStream.write(new TextEncoder().encode(statusJson(outcome))).catch(() => {});
  } else if (outcome) {
    await errStream.write(new TextEncoder().encode(outcome.message)).catch(() => {});
  }
  for (const s of got.values()) await s.close();
  await session.goAway();
}

/** exec/attach over WebSocket channels. */
export async function wsRemoteCommand(
  w: WebSocketConn,
  protocol: string,
  p: AttachParams,
  run: (io: ProcessIO) => Promise<number>,
): Promise<void> {
  const send = (ch: number) => (b: Uint8Array) => {
    const m = new Uint8Array(b.length + 1);
    m[0] = ch;
    m.set(b, 1);
    return w.sendBinary(m).catch(() => {});
  };
  // The lowest channel rkl writes gets an empty message: the client then knows it is open.
  await send(p.stdout ? 1 : p.stderr ? 2 : 3)(new Uint8Array(0));
  const stdin = p.stdin ? new ChunkQueue() : undefined;
  const resizes = new Resizes();
  const dec = new ResizeDecoder();
  const reading = (async () => {
    for (;;) {
      const m = await w.receive();
      if (!m) break;
      if (m.data.length === 0) continue;
      const ch = m.data[0], body = m.data.subarray(1);
      if (ch === 0) stdin?.push(body);
      else if (ch === 4) dec.push(body, resizes.emit);
      else if (ch === 255 && protocol === "v5.channel.k8s.io" && body[0] === 0) stdin?.end();
    }
    stdin?.end();
  })();
  const io: ProcessIO = {
    stdin,
    stdout: p.stdout ? send(1) : undefined,
    stderr: p.stderr && !p.tty ? send(2) : undefined,
    tty: p.tty,
    onResize: resizes.on,
    gone: reading,
  };
  const outcome = await outcomeOf(run(io));
  if (protocol === "channel.k8s.io") {
    if (outcome) await send(3)(new TextEncoder().encode(outcome.message));
  } else {
    await send(3)(new TextEncoder().encode(statusJson(outcome)));
  }
  await w.close(1000);
}

/** undefined for exit code 0; the StreamError that reports anything else. */
async function outcomeOf(running: Promise<number>): Promise<StreamError | undefined> {
  try {
    const code = await running;
    if (code === 0) return undefined;
    return new StreamError(
      `command terminated with non-zero exit code: exit status ${code}`,
      "NonZeroExitCode",
      code,
    );
  } catch (e) {
    return e instanceof StreamError ? e : new StreamError((e as Error).message);
  }
}
