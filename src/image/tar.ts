/**
 * A streaming tar reader: ustar, POSIX pax and GNU long names (`L`, `K`),
 * GNU sparse files in pax form (0.0, 0.1 and 1.0). It reads members the way
 * Go's archive/tar does (what containerd and docker unpack with): a GNU long
 * name wins over a pax `path`, an empty pax value keeps the header's, a pax
 * global header (`g`) applies to nothing, only ustar/pax headers have a name
 * prefix, and only regular files carry data. Old GNU sparse (`S`) and
 * multi-volume members are refused (containerd refuses `S` too). Nothing here
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
  /** Whole seconds since the epoch. */
  mtime: number;
  /** Nanoseconds past `mtime` (from a pax mtime), 0..999999999. */
  mtimeNsec: number;
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

/**
 * pax records: "LEN key=value\n" repeated. GNU sparse 0.0's repeated
 * `GNU.sparse.offset`/`GNU.sparse.numbytes` pairs are joined into one
 * `GNU.sparse.map` record, as 0.1 writes it.
 */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const sparse: string[] = [];
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
    const key = decoder.decode(rec.subarray(0, eq));
    if (key === "GNU.sparse.offset" || key === "GNU.sparse.numbytes") {
      // they alternate, offset first
      if ((sparse.length % 2 === 0) !== (key === "GNU.sparse.offset")) {
        throw new TarError("malformed GNU sparse map in a pax header");
      }
      sparse.push(decoder.decode(rec.subarray(eq + 1)));
    } else out.set(key, rec.slice(eq + 1));
    i += len;
  }
  if (sparse.length > 0) out.set("GNU.sparse.map", new TextEncoder().encode(sparse.join(",")));
  return out;
}

/** One stretch of a sparse file's data: `length` bytes at `offset`. */
interface Fragment {
  offset: number;
  length: number;
}

function sparseNumbers(text: string, what: string): number[] {
  if (text === "") return [];
  return text.split(",").map((v) => {
    const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) {
      throw new TarError(`${what}: ${JSON.stringify(v)} is not a number`);
    }
    return n;
  });
}

/** Fragments in order, inside `size`, not overlapping (as Go checks them). */
function checkFragments(frags: Fragment[], size: number): Fragment[] {
  let end = 0;
  for (const f of frags) {
    if (f.offset < end || f.offset + f.length > size) {
      throw new TarError("a sparse member's map is out of order or past its size");
    }
    end = f.offset + f.length;
  }
  return frags;
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
  /**
   * Streams the body to `sink`; an entry whose body is not read is skipped.
   * A sparse file's holes go to `hole` (their length) when it is given, else
   * to `sink` as zeros.
   */
  body(
    sink: (chunk: Uint8Array) => void | Promise<void>,
    hole?: (length: number) => void | Promise<void>,
  ): Promise<void>;
}

/**
 * The members of a tar stream, in order. Stops at the end-of-archive blocks
 * (or a clean end of the stream where a header would start),
 * then reads the stream to its end so that `onData` has seen every byte.
 */
