import assert from "node:assert/strict";
import {
  milliCpuToQuota,
  milliCpuToShares,
  parseQuantity,
  QuantityError,
  quantityMilli,
  quantityValue,
  sharesToWeight,
} from "./quantity.ts";

const valid: [string | number, bigint, bigint][] = [
  // input, Value() (rounded up), MilliValue()
  ["0", 0n, 0n],
  ["1", 1n, 1000n],
  ["500m", 1n, 500n],
  ["1.5", 2n, 1500n],
  ["0.1", 1n, 100n],
  [".5", 1n, 500n],
  ["5.", 5n, 5000n],
  ["+2", 2n, 2000n],
  ["-2", -2n, -2000n],
  ["233Mi", 233n * 1024n * 1024n, 233n * 1024n * 1024n * 1000n],
  ["1Ki", 1024n, 1024000n],
  ["1Gi", 1073741824n, 1073741824000n],
  ["1.5Gi", 1610612736n, 1610612736000n],
  ["2Ti", 2n * 1024n ** 4n, 2n * 1024n ** 4n * 1000n],
  ["1Ei", 1024n ** 6n, 1024n ** 6n * 1000n],
  ["1k", 1000n, 1000000n],
  ["1M", 1000000n, 1000000000n],
  ["1G", 1000000000n, 1000000000000n],
  ["1E", 10n ** 18n, 10n ** 21n],
  ["1e3", 1000n, 1000000n],
  ["1E3", 1000n, 1000000n],
  ["1e-3", 1n, 1n],
  ["12e+2", 1200n, 1200000n],
  ["100u", 1n, 1n],
  ["1n", 1n, 1n],
  ["1500000n", 1n, 2n],
  [1, 1n, 1000n],
  [0.25, 1n, 250n],
];

for (const [input, value, milli] of valid) {
  Deno.test(`parseQuantity() reads ${JSON.stringify(input)} as ${value} (milli ${milli})`, () => {
    const q = parseQuantity(input);
    assert.equal(quantityValue(q), value);
    assert.equal(quantityMilli(q), milli);
  });
}

const invalid = [
  "",
  "abc",
  "1 Gi",
  "1gi",
  "1KB",
  "1Mb",
  "Mi",
  ".",
  "1..5",
  "1e",
  "1e1.5",
  "--1",
  "1Ki2",
  " 1",
  "1m ",
  "0x10",
  "1e3Mi",
];
for (const input of invalid) {
  Deno.test(`parseQuantity() rejects ${JSON.stringify(input)}`, () => {
    assert.throws(() => parseQuantity(input), QuantityError);
  });
}

Deno.test("milliCpuToQuota() maps 500m to 50000µs per 100000µs and floors at 1000µs", () => {
  assert.equal(milliCpuToQuota(500), 50_000);
  assert.equal(milliCpuToQuota(2000), 200_000);
  assert.equal(milliCpuToQuota(1), 1_000);
  assert.equal(milliCpuToQuota(0), 0);
});

Deno.test("milliCpuToShares() follows the kubelet: 1024 per cpu, min 2, max 262144", () => {
  assert.equal(milliCpuToShares(1000), 1024);
  assert.equal(milliCpuToShares(250), 256);
  assert.equal(milliCpuToShares(1), 2);
  assert.equal(milliCpuToShares(10_000_000), 262_144);
});

Deno.test("sharesToWeight() maps the v1 range onto 1..10000", () => {
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(262_144), 10_000);
  assert.equal(sharesToWeight(1024), 39);
});
