/**
 * How long rkl waits for one call to a runtime, conmon or CNI plugin before
 * it gives up and rolls back. RKL_CALL_TIMEOUT_MS overrides every default
 * (operators on slow hosts raise it; the fault-injection tests lower it so a
 * hung runtime costs them seconds, not minutes).
 */
const override = (() => {
  try {
    const v = Deno.env.get("RKL_CALL_TIMEOUT_MS");
    const n = v === undefined ? NaN : Number(v);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
})();

export function callTimeoutMs(defaultMs: number): number {
  return override ?? defaultMs;
}
