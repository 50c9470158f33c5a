/**
 * HPACK (RFC 7541): the header compression of HTTP/2. The decoder keeps the
 * dynamic table (§2.3, §4) with its size updates (§6.3) and reads every
 * representation of §6, Huffman-coded strings included; the encoder writes
 * literals without indexing (§6.2.2), naming a static-table entry where there
 * is one, so it keeps no state a peer could grow.
 *
 * Header names and values are strings of octets here, one char per octet
 * (latin1): HTTP/2 field values are octets, and gRPC's are ASCII.
 */
import { huffmanDecode, HuffmanError } from "./huffman.ts";

/** The static table (Appendix A), index 1 first. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

export type Header = [name: string, value: string];

/** A header block that cannot be decoded: a COMPRESSION_ERROR of the connection (§4.3 of RFC 9113). */
export class HpackError extends Error {}

/** Header list larger than allowed: the block was decoded (the table stays in step), the list is refused. */
export class HeaderListTooLarge extends Error {}

/** The size §4.1 counts for an entry: its octets plus 32. */
export const entrySize = (name: string, value: string) => name.length + value.length + 32;

function latin1(b: Uint8Array): string {
  let s = "";
  if (b.length <= 64) {
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  }
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode(...b.subarray(i, i + 4096));
  }
  return s;
}

export class HpackDecoder {
  /** Newest first: dynamic index 62 is dynamic[0]. */
  readonly dynamic: Header[] = [];
  size = 0;
  /** The size the last update set (starts at the protocol's limit). */
  maxSize: number;

  /** Moves whenever the dynamic table does (an entry added or evicted, a size update). */
  #generation = 0;
  /**
   * Lists of blocks that left the table as it was, by the block's octets: a
   * client sends the same block for every call of a method once its headers
   * are in the table (indexed fields only), and decoding it again (Huffman
   * bit by bit) was half of reading a request here. An entry holds only
   * while the table is at the generation it was decoded at.
   */
  #lists = new Map<string, { generation: number; maxListSize: number; list: Header[] }>();

  /** `limit`: SETTINGS_HEADER_TABLE_SIZE as this side announced it. */
  constructor(readonly limit = 4096) {
    this.maxSize = limit;
  }

  /** Blocks decoded from #lists (for the tests). */
  reused = 0;

