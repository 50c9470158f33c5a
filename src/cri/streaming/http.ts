/** The HTTP/1.1 a streaming request arrives as: its head, and a plain answer. */
import { connDuplex } from "./bytes.ts";

const MAX_HEAD = 16 * 1024;

export interface Head {
  method: string;
  path: string;
  headers: Map<string, string[]>;
}

export function header(h: Head, name: string): string {
  return (h.headers.get(name) ?? []).join(",");
}

/** A header's comma-separated values, in order. */
export function listHeader(h: Head, name: string): string[] {
  return header(h, name).split(",").map((s) => s.trim()).filter(Boolean);
}

function parseHead(text: string): Head | undefined {
  const lines = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!m) return undefined;
  const headers = new Map<string, string[]>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i <= 0) return undefined;
    const k = l.slice(0, i).trim().toLowerCase();
    headers.set(k, [...headers.get(k) ?? [], l.slice(i + 1).trim()]);
  }
  return { method: m[1], path: m[2], headers };
}

/** Reads an HTTP/1.1 request head; what came after it is handed back. */
export async function readHead(conn: Deno.Conn): Promise<{ head?: Head; rest: Uint8Array }> {
  const buf = new Uint8Array(MAX_HEAD);
  let len = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(len));
    if (n === null) return { rest: new Uint8Array(0) };
    len += n;
    const text = new TextDecoder("latin1").decode(buf.subarray(0, len));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      return { head: parseHead(text.slice(0, end)), rest: buf.slice(end + 4, len) };
    }
    if (len === MAX_HEAD) return { rest: new Uint8Array(0) };
  }
}

export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

export async function respond(conn: Deno.Conn, code: number, reason: string, body: string) {
  const b = new TextEncoder().encode(body + "\n");
  const text = `HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${b.length}\r\nConnection: close\r\n\r\n`;
  const d = connDuplex(conn);
  await d.write(new TextEncoder().encode(text)).catch(() => {});
  await d.write(b).catch(() => {});
  d.close();
}
