/**
 * RKL_TRACE=1 prints how long each step took, on stderr: the cheap way to
 * see where a command spends its time (see bench/ for the numbers that count).
 *
 * The same points serve fault injection: RKL_TEST_KILL_AT=N makes the process
 * SIGKILL itself at the N-th point it reaches (1-based), so the crash tests
 * can stop rkl at every step of a create and check what `rm -f`/`gc` leave.
 */
const on = (() => {
  try {
    return Deno.env.get("RKL_TRACE") === "1";
  } catch {
    return false;
  }
})();
let last = performance.now();
const killAt = (() => {
  try {
    const n = Number(Deno.env.get("RKL_TEST_KILL_AT"));
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
})();
let reached = 0;

export function trace(label: string): void {
  if (killAt && ++reached === killAt) {
    console.error(`trace: killed at ${reached}: ${label}`);
    Deno.kill(Deno.pid, "SIGKILL");
  }
  if (!on) return;
  const now = performance.now();
  console.error(
    `trace: ${label.padEnd(28)} +${(now - last).toFixed(1)} ms (at ${now.toFixed(1)} ms)`,
  );
  last = now;
}
