/**
 * Kubernetes `resource.Quantity` parsing, following the grammar in
 * k8s.io/apimachinery/pkg/api/resource:
 *
 *   quantity        ::= signedNumber suffix
 *   signedNumber    ::= number | "+" number | "-" number
 *   number          ::= digits | digits "." digits | digits "." | "." digits
 *   suffix          ::= binarySI | decimalExponent | decimalSI
 *   binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
 *   decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
 *   decimalExponent ::= "e" signedNumber | "E" signedNumber   (integer exponent)
 *
 * Values are kept exact (BigInt numerator and denominator) and rounded up when
 * converted to integers, as Quantity.Value() and MilliValue() do.
 */

const PATTERN =
  /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([eE][+-]?\d+)|([numkMGTPE]))?$/;

const BINARY: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

/** An exact quantity: `num / den`, with `den > 0`. */
export interface Quantity {
  readonly text: string;
  readonly num: bigint;
  readonly den: bigint;
}

export class QuantityError extends Error {}

/** Parses a quantity; YAML numbers (`cpu: 1`, `cpu: 0.5`) are taken as their decimal text. */
export function parseQuantity(input: string | number): Quantity {
  const text = typeof input === "number" ? numberText(input) : input;
  const m = PATTERN.exec(text);
  if (!m) {
    throw new QuantityError(
      `quantity ${JSON.stringify(text)} must match the Kubernetes quantity grammar ` +
        `(e.g. "500m", "1.5", "256Mi", "1e3")`,
    );
  }
  const [, sign, number, binary, exponent, decimal] = m;
  const [intPart, fracPart = ""] = number.split(".");
  let num = BigInt((intPart || "0") + fracPart);
  let den = 10n ** BigInt(fracPart.length);
  let exp10 = 0;
  if (binary) num *= 2n ** BigInt(BINARY[binary]);
  if (decimal) exp10 = DECIMAL[decimal];
  if (exponent) {
    exp10 = Number(exponent.slice(1));
    if (Math.abs(exp10) > 1000) {
      throw new QuantityError(`quantity ${JSON.stringify(text)} has an exponent out of range`);
    }
  }
  if (exp10 > 0) num *= 10n ** BigInt(exp10);
  if (exp10 < 0) den *= 10n ** BigInt(-exp10);
  if (sign === "-") num = -num;
  return { text, num, den };
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new QuantityError(`quantity ${n} is not a finite number`);
  // Plain decimal text, no exponent, so that 1e-7 and 1e21 go through the grammar.
  const s = String(n);
  return /e/i.test(s) ? n.toFixed(20).replace(/\.?0+$/, "") : s;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a > 0n) === (b > 0n) ? q + 1n : q;
}

/** The value rounded up to an integer (Quantity.Value()). */
export function quantityValue(q: Quantity): bigint {
  return ceilDiv(q.num, q.den);
}

/** The value in thousandths, rounded up (Quantity.MilliValue()). */
export function quantityMilli(q: Quantity): bigint {
  return ceilDiv(q.num * 1000n, q.den);
}

export function isNegative(q: Quantity): boolean {
  return q.num < 0n;
}

/** The CFS period rkl uses, in microseconds, as the kubelet does. */
export const CPU_PERIOD_US = 100_000;
/** The smallest quota the kernel accepts (and the kubelet's MinQuotaPeriod). */
export const MIN_CPU_QUOTA_US = 1_000;

/** `cpu` limit in millicores → CFS quota in µs over {@linkcode CPU_PERIOD_US}. */
export function milliCpuToQuota(milli: number): number {
  if (milli <= 0) return 0;
  return Math.max(MIN_CPU_QUOTA_US, Math.ceil((milli * CPU_PERIOD_US) / 1000));
}

/** `cpu` request in millicores → cgroup v1 cpu.shares (kubelet's MilliCPUToShares). */
export function milliCpuToShares(milli: number): number {
  if (milli <= 0) return 2;
  return Math.min(262_144, Math.max(2, Math.floor((milli * 1024) / 1000)));
}

/** cgroup v1 shares → cgroup v2 cpu.weight (the OCI runtimes' conversion). */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262_142);
}

/** Formats bytes the way `kubectl` users read them (`233Mi`, `1Gi`, `1000`). */
export function formatBytes(bytes: number): string {
  for (
    const [suffix, bits] of [["Ei", 60], ["Pi", 50], ["Ti", 40], ["Gi", 30], ["Mi", 20], [
      "Ki",
      10,
    ]] as const
  ) {
    const unit = 2 ** bits;
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}
