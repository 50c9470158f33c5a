import { stdout } from "./io.ts";
import { escapeControl } from "../src/spec/names.ts";

/** Tables and durations for human output. */

/**
 * A table, every cell with its control characters escaped (`\n`, `\x1b`):
 * names, labels and images come from files, requests and records, and a
 * newline or a terminal escape in one must not forge a row or repaint the
 * screen.
 */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map((c) => escapeControl(c ?? "")));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) =>
    r.map((c, i) => i === r.length - 1 ? c : (c ?? "").padEnd(widths[i])).join("   ").trimEnd();
  return [fmt(headers), ...rows.map(fmt)].join("\n") + "\n";
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** `Key: value` lines, values escaped as in table(). */
export function keyValues(lines: [string, unknown][], width: number): string {
  return lines.map(([k, v]) => `${(k + ":").padEnd(width)}${escapeControl(String(v))}\n`).join("");
}

export function write(text: string): void {
  stdout(text);
}
