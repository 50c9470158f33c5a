import { stdout } from "./io.ts";

/** Tables and durations for human output. */

export function table(headers: string[], rows: string[][]): string {
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

export function write(text: string): void {
  stdout(text);
}
