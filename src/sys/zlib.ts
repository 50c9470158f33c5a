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
 *
 * A small stream (most base layers: busybox's is 1 MB) is inflated in one
 * call by libdeflate, where the host has it: about 2.5 times as fast as
 * libz here (busybox's layer: 6 ms instead of 15), so the unpack waits less
 * for its bytes. Whole-buffer only, so it is used when the compressed
 * stream ends within WHOLE_IN bytes and its trailer says the output is at
 * most WHOLE_OUT; anything else it cannot finish (several gzip members, a
 * size that lies, damage) goes through libz's stream as before, which also
 * words the errors.
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

/** A library's symbols, opened on first use; null where it cannot be (no FFI, not installed). */
function lazyLibrary<S extends Deno.ForeignLibraryInterface>(
  name: string,
  syms: S,
): () => Deno.DynamicLibrary<S>["symbols"] | null {
  let lib: Deno.DynamicLibrary<S>["symbols"] | null | undefined;
  return () => {
    if (lib === undefined) {
      try {
        lib = Deno.dlopen(name, syms).symbols;
      } catch {
        lib = null;
      }
    }
    return lib;
  };
}

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];
const libz = lazyLibrary("libz.so.1", symbols);

const deflateSymbols = {
  libdeflate_alloc_decompressor: { parameters: [], result: "pointer" },
  libdeflate_free_decompressor: { parameters: ["pointer"], result: "void" },
  // enum libdeflate_result libdeflate_gzip_decompress_ex(d, in, in_nbytes, out,
  //   out_nbytes_avail, size_t *actual_in_nbytes_ret, size_t *actual_out_nbytes_ret);
  libdeflate_gzip_decompress_ex: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const;

const libdeflate = lazyLibrary("libdeflate.so.0", deflateSymbols);

/** Compressed bytes read ahead in the hope that the stream ends (then: one libdeflate call). */
export const WHOLE_IN = 8 << 20;
/** Largest output made in one piece. */
export const WHOLE_OUT = 32 << 20;

/**
 * The gzip stream `data` (all of it, one member) inflated by libdeflate in
 * one call on a worker thread; undefined when libdeflate is not to be had or
 * does not give the whole answer (the caller then uses libz's stream).
 */
export async function gunzipWhole(data: Uint8Array): Promise<Uint8Array | undefined> {
  const d = libdeflate();
  if (!d || data.length < 18) return undefined; // 18: a header and a trailer
  // ISIZE: the uncompressed size mod 2^32, the member's last 4 bytes.
  const isize = new DataView(data.buffer, data.byteOffset, data.length).getUint32(
    data.length - 4,
    true,
  );
  if (isize === 0 || isize > WHOLE_OUT) return undefined; // padded, empty, or large
  const out = new Uint8Array(isize);
  const sizes = new BigUint64Array(2); // actual_in, actual_out
  const view = new Uint8Array(sizes.buffer);
  const dec = d.libdeflate_alloc_decompressor();
  if (dec === null) return undefined;
  try {
    const rc = await d.libdeflate_gzip_decompress_ex(
      dec,
      data,
      BigInt(data.length),
      out,
      BigInt(out.length),
      view.subarray(0, 8),
      view.subarray(8, 16),
    );
    // 0: success. Anything else, or a second member after the first, or
    // fewer bytes than the trailer said: libz's stream decides and words it.
    if (rc !== 0 || sizes[0] !== BigInt(data.length) || sizes[1] !== BigInt(isize)) {
      return undefined;
    }
    return out;
  } finally {
    d.libdeflate_free_decompressor(dec);
  }
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
  options: { whole?: boolean } = {},
): AsyncGenerator<Uint8Array> | undefined {
  const z = libz();
  if (!z) return undefined;
  return options.whole !== false && libdeflate() ? wholeOrStream(z, input) : run(z, input);
}

/** libdeflate in one call when the stream is small, libz's stream otherwise. */
async function* wholeOrStream(
  z: Lib,
  input: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const it = input[Symbol.asyncIterator]();
  const held: Uint8Array[] = [];
  let have = 0;
  let ended = false;
  try {
    while (have <= WHOLE_IN) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      held.push(r.value);
      have += r.value.length;
    }
    if (ended) {
      const data = held.length === 1 ? held[0] : new Uint8Array(have);
      if (held.length !== 1) {
        let off = 0;
        for (const c of held) {
          data.set(c, off);
          off += c.length;
        }
      }
      const out = await gunzipWhole(data);
      if (out) {
        yield out;
        return;
      }
      held.length = 0;
      held.push(data);
    }
    const rest = async function* (): AsyncGenerator<Uint8Array> {
      yield* held;
      if (ended) return;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    };
    yield* run(z, rest());
  } finally {
    await it.return?.();
  }
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
