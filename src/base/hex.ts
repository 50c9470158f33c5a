/** Hex digests and ids, by WebCrypto (no node:crypto on these paths). */

/** `bytes` as lower-case hex, two digits a byte. */
export function hex(bytes: Uint8Array | ArrayBuffer): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** The SHA-256 of `data` (a string is hashed as UTF-8) in hex. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  // Bytes on a plain ArrayBuffer are hashed where they are; a view of a shared buffer (which
  // WebCrypto refuses) is copied first.
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data.buffer instanceof ArrayBuffer
    ? data as Uint8Array<ArrayBuffer>
    : new Uint8Array(data);
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

/** 64 hex digits from 32 random bytes: a container's, sandbox's or exec's id, as docker's. */
export function randomHexId(): string {
  return hex(crypto.getRandomValues(new Uint8Array(32)));
}
