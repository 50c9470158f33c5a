import assert from "node:assert/strict";
import { hex, randomHexId, sha256Hex } from "./hex.ts";

Deno.test("hex() writes two lower-case digits a byte", () => {
  assert.equal(hex(new Uint8Array([0, 1, 0xab, 0xff])), "0001abff");
  assert.equal(hex(new Uint8Array([0x0f, 0xf0]).buffer), "0ff0");
  assert.equal(hex(new Uint8Array()), "");
});

Deno.test("sha256Hex() hashes a string as UTF-8, and bytes as they are", async () => {
  const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  assert.equal(await sha256Hex(""), empty);
  assert.equal(await sha256Hex(new Uint8Array()), empty);
  assert.equal(
    await sha256Hex("é"),
    await sha256Hex(new Uint8Array([0xc3, 0xa9])),
  );
});

Deno.test("randomHexId() is 64 hex digits, a new one each time", () => {
  const a = randomHexId(), b = randomHexId();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
});