export async function* readTar(src: ByteSource): AsyncGenerator<TarEntry> {
  let pax: Map<string, Uint8Array> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await src.read(BLOCK);
    // A stream that ends where a header would start ends the archive, with
    // or without its blocks of zeros (umoci writes none; Go reads it so).
    if (!h) return;
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
    if (flag === "x") {
      pax = parsePax(await readMeta());
      continue;
    }
    if (flag === "g") {
      // Go's reader hands a global header over as a member of its own and
      // applies it to nothing; containerd then ignores it
      parsePax(await readMeta());
      pax = undefined;
      longName = undefined;
      longLink = undefined;
      continue;
    }
    if (flag === "L" || flag === "K") {
      const v = cString(await readMeta());
      if (flag === "L") longName = v;
      else longLink = v;
      continue;
    }
    let type = TYPES[flag];
    if (!type) {
      throw new TarError(
        flag === "S"
          ? "sparse members are not supported"
          : `unknown member type ${JSON.stringify(flag)}`,
      );
    }
    const recs = pax ?? NO_RECORDS;
    /** A pax record's text; an empty value keeps the header's (as Go reads it). */
    const text = (k: string) => {
      const v = recs.get(k);
      return v === undefined || v.length === 0 ? undefined : decoder.decode(v);
    };
    // the magic "ustar\0" is ustar/pax (star's: "tar\0" at the block's end),
    // with a name prefix; GNU's "ustar " keeps times where ustar has it
    const ustar = h[257] === 0x75 && decoder.decode(h.subarray(257, 263)) === "ustar\0";
    const star = ustar && h[508] === 0x74 && h[509] === 0x61 && h[510] === 0x72 && h[511] === 0;
    let name = cString(h.subarray(0, 100));
    const prefix = ustar ? cString(h.subarray(345, star ? 476 : 500)) : "";
    if (prefix) name = `${prefix}/${name}`;
    name = longName ?? text("path") ?? name;
    const linkname = longLink ?? text("linkpath") ?? cString(h.subarray(157, 257));
    const num = (k: string, fallback: number) => {
      const v = text(k);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) {
        throw new TarError(`pax ${k} ${JSON.stringify(v)} is not a number`);
      }
      return n;
    };
    size = num("size", size);
    // a legacy regular file whose name ends in "/" is a directory
    if (flag === "\0" && name.endsWith("/")) type = "dir";
    let mtime = numeric(h.subarray(136, 148), "mtime");
    let mtimeNsec = 0;
    const paxMtime = text("mtime");
    if (paxMtime !== undefined) [mtime, mtimeNsec] = paxTime(paxMtime);
    // GNU sparse files in pax form (0.0 and 0.1: map in the header; 1.0: at the data's start)
    const major = text("GNU.sparse.major");
    const minor = text("GNU.sparse.minor");
    let sparse: "map" | "1.0" | undefined;
    if (major === "0" && (minor === "0" || minor === "1")) sparse = "map";
    else if (major === "1" && minor === "0") sparse = "1.0";
    else if (major === undefined && minor === undefined && text("GNU.sparse.map")) sparse = "map";
    let realSize = size;
    if (sparse) {
      if (type !== "file") {
        throw new TarError(`a sparse member ${JSON.stringify(name)} is not a file`);
      }
      name = text("GNU.sparse.name") ?? name;
      realSize = num("GNU.sparse.size", num("GNU.sparse.realsize", size));
    }
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
      size: type === "file" ? realSize : 0,
      mtime,
      mtimeNsec,
      linkname,
      devmajor: type === "char" || type === "block" ? numeric(h.subarray(329, 337), "devmajor") : 0,
      devminor: type === "char" || type === "block" ? numeric(h.subarray(337, 345), "devminor") : 0,
      xattrs,
    };
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    // Only regular files carry data: another member's stated size is not
    // data in the archive (Go reads none for it either).
    let bodySize = type === "file" ? size : 0;
    let frags: Fragment[] | undefined;
    if (sparse === "map") {
      const nums = sparseNumbers(text("GNU.sparse.map") ?? "", "GNU.sparse.map");
      const count = text("GNU.sparse.numblocks");
      if (nums.length % 2 !== 0 || (count !== undefined && Number(count) * 2 !== nums.length)) {
        throw new TarError(
          `sparse member ${JSON.stringify(name)}: its map does not match its count`,
        );
      }
      frags = [];
      for (let i = 0; i < nums.length; i += 2) frags.push({ offset: nums[i], length: nums[i + 1] });
    } else if (sparse === "1.0") {
      // decimal lines: the count, then offset and length per fragment; padded to a block
      const lines: number[] = [];
      let want = 1;
      let partial = "";
      let used = 0;
      while (lines.length < want) {
        if (used + BLOCK > bodySize) {
          throw new TarError(`sparse member ${JSON.stringify(name)}: truncated map`);
        }
        const blk = (await src.read(BLOCK))!;
        used += BLOCK;
        const parts = (partial + decoder.decode(blk)).split("\n");
        partial = parts.pop()!;
        for (const p of parts) {
          if (lines.length >= want) break;
          const n = /^[0-9]+$/.test(p) ? Number(p) : NaN;
          if (!Number.isSafeInteger(n)) {
            throw new TarError(`sparse member ${JSON.stringify(name)}: bad map`);
          }
          lines.push(n);
          if (lines.length === 1) want = 1 + 2 * n;
        }
        if (lines.length < want && partial.length > 64) {
          throw new TarError(`sparse member ${JSON.stringify(name)}: bad map`);
        }
      }
      frags = [];
      for (let i = 1; i < lines.length; i += 2) {
        frags.push({ offset: lines[i], length: lines[i + 1] });
      }
      bodySize -= used; // the rest starts on the block after the map
    }
    if (frags) {
      checkFragments(frags, realSize);
      if (frags.reduce((n, f) => n + f.length, 0) !== bodySize) {
        throw new TarError(
          `sparse member ${JSON.stringify(name)}: its map does not match its data`,
        );
      }
    }
    const stored = bodySize;
    const fragments = frags;
    let consumed = false;
    yield {
      header,
      body: async (sink, hole) => {
        consumed = true;
        if (!fragments) await src.pipe(stored, sink);
        else {
          const gap = async (n: number) => {
            if (n <= 0) return;
            if (hole) return await hole(n);
            const zeros = new Uint8Array(Math.min(n, 1 << 16));
            for (let left = n; left > 0; left -= zeros.length) {
              await sink(zeros.subarray(0, Math.min(left, zeros.length)));
            }
          };
          let at = 0;
          for (const f of fragments) {
            await gap(f.offset - at);
            await src.pipe(f.length, sink);
            at = f.offset + f.length;
          }
          await gap(realSize - at);
        }
        await src.pipe(Math.ceil(stored / BLOCK) * BLOCK - stored, () => {});
      },
    };
    if (!consumed) await src.pipe(Math.ceil(stored / BLOCK) * BLOCK, () => {});
  }
}

/** A pax time, "SECONDS[.FRACTION]", as whole seconds and nanoseconds (extra digits cut). */
function paxTime(v: string): [number, number] {
  const m = /^([0-9]+)(?:\.([0-9]*))?$/.exec(v);
  if (!m || !Number.isSafeInteger(Number(m[1]))) {
    throw new TarError(`pax mtime ${JSON.stringify(v)} is not a time`);
  }
  return [Number(m[1]), Number((m[2] ?? "").slice(0, 9).padEnd(9, "0"))];
}
