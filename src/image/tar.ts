/**
 * A streaming tar reader: ustar, POSIX pax (`x` and `g` headers) and GNU long
 * names (`L`, `K`). Sparse and multi-volume members are refused. Nothing here
 * touches the file system; `unpack.ts` decides what an entry may do.
 */

export type EntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

export interface TarHeader {
  /** The member's name as stored (pax/GNU long names applied). */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional from pax). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** pax `SCHILY.xattr.*` records: name → raw value. */
  xattrs: Map<string, Uint8Array>;
}

export class TarError extends Error {
  override name = "TarError";
}

const BLOCK = 512;
const decoder = new TextDecoder();

/** Pulls exact byte counts out of a stream; `onData` sees every byte read from it. */
export class ByteSource {
  #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  #done = false;
  constructor(
    stream: AsyncIterable<Uint8Array>,
    private onData?: (chunk: Uint8Array) => void,
  ) {
    this.#it = stream[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#done) return false;
    const { value, done } = await this.#it.next();
    if (done) {
      this.#done = true;
      return false;
    }
    this.onData?.(value);
    const rest = this.#buf.subarray(this.#off);
    if (rest.length === 0) this.#buf = value;
    else {
      const joined = new Uint8Array(rest.length + value.length);
      joined.set(rest);
      joined.set(value, rest.length);
      this.#buf = joined;
    }
    this.#off = 0;
    return true;
  }

  /** Exactly `n` bytes, or undefined at a clean end of stream before the first byte. */
  async read(n: number): Promise<Uint8Array | undefined> {
    while (this.#buf.length - this.#off < n) {
      if (!await this.#fill()) {
        if (this.#buf.length - this.#off === 0) return undefined;
        throw new TarError("the archive is truncated");
      }
    }
    const out = this.#buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }

  /** Hands the next `n` bytes to `sink` chunk by chunk (no copy of the whole). */
  async pipe(n: number, sink: (chunk: Uint8Array) => void | Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length - this.#off === 0 && !await this.#fill()) {
        throw new TarError("the archive is truncated");
      }
      const take = Math.min(left, this.#buf.length - this.#off);
      await sink(this.#buf.subarray(this.#off, this.#off + take));
      this.#off += take;
      left -= take;
    }
  }

  /** Reads (and sees) the rest of the stream. */
  async drain(): Promise<void> {
    this.#off = this.#buf.length;
    while (await this.#fill()) this.#off = this.#buf.length;
  }

  async cancel(): Promise<void> {
    this.#done = true;
    await this.#it.return?.().catch(() => {});
  }
}

function cString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return decoder.decode(nul >= 0 ? b.subarray(0, nul) : b);
}

/** An octal field, or a GNU base-256 one (high bit of the first byte set). */
function numeric(b: Uint8Array, field: string): number {
  if (b[0] & 0x80) {
    if (b[0] & 0x40) throw new TarError(`negative ${field}`);
    let v = b[0] & 0x3f;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i];
    if (!Number.isSafeInteger(v)) throw new TarError(`${field} too large`);
    return v;
  }
  // Octal digits up to the first NUL, with blanks around them: read from
  // the bytes, no string made (a header has six such fields).
  let end = b.indexOf(0);
  if (end < 0) end = b.length;
  let start = 0;
  while (start < end && isBlank(b[start])) start++;
  while (end > start && isBlank(b[end - 1])) end--;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 7) {
      throw new TarError(
        `${field} is not an octal number (${
          JSON.stringify(decoder.decode(b.subarray(start, end)))
        })`,
      );
    }
    v = v * 8 + d;
  }
  return v;
}

