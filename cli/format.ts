import { stdout } from "./io.ts";
import { escapeControl } from "../src/spec/names.ts";

/** Tables and durations for human output. */

export { table } from "./table.ts";

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
