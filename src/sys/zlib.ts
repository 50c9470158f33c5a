/**
 * gzip decompression on a worker thread: the system's libz through FFI, each
 * `inflate()` a `nonblocking` call. Deno's DecompressionStream and node:zlib
 * both inflate on the JS thread, so a layer's unpack paid for inflating
 * (11 ms for busybox's 1 MB layer here) and for its file-system calls one
 * after the other; with inflate on another core the two overlap. containerd
 * gets the same by piping layers through `unpigz`.
 *
 * While the caller handles one chunk, libz fills the next buffer. Each chunk
 * has its own buffer, so the caller may keep it. Concatenated gzip members
 * are read as one stream, as gzip(1) and Go's reader do. Returns undefined
 * when libz cannot be opened (no FFI permission, no libz.so.1): the caller
 * then uses DecompressionStream.
 */

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;
/** sizeof(z_stream) on LP64 (x86_64, aarch64 Linux): what inflateInit2_ checks. */
const Z_STREAM_SIZE = 112;
// Offsets into z_stream (LP64).
const NEXT_IN = 0, AVAIL_IN = 8, NEXT_OUT = 24, AVAIL_OUT = 32, MSG = 48;

const symbols = {
  // int inflateInit2_(z_streamp strm, int windowBits, const char *version, int stream_size);
  inflateInit2_: { parameters: ["buffer", "i32", "buffer", "i32"], result: "i32" },
  // int inflate(z_streamp strm, int flush); on a worker thread
  inflate: { parameters: ["buffer", "i32"], result: "i32", nonblocking: true },
  // int inflateReset(z_streamp strm);
  inflateReset: { parameters: ["buffer"], result: "i32" },
  // int inflateEnd(z_streamp strm);
  inflateEnd: { parameters: ["buffer"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];
let lib: Lib | null | undefined;

function libz(): Lib | null {
  if (lib !== undefined) return lib;
  try {
    lib = Deno.dlopen("libz.so.1", symbols).symbols;
  } catch {
    lib = null;
  }
  return lib;
}

export class InflateError extends Error {
  override name = "InflateError";
}

const OUT = 256 * 1024;

/**
 * The decompressed bytes of the gzip stream `input`, or undefined when libz
 * is not to be had.
 */
export function gunzipChunks(
  input: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> | undefined {
  const z = libz();
  if (!z) return undefined;
  return run(z, input);
}

interface Step {
  out: Uint8Array;
  n: number;
  /** The input is used up. */
  done?: boolean;
}

async function* run(z: Lib, input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const strm = new Uint8Array(Z_STREAM_SIZE);
  const view = new DataView(strm.buffer);
  // 15 window bits + 16: gzip only (a layer's media type says gzip; zlib data is refused)
  const rc = z.inflateInit2_(strm, 15 + 16, new TextEncoder().encode("1.2.11\0"), Z_STREAM_SIZE);
  if (rc !== Z_OK) throw new InflateError(`inflateInit2 failed (${rc})`);
  const ptr = (b: Uint8Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  const availIn = () => view.getUint32(AVAIL_IN, true);
  const it = input[Symbol.asyncIterator]();
  let chunk: Uint8Array | undefined; // kept referenced while libz reads it
  let ended = false; // a member ended and no input followed yet

  /** Feeds input if libz has none left, then inflates into the next buffer. */
  const step = async (): Promise<Step> => {
    const out = new Uint8Array(OUT);
    while (availIn() === 0) {
      const next = await it.next();
      if (next.done) {
        if (!ended) throw new InflateError("unexpected end of the compressed data");
        return { out, n: 0, done: true };
      }
      if (next.value.length === 0) continue;
      chunk = next.value;
      view.setBigUint64(NEXT_IN, ptr(chunk), true);
      view.setUint32(AVAIL_IN, chunk.length, true);
    }
    if (ended) {
      z.inflateReset(strm); // input after a member's end: a further member
      ended = false;
    }
    view.setBigUint64(NEXT_OUT, ptr(out), true);
    view.setUint32(AVAIL_OUT, out.length, true);
    const r = await z.inflate(strm, 0);
    const n = out.length - view.getUint32(AVAIL_OUT, true);
    if (r === Z_STREAM_END) {
      ended = true;
      // zero padding after the last member: what gzip(1) ignores
      const left = availIn();
      if (left > 0 && chunk && chunk.subarray(chunk.length - left).every((b) => b === 0)) {
        view.setUint32(AVAIL_IN, 0, true);
      }
    } else if (r !== Z_OK && !(r === Z_BUF_ERROR && n === 0)) {
      const msg = view.getBigUint64(MSG, true);
      const text = msg === 0n
        ? `inflate error ${r}`
        : Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(msg)!);
      throw new InflateError(`the compressed data is damaged (${text})`);
    }
    return { out, n };
  };

  let pending: Promise<Step> | undefined = step();
  pending.catch(() => {});
  try {
    for (;;) {
      const s: Step = await pending;
      pending = undefined;
      if (s.done) return;
      // the next inflate runs on its worker thread while the caller handles this one
      pending = step();
      pending.catch(() => {}); // handled where it is awaited; not an unhandled rejection meanwhile
      if (s.n > 0) yield s.out.subarray(0, s.n);
    }
  } finally {
    // libz may still be inside inflate() on its thread: wait before freeing the state
    await pending?.catch(() => {});
    z.inflateEnd(strm);
    await it.return?.();
  }
}