  /**
   * The header list of one complete block. `maxListSize` bounds the list as
   * §6.5.2 of RFC 9113 counts it; a larger one throws HeaderListTooLarge once
   * the whole block is read, so the dynamic table still matches the peer's.
   */
  decode(block: Uint8Array, maxListSize = Infinity): Header[] {
    const key = block.length <= 512
      ? String.fromCharCode.apply(null, block as unknown as number[])
      : undefined;
    if (key !== undefined) {
      const hit = this.#lists.get(key);
      if (hit && hit.generation === this.#generation && hit.maxListSize === maxListSize) {
        this.reused++;
        return hit.list.map(([n, v]) => [n, v]);
      }
    }
    const generation = this.#generation;
    const list = this.#decode(block, maxListSize);
    if (key !== undefined && generation === this.#generation) {
      if (this.#lists.size >= 64) this.#lists.clear();
      this.#lists.set(key, { generation, maxListSize, list: list.map(([n, v]) => [n, v]) });
    }
    return list;
  }

  #decode(block: Uint8Array, maxListSize: number): Header[] {
    const out: Header[] = [];
    let listSize = 0;
    let pos = 0;
    let fields = 0;
    const int = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let v = block[pos++] & mask;
      if (v < mask) return v;
      for (let shift = 0;; shift += 7) {
        if (pos >= block.length) throw new HpackError("truncated integer");
        if (shift > 28) throw new HpackError("integer too large");
        const b = block[pos++];
        v += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) break;
      }
      if (v > 0x7fffffff) throw new HpackError("integer too large");
      return v;
    };
    const str = (): string => {
      if (pos >= block.length) throw new HpackError("truncated string");
      const huffman = (block[pos] & 0x80) !== 0;
      const len = int(7);
      if (pos + len > block.length) throw new HpackError("string longer than the block");
      const raw = block.subarray(pos, pos + len);
      pos += len;
      if (!huffman) return latin1(raw);
      try {
        return latin1(huffmanDecode(raw));
      } catch (e) {
        if (e instanceof HuffmanError) throw new HpackError(e.message);
        throw e;
      }
    };
    const emit = (name: string, value: string) => {
      fields++;
      listSize += entrySize(name, value);
      if (listSize <= maxListSize) out.push([name, value]);
    };
    while (pos < block.length) {
      const b = block[pos];
      if (b & 0x80) { // §6.1 indexed
        const [name, value] = this.entry(int(7));
        emit(name, value);
      } else if (b & 0x40) { // §6.2.1 literal with incremental indexing
        const idx = int(6);
        const name = idx === 0 ? str() : this.entry(idx)[0];
        const value = str();
        this.add(name, value);
        emit(name, value);
      } else if (b & 0x20) { // §6.3 dynamic table size update
        if (fields > 0) throw new HpackError("table size update after a header field");
        const size = int(5);
        if (size > this.limit) throw new HpackError(`table size update ${size} over ${this.limit}`);
        this.maxSize = size;
        this.#generation++;
        this.evict(0);
      } else { // §6.2.2 without indexing, §6.2.3 never indexed
        const idx = int(4);
        const name = idx === 0 ? str() : this.entry(idx)[0];
        emit(name, str());
      }
    }
    if (listSize > maxListSize) {
      throw new HeaderListTooLarge(`header list of ${listSize} octets over ${maxListSize}`);
    }
    return out;
  }

  private entry(index: number): Header | readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const e = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`index ${index} beyond the table`);
    return e;
  }

  private evict(room: number) {
    while (this.dynamic.length > 0 && this.size + room > this.maxSize) {
      const [n, v] = this.dynamic.pop()!;
      this.size -= entrySize(n, v);
    }
  }

  private add(name: string, value: string) {
    this.#generation++;
    const size = entrySize(name, value);
    this.evict(size);
    // An entry larger than the table empties it and is not kept (§4.4).
    if (size > this.maxSize) return;
    this.dynamic.unshift([name, value]);
    this.size += size;
  }
}

/** Static-table index of each name (its first entry). */
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([n], i) => {
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1);
});
const STATIC_FULL = new Map<string, number>(
  STATIC_TABLE.map(([n, v], i) => [`${n}\0${v}`, i + 1]),
);

function pushInt(out: number[], prefixBits: number, first: number, v: number) {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) {
    out.push(first | v);
    return;
  }
  out.push(first | mask);
  v -= mask;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function pushStr(out: number[], s: string) {
  pushInt(out, 7, 0, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * A header block for `headers`: a full static-table match as an index, any
 * other field as a literal without indexing (the name indexed when the static
 * table has it). Names must be lower case; values octets (latin1).
 */
export function hpackEncode(headers: readonly Header[]): Uint8Array {
  // A frozen list (a constant: the same response headers on every call) is encoded once.
  const frozen = Object.isFrozen(headers);
  if (frozen) {
    const hit = ENCODED.get(headers);
    if (hit) return hit;
  }
  const block = encode(headers);
  if (frozen) ENCODED.set(headers, block);
  return block;
}

const ENCODED = new WeakMap<readonly Header[], Uint8Array>();

function encode(headers: readonly Header[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of headers) {
    const full = STATIC_FULL.get(`${name}\0${value}`);
    if (full !== undefined) {
      pushInt(out, 7, 0x80, full);
      continue;
    }
    const idx = STATIC_NAME.get(name);
    if (idx !== undefined) pushInt(out, 4, 0, idx);
    else {
      out.push(0);
      pushStr(out, name);
    }
    pushStr(out, value);
  }
  return new Uint8Array(out);
}
