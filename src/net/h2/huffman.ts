/**
 * HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoding only: rkl's
 * HTTP/2 server reads Huffman-coded strings (Go's gRPC client sends them) and
 * writes its own headers as plain literals.
 *
 * The code of Appendix B is canonical: ordered by code length, then by
 * symbol, each code is the previous one plus one, shifted left by the growth
 * in length. So the 257 code lengths are the whole table; the codes are
 * rebuilt from them here. LENGTHS holds one character per symbol 0..256
 * (256 is EOS), the length being its char code minus 60 ('A' = 5 bits).
 */
const LENGTHS = "ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCC" +
  "CCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSS" +
  "TRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWW" +
  "XWWWWWVZ";

export const EOS = 256;

/** Code length of each symbol. */
export const CODE_LENGTHS: readonly number[] = Array.from(LENGTHS, (c) => c.charCodeAt(0) - 60);

/** Symbols in code order; for each length, its first code and where its symbols start. */
const ORDER: number[] = [];
const FIRST_CODE = new Array<number>(31).fill(0);
const FIRST_INDEX = new Array<number>(31).fill(0);
const COUNT = new Array<number>(31).fill(0);
/** The code of each symbol (for tests and for anyone who encodes). */
export const CODES: number[] = new Array<number>(257).fill(0);

{
  for (let s = 0; s < 257; s++) ORDER.push(s);
  ORDER.sort((a, b) => CODE_LENGTHS[a] - CODE_LENGTHS[b] || a - b);
  let code = 0;
  let prev = CODE_LENGTHS[ORDER[0]];
  ORDER.forEach((s, i) => {
    const len = CODE_LENGTHS[s];
    if (i > 0) code = (code + 1) * 2 ** (len - prev);
    prev = len;
    CODES[s] = code;
    if (COUNT[len]++ === 0) {
      FIRST_CODE[len] = code;
      FIRST_INDEX[len] = i;
    }
  });
}

export class HuffmanError extends Error {}

/**
 * The octets `bytes` code. Throws HuffmanError on a code that decodes EOS,
 * on padding longer than 7 bits and on padding that is not the high bits of
 * EOS (all ones), as §5.2 requires a decoder to.
 */
export function huffmanDecode(bytes: Uint8Array): Uint8Array {
  // At least 5 bits a symbol: the output is at most 8/5 of the input.
  const out = new Uint8Array(Math.ceil((bytes.length * 8) / 5));
  let n = 0;
  let code = 0;
  let len = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((b >> bit) & 1);
      len++;
      const off = code - FIRST_CODE[len];
      if (COUNT[len] > 0 && off >= 0 && off < COUNT[len]) {
        const sym = ORDER[FIRST_INDEX[len] + off];
        if (sym === EOS) throw new HuffmanError("Huffman string holds EOS");
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len >= 30) throw new HuffmanError("invalid Huffman code");
    }
  }
  if (len > 7) throw new HuffmanError("Huffman padding longer than 7 bits");
  if (code !== 2 ** len - 1) throw new HuffmanError("Huffman padding is not EOS's prefix");
  return out.subarray(0, n);
}
