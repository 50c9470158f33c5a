/** Per-layer pull progress on a terminal (stderr), redrawn in place like podman's. */
import type { Progress } from "../src/image/pull.ts";

function human(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${u[i]}`;
}

export class TtyProgress implements Progress {
  #rows = new Map<string, { label: string; total: number; done: number; note?: string }>();
  #drawn = 0;
  #timer?: ReturnType<typeof setInterval>;
  #enc = new TextEncoder();

  begin(id: string, label: string, total: number): void {
    if (!this.#rows.has(id)) this.#rows.set(id, { label, total, done: 0 });
    this.#timer ??= setInterval(() => this.#draw(), 100);
  }
  advance(id: string, bytes: number): void {
    const r = this.#rows.get(id);
    if (r) r.done += bytes;
  }
  end(id: string, note: string): void {
    const r = this.#rows.get(id);
    if (r) {
      r.note = note;
      r.done = r.total;
    }
  }
  #draw(): void {
    let out = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const [id, r] of this.#rows) {
      const state = r.note ?? `${human(r.done)} / ${human(r.total)}`;
      out += `\x1b[2KCopying ${r.label.padEnd(10)} ${id.slice(0, 12)}  ${state}\n`;
    }
    this.#drawn = this.#rows.size;
    Deno.stderr.writeSync(this.#enc.encode(out));
  }
  close(): void {
    if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#draw();
    }
  }
}

export function progressFor(): Progress | undefined {
  return Deno.stderr.isTerminal() ? new TtyProgress() : undefined;
}
