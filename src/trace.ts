/**
 * RKL_TRACE=1 prints how long each step took, on stderr: the cheap way to
 * see where a command spends its time (see bench/ for the numbers that count).
 */
const on = (() => {
  try {
    return Deno.env.get("RKL_TRACE") === "1";
  } catch {
    return false;
  }
})();
let last = performance.now();

export function trace(label: string): void {
  if (!on) return;
  const now = performance.now();
  console.error(
    `trace: ${label.padEnd(28)} +${(now - last).toFixed(1)} ms (at ${now.toFixed(1)} ms)`,
  );
  last = now;
}