/** Space, tab, LF, VT, FF or CR. */
function isBlank(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

// One aligned copy of the header being checked: read as 32-bit words, the
// sums below take 128 steps instead of 512 (what counts without an
// optimising compiler, as in the daemon's lite mode).
const scratch = new Uint8Array(BLOCK);
const words = new Uint32Array(scratch.buffer);

/**
 * Checks a header block: "end" for the end-of-archive marker (512 zero
 * bytes), else whether its checksum holds: the sum of its bytes with the
 * checksum field (148..155) counted as spaces, unsigned as POSIX says, or
 * signed as some old tars wrote it. Each 32-bit word adds its bytes in two
 * 16-bit lanes (0x00ff00ff masks); 128 words cannot overflow a lane.
 */
function checkBlock(h: Uint8Array): "end" | boolean {
  scratch.set(h);
  let or = 0;
  let lanes = 0;
  let high = 0; // bytes > 127, for the signed sum
  for (let i = 0; i < 128; i++) {
    const w = words[i];
    or |= w;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
    if (w & 0x80808080) {
      high += ((w >>> 7) & 1) + ((w >>> 15) & 1) + ((w >>> 23) & 1) + (w >>> 31);
    }
  }
  if (or === 0) return "end";
  let unsigned = (lanes & 0xffff) + (lanes >>> 16);
  // the checksum field's own 8 bytes count as spaces (0x20 each)
  for (let i = 148; i < 156; i++) {
    unsigned += 32 - h[i];
    if (h[i] > 127) high--;
  }
  const stored = numeric(h.subarray(148, 156), "checksum");
  return stored === unsigned || stored === unsigned - 256 * high;
}

/** pax records: "LEN key=value\n" repeated. */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) throw new TarError("malformed pax header");
    const len = parseInt(decoder.decode(data.subarray(i, sp)), 10);
    if (!Number.isSafeInteger(len) || len <= sp - i || i + len > data.length) {
      throw new TarError("malformed pax record length");
    }
    const rec = data.subarray(sp + 1, i + len - 1); // without the trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new TarError("malformed pax record");
    out.set(decoder.decode(rec.subarray(0, eq)), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** A member's pax records when it has none (only read). */
const NO_RECORDS: ReadonlyMap<string, Uint8Array> = new Map();

const TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

export interface TarEntry {
  header: TarHeader;
  /** Streams the body to `sink`; an entry whose body is not read is skipped. */
  body(sink: (chunk: Uint8Array) => void | Promise<void>): Promise<void>;
}

/**
 * The members of a tar stream, in order. Stops at the end-of-archive blocks,
 * then reads the stream to its end so that `onData` has seen every byte.
 */
export async function* readTar(src: ByteSource): AsyncGenerator<TarEntry> {
  let global = new Map<string, Uint8Array>();
  let pax: Map<string, Uint8Array> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await src.read(BLOCK);
    if (!h) throw new TarError("the archive ends without its end-of-archive blocks");
    const check = checkBlock(h);
    if (check === "end") {
      await src.drain(); // the second zero block and any padding after it
      return;
    }
    if (!check) {
      throw new TarError("a header's checksum does not match (not a tar, or damaged)");
    }
    const flag = String.fromCharCode(h[156]);
    let size = numeric(h.subarray(124, 136), "size");
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const readMeta = async (): Promise<Uint8Array> => {
      if (size > 1 << 20) throw new TarError("an extended header is larger than 1 MiB");
      const data = size === 0 ? new Uint8Array(0) : (await src.read(padded))!;
      return data.slice(0, size);
    };
    if (flag === "x" || flag === "g") {
      const recs = parsePax(await readMeta());
      if (flag === "g") global = new Map([...global, ...recs]);
      else pax = recs;
      continue;
    }
    if (flag === "L" || flag === "K") {
      const v = cString(await readMeta());
      if (flag === "L") longName = v;
      else longLink = v;
      continue;
    }
    const type = TYPES[flag];
    if (!type) {
      throw new TarError(
        flag === "S"
          ? "sparse members are not supported"
          : `unknown member type ${JSON.stringify(flag)}`,
      );
    }
    const recs = global.size === 0 ? pax ?? NO_RECORDS : new Map([...global, ...(pax ?? [])]);
    const text = (k: string) => {
      const v = recs.get(k);
      return v === undefined ? undefined : decoder.decode(v);
    };
    const magic = decoder.decode(h.subarray(257, 262));
    let name = cString(h.subarray(0, 100));
    const prefix = magic === "ustar" ? cString(h.subarray(345, 500)) : "";
    if (prefix) name = `${prefix}/${name}`;
    name = text("path") ?? longName ?? name;
    const linkname = text("linkpath") ?? longLink ?? cString(h.subarray(157, 257));
    const num = (k: string, fallback: number) => {
      const v = text(k);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) {
        throw new TarError(`pax ${k} ${JSON.stringify(v)} is not a number`);
      }
      return n;
    };
    size = num("size", size);
    const xattrs = new Map<string, Uint8Array>();
    for (const [k, v] of recs) {
      if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice("SCHILY.xattr.".length), v);
    }
    const header: TarHeader = {
      name,
      type,
      mode: numeric(h.subarray(100, 108), "mode") & 0o7777,
      uid: num("uid", numeric(h.subarray(108, 116), "uid")),
      gid: num("gid", numeric(h.subarray(116, 124), "gid")),
      size: type === "file" ? size : 0,
      mtime: num("mtime", numeric(h.subarray(136, 148), "mtime")),
      linkname,
      devmajor: type === "char" || type === "block" ? numeric(h.subarray(329, 337), "devmajor") : 0,
      devminor: type === "char" || type === "block" ? numeric(h.subarray(337, 345), "devminor") : 0,
      xattrs,
    };
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    // Only regular files carry data; any other member's stated size is skipped.
    const bodySize = size;
    let consumed = false;
    yield {
      header,
      body: async (sink) => {
        consumed = true;
        await src.pipe(header.type === "file" ? bodySize : 0, sink);
        if (header.type !== "file") await src.pipe(bodySize, () => {});
        await src.pipe(Math.ceil(bodySize / BLOCK) * BLOCK - bodySize, () => {});
      },
    };
    if (!consumed) await src.pipe(Math.ceil(bodySize / BLOCK) * BLOCK, () => {});
  }
}
