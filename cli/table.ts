/** Aligned text tables (no I/O: the short paths of cli/commands/docker/light.ts use it too). */
import { escapeControl } from "../src/spec/names.ts";

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
